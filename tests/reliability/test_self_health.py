"""Gatewarden's own health becomes incidents through the real pipeline: a gateway circuit
breaker left open, a notifier whose outbox is stuck, a store failing writes. Each one opens an
incident with the evidence, is announced through the notifiers that still work, and resolves
once the part recovers; none fires on a blip shorter than its threshold.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Sequence

import pandas as pd
import pytest

from gatewarden.clock import VirtualClock
from gatewarden.correlate import CorrelateConfig, CorrelateStage
from gatewarden.errors import NotifyRetryable, StoreError
from gatewarden.ha.leader import LeaderElector
from gatewarden.ha.stages import LeaderOnly
from gatewarden.ingest import HttpRequestLogSource
from gatewarden.models import Delivery, Event, EventType, Incident, IncidentStatus, Message
from gatewarden.notify.console import ConsoleNotifier
from gatewarden.notify.outbox import NotifyStage
from gatewarden.pipeline import Pipeline
from gatewarden.projections import incidents_from_events
from gatewarden.protocols import Source, Stage, Tick
from gatewarden.remediate import RemediateStage
from gatewarden.selfhealth import CIRCUIT_OPEN, OUTBOX_STUCK, STORE_FAILING
from gatewarden.store import SQLiteStore
from tests.remediate.helpers import T0, FakeMetrics, failover_playbook, make_gateway

TICK = 15.0


class World:
    """A pipeline of real stages on one store and one virtual clock."""

    def __init__(
        self,
        clock: VirtualClock,
        store: SQLiteStore,
        stages: Sequence[Stage],
        sources: Sequence[Source] = (),
    ) -> None:
        self.store = store
        self.clock = clock
        self.pipeline = Pipeline(sources, stages, clock, tick_seconds=TICK, checkpoints=store)

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            self.clock.advance(TICK)
            self.pipeline.tick()

    def incidents(self, kind: str) -> list[Incident]:
        return [i for i in incidents_from_events(self.store.events()) if kind in i.kinds]

    def fired(self, kind: str) -> list[Event]:
        fired = self.store.events(types=[EventType.ALERT_FIRED.value])
        return [e for e in fired if e.payload.get("kind") == kind]

    def delivered(self, incident_id: str, notifier: str) -> list[Event]:
        events = self.store.events(incident_id=incident_id)
        return [
            e
            for e in events
            if e.type is EventType.NOTIFICATION_DELIVERED and e.payload["notifier"] == notifier
        ]


def correlator(store: SQLiteStore) -> CorrelateStage:
    return CorrelateStage(store, CorrelateConfig(resolve_after_ticks=2))


# -- a gateway circuit breaker left open ----------------------------------------------------------


def test_a_circuit_left_open_is_an_incident_until_a_call_succeeds() -> None:
    store, clock, gateway = SQLiteStore(":memory:"), VirtualClock(T0), make_gateway()
    # The traffic for the breaker: the request log is down, which opens a gateway_unreachable
    # incident on the third tick, and a playbook fails the provider over when that happens.
    steps = [{"type": "action", "action": "failover_provider", "params": {"provider": "openai"}}]
    failover = failover_playbook(mode="auto", match={"kinds": ["gateway_unreachable"]}, steps=steps)
    remediate = RemediateStage(
        [failover],
        store,
        gateway,
        FakeMetrics(),
        clock,
        max_attempts=10,
        retry_base_s=1,
        breaker_threshold=1,
        breaker_reset_s=60,
    )
    console = io.StringIO()
    notify = NotifyStage(store, [ConsoleNotifier(console)], clock)
    logs = HttpRequestLogSource(f"http://127.0.0.1:{closed_port()}", timeout=1, name="logs")
    world = World(clock, store, [correlator(store), remediate, notify], [logs])
    gateway.fail_next(3)  # the call at +45 (opens the circuit), the trials at +105, +165
    world.tick(7)  # to +105: open for 60 s, its reset time: not yet "left open"
    assert len(store.events(types=[EventType.ACTION_FAILED.value])) == 2
    assert world.fired(CIRCUIT_OPEN) == []
    world.tick()  # +120: open for 75 s, its half-open trial failed
    [fired] = world.fired(CIRCUIT_OPEN)
    assert fired.ts == T0 + 120
    assert fired.payload["scope"] == {"gateway": gateway.name}
    assert fired.payload["evidence"]["metric"] == "circuit_open_seconds"
    assert fired.payload["evidence"]["observed"] == 75.0
    [incident] = world.incidents(CIRCUIT_OPEN)
    assert incident.status is IncidentStatus.OPEN and incident.scope == {"gateway": gateway.name}
    assert world.delivered(incident.id, "console")  # announced
    assert "circuit open" in console.getvalue()
    world.tick(9)  # +225: the third trial succeeds and closes the circuit; +255: resolved
    assert [i.status for i in world.incidents(CIRCUIT_OPEN)] == [IncidentStatus.RESOLVED]
    assert len(world.fired(CIRCUIT_OPEN)) == 1
    assert len(store.events(types=[EventType.ACTION_APPLIED.value])) == 1


# -- a stuck outbox -----------------------------------------------------------------------------


class Pager:
    """A notifier whose service can be down (retryable failures) or up."""

    name = "pager"

    def __init__(self) -> None:
        self.down = True
        self.delivered: list[str] = []

    def deliver(self, message: Message, *, thread_ref: str | None = None) -> Delivery:
        if self.down:
            raise NotifyRetryable("pager service unavailable")
        self.delivered.append(message.id)
        return Delivery(ok=True, ref=f"pager:{len(self.delivered)}")


def closed_port() -> int:
    """A local port with nothing listening: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_stuck_outbox_is_announced_through_the_notifiers_that_work() -> None:
    store, clock, pager = SQLiteStore(":memory:"), VirtualClock(T0), Pager()
    notify = NotifyStage(
        store,
        [ConsoleNotifier(io.StringIO()), pager],
        clock,
        max_attempts=100,
        base_backoff_s=5,
        max_backoff_s=30,
        stuck_after_s=120,
    )
    # A source that is down opens an incident (gateway_unreachable) on the third tick: that
    # is the traffic for the outbox.
    logs = HttpRequestLogSource(f"http://127.0.0.1:{closed_port()}", timeout=1, name="logs")
    world = World(clock, store, [correlator(store), notify], [logs])
    world.tick(3)  # +45: the incident opens; its messages are queued, the pager's wait
    [unreachable] = world.incidents("gateway_unreachable")
    assert world.delivered(unreachable.id, "console") and pager.delivered == []
    world.tick(8)  # +165: the oldest message has waited 120 s: at the threshold, not over it
    assert world.fired(OUTBOX_STUCK) == []
    world.tick()  # +180
    [fired] = world.fired(OUTBOX_STUCK)
    assert fired.payload["scope"] == {"notifier": "pager"}  # the console is not stuck
    assert fired.payload["evidence"]["observed"] == 135.0
    [stuck] = world.incidents(OUTBOX_STUCK)
    assert world.delivered(stuck.id, "console")  # on-call hears of it through the console
    assert world.delivered(stuck.id, "pager") == []
    pager.down = False
    world.tick(6)  # the backlog drains (in order), the check passes, the incident resolves
    assert [i.status for i in world.incidents(OUTBOX_STUCK)] == [IncidentStatus.RESOLVED]
    assert world.delivered(stuck.id, "pager")
    assert notify.pending() == []


def test_a_standby_replica_reports_no_outbox_health() -> None:
    """Under HA the notify stage runs only on the leader; a standby's copy has nothing to say."""
    store, clock = SQLiteStore(":memory:"), VirtualClock(T0)
    leader, standby = (LeaderElector(store, "lease", name, 30.0, clock) for name in "ab")
    leader.tick()
    standby.tick()
    stages = {
        name: LeaderOnly(NotifyStage(store, [ConsoleNotifier(io.StringIO())], clock), elector)
        for name, elector in (("leader", leader), ("standby", standby))
    }
    for stage in stages.values():  # both copies have flushed once, so both know something
        stage.inner.run(Tick(now=clock.now(), start=clock.now(), records=pd.DataFrame()))
    assert [c.kind for c in stages["leader"].self_health(clock.now())] == [OUTBOX_STUCK]
    assert stages["standby"].self_health(clock.now()) == ()


# -- a store failing writes ---------------------------------------------------------------------


def refuse_writes(store: SQLiteStore, refuse: bool) -> None:
    """The real SQLite refusing writes (SQLITE_READONLY), as on a read-only volume. Reads work."""
    store._db.execute(f"PRAGMA query_only = {'ON' if refuse else 'OFF'}")


def test_a_store_failing_writes_is_an_incident_once_it_takes_writes_again() -> None:
    store, clock = SQLiteStore(":memory:"), VirtualClock(T0)
    notify = NotifyStage(store, [ConsoleNotifier(io.StringIO())], clock)
    world = World(clock, store, [correlator(store), notify])
    world.tick()
    refuse_writes(store, True)
    for _ in range(2):  # a blip: two failed ticks
        with pytest.raises(StoreError, match="readonly"):
            world.tick()
    refuse_writes(store, False)
    world.tick(3)
    assert world.fired(STORE_FAILING) == []  # below the threshold: no page
    refuse_writes(store, True)
    with pytest.raises(StoreError):
        world.tick()  # the third failure in ten minutes
    ticks = world.pipeline.stats.ticks
    with pytest.raises(StoreError, match="readonly"):
        world.tick()  # the probe fails first: the tick stops before reading any source
    assert world.pipeline.stats.ticks == ticks
    assert world.fired(STORE_FAILING) == []  # nothing can be recorded while it refuses
    refuse_writes(store, False)
    world.tick()
    [fired] = world.fired(STORE_FAILING)
    assert fired.payload["scope"] == {"component": "store"}
    assert fired.payload["evidence"]["observed"] == 4.0  # failed ticks in the window
    assert "readonly" in fired.payload["evidence"]["detail"]
    [incident] = world.incidents(STORE_FAILING)
    assert world.delivered(incident.id, "console")
    world.tick(42)  # ten minutes without a failure: the check passes, the incident resolves
    assert [i.status for i in world.incidents(STORE_FAILING)] == [IncidentStatus.RESOLVED]
