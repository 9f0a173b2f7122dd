"""Two real RemediateStages on one store, one gateway: only the leader ever changes it.

Replica a leads and acts; it dies with a run waiting for approval; b takes over, resumes that
run and acts; then a comes back as a zombie that still believes it leads and runs its stage:
the fence stops its gateway call, and b later completes the zombie's half-done step exactly
once (the same idempotency key).
"""

from __future__ import annotations

import pandas as pd
import pytest

from gatewarden.clock import VirtualClock
from gatewarden.errors import LeaseLostError
from gatewarden.gateways.memory import InMemoryGateway
from gatewarden.ha import LEADER_LEASE, FencedGateway, LeaderElector, ttl_for
from gatewarden.models import EventType
from gatewarden.protocols import Tick
from gatewarden.remediate.approvals import record_decision
from gatewarden.remediate.engine import RemediateStage
from gatewarden.remediate.runlog import Keys, run_id_for
from tests.ha.test_leader import Recording
from tests.remediate.helpers import (
    T0,
    TICK,
    FakeMetrics,
    block_playbook,
    failover_playbook,
    make_gateway,
    open_incident,
)
from tests.store.backends import Backend

PLAYBOOKS = [block_playbook(), failover_playbook()]
BLOCK_1 = Keys.intended(run_id_for("inc-1", "block-runaway-key"), 1)
FAILOVER = Keys.intended(run_id_for("inc-2", "provider-failover"), 1)
BLOCK_3 = Keys.intended(run_id_for("inc-3", "block-runaway-key"), 1)


class Replica:
    """One daemon: its own store handle, elector, fenced gateway and remediation stage."""

    def __init__(
        self, backend: Backend, holder: str, clock: VirtualClock, gateway: InMemoryGateway
    ) -> None:
        self.clock = clock
        self.store = backend.open()
        self.elector = LeaderElector(self.store, LEADER_LEASE, holder, ttl_for(TICK), clock)
        self.recorder = Recording(gateway)
        fenced = FencedGateway(self.recorder, self.elector)
        self.stage = RemediateStage(PLAYBOOKS, self.store, fenced, FakeMetrics(), clock)

    def run_stage(self) -> None:
        now = self.clock.now()
        self.stage.run(Tick(now=now, start=now - TICK, records=pd.DataFrame()))

    def tick(self, now: float) -> int | None:
        """What the daemon does each tick: renew the lease, act only while leading."""
        self.clock.set(now)
        token = self.elector.tick()
        if token is not None:
            self.run_stage()
        return token


def test_only_the_leader_acts_and_the_standby_resumes(backend: Backend) -> None:
    gateway = make_gateway()
    a_clock, b_clock = VirtualClock(T0), VirtualClock(T0)
    a = Replica(backend, "a", a_clock, gateway)
    b = Replica(backend, "b", b_clock, gateway)
    store = a.store

    open_incident(store, "inc-1", {"api_key": "team-a-1"}, kind="cost")
    open_incident(store, "inc-2", {"provider": "openai"})
    now = T0 + TICK
    assert a.tick(now) == 1 and b.tick(now + 1) is None
    assert a.recorder.applied == [BLOCK_1] and b.recorder.applied == []
    assert store.events(types=[EventType.APPROVAL_REQUESTED.value])  # inc-2 waits for a human

    # a dies. The on-call approves the failover a asked for; b must carry it out.
    record_decision(
        store, run_id=run_id_for("inc-2", "provider-failover"), step=0, decision="granted",
        by="U1", now=now + 2,
    )  # fmt: skip
    ticks = 0
    while b.tick(now + 1 + (ticks + 1) * TICK) is None:
        ticks += 1
        assert ticks < 3, "the standby never took over"
    assert b.elector.token == 2
    assert b.recorder.applied == [FAILOVER]

    # a wakes up mid-tick, still holding token 1 in memory, and runs its stage.
    open_incident(store, "inc-3", {"api_key": "team-b-1"}, kind="cost")
    a_clock.set(b_clock.now())
    with pytest.raises(LeaseLostError):
        a.run_stage()
    assert a.recorder.applied == [BLOCK_1]
    assert store.event_by_key(BLOCK_3) is not None  # the zombie got as far as the intent

    b.tick(b_clock.now() + TICK)
    assert b.recorder.applied == [FAILOVER, BLOCK_3]
    assert [c.key for c in gateway.calls] == [BLOCK_1, FAILOVER, BLOCK_3]  # each once
    applied = store.events(types=[EventType.ACTION_APPLIED.value])
    assert len(applied) == 3
    assert a.tick(b_clock.now() + 1) is None  # back in line as the standby
