"""Leader election and fencing with two replicas on one store (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from gatewarden.clock import VirtualClock
from gatewarden.errors import LeaseLostError
from gatewarden.gateways.memory import InMemoryGateway
from gatewarden.ha import LEADER_LEASE, FencedGateway, LeaderElector, ttl_for
from gatewarden.models import ActionOutcome, ActionPlan, GatewayAction
from tests.remediate.helpers import make_gateway
from tests.store.backends import Backend

T0 = 1_700_000_000.0
TICK = 10.0
TTL = ttl_for(TICK)
BLOCK = GatewayAction(type="block_key", params={"key": "team-a-1"})


class Recording:
    """A GatewayAdmin that records every apply it receives, in front of a shared gateway."""

    def __init__(self, inner: InMemoryGateway) -> None:
        self.inner = inner
        self.name = inner.name
        self.applied: list[str] = []

    def plan(self, action: GatewayAction) -> ActionPlan:
        return self.inner.plan(action)

    def apply(self, action: GatewayAction, *, key: str) -> ActionOutcome:
        self.applied.append(key)
        return self.inner.apply(action, key=key)


class Replica:
    def __init__(
        self, backend: Backend, holder: str, clock: VirtualClock, gateway: InMemoryGateway
    ) -> None:
        self.store = backend.open()
        self.elector = LeaderElector(self.store, LEADER_LEASE, holder, TTL, clock)
        self.recorder = Recording(gateway)
        self.gateway = FencedGateway(self.recorder, self.elector)


@pytest.fixture
def pair(backend: Backend) -> tuple[Replica, Replica, VirtualClock]:
    clock, gateway = VirtualClock(T0), make_gateway()
    return Replica(backend, "a", clock, gateway), Replica(backend, "b", clock, gateway), clock


def test_exactly_one_of_two_replicas_leads(pair: tuple[Replica, Replica, VirtualClock]) -> None:
    a, b, clock = pair
    for k in range(12):
        clock.set(T0 + k * TICK)
        first, second = (a, b) if k % 2 == 0 else (b, a)  # either may tick first
        tokens = {first.elector.holder: first.elector.tick()}
        tokens[second.elector.holder] = second.elector.tick()
        assert tokens == {"a": 1, "b": None}
        assert a.elector.is_leader and not b.elector.is_leader


@pytest.mark.parametrize("phase", [0.0, 0.25, 0.5, 0.99])
def test_the_standby_leads_within_two_of_its_ticks_after_a_missed_renewal(
    pair: tuple[Replica, Replica, VirtualClock], phase: float
) -> None:
    """``phase``: how far into the leader's tick period the standby's ticks fall."""
    a, b, clock = pair
    for k in range(3):
        clock.set(T0 + k * TICK)
        assert a.elector.tick() == 1
        clock.set(T0 + (k + phase) * TICK)
        assert b.elector.tick() is None
    # a dies: its renewal due at T0 + 3 * TICK never happens.
    standby_ticks = 0
    for k in range(3, 8):
        clock.set(T0 + (k + phase) * TICK)
        standby_ticks += 1
        if b.elector.tick() is not None:
            break
    assert b.elector.token == 2
    assert standby_ticks <= 2


def test_an_old_leader_past_its_lease_cannot_apply(
    pair: tuple[Replica, Replica, VirtualClock],
) -> None:
    a, b, clock = pair
    assert a.elector.tick() == 1
    a.gateway.apply(BLOCK, key="while-leading")
    clock.advance(TTL + 1)  # a is paused (GC, SIGSTOP, partition) and misses its renewals
    assert b.elector.tick() == 2
    with pytest.raises(LeaseLostError, match="expires at"):
        a.gateway.apply(BLOCK, key="after-losing")
    assert a.recorder.applied == ["while-leading"]
    assert a.gateway.refused == 1
    assert a.gateway.plan(BLOCK).action.type == "block_key"  # reading is still allowed
    assert a.elector.tick() is None  # once it ticks again it knows it is standing by


def test_an_old_leader_with_a_stale_token_is_fenced_even_if_its_clock_says_otherwise(
    backend: Backend,
) -> None:
    """a's clock runs behind, so by its own reckoning its lease is still valid; only the token
    in the store tells it that b has taken over."""
    gateway = make_gateway()
    a_clock, b_clock = VirtualClock(T0), VirtualClock(T0 + TTL + 1)
    a, b = Replica(backend, "a", a_clock, gateway), Replica(backend, "b", b_clock, gateway)
    assert a.elector.tick() == 1
    assert b.elector.tick() == 2
    assert a.elector.is_leader  # it believes so ...
    with pytest.raises(LeaseLostError, match="token 1 of a superseded by 2"):
        a.gateway.apply(BLOCK, key="stale")  # ... but the fence knows better
    assert a.recorder.applied == [] and gateway.calls == []
    assert a.elector.token is None
    b.gateway.apply(BLOCK, key="current")
    assert b.recorder.applied == ["current"]


def test_a_replica_that_never_led_cannot_apply(pair: tuple[Replica, Replica, VirtualClock]) -> None:
    a, b, _ = pair
    a.elector.tick()
    assert b.elector.tick() is None
    with pytest.raises(LeaseLostError, match="b is not the leader"):
        b.gateway.apply(BLOCK, key="k")
    assert b.recorder.applied == []


def test_an_unconfirmable_lease_fails_closed(pair: tuple[Replica, Replica, VirtualClock]) -> None:
    a, _, _ = pair
    assert a.elector.tick() == 1
    a.store.close()  # the database is gone
    with pytest.raises(LeaseLostError, match="cannot confirm token 1"):
        a.gateway.apply(BLOCK, key="k")
    assert a.elector.tick() is None and a.elector.last_error
    assert a.recorder.applied == []


def test_no_action_starts_within_the_margin_of_expiry(backend: Backend) -> None:
    clock, gateway = VirtualClock(T0), make_gateway()
    store = backend.open()
    elector = LeaderElector(store, LEADER_LEASE, "a", TTL, clock, margin_s=5.0)
    recorder = Recording(gateway)
    fenced = FencedGateway(recorder, elector)
    assert elector.tick() == 1
    clock.advance(TTL - 5.0)  # exactly the margin left: still allowed
    fenced.apply(BLOCK, key="in-time")
    clock.advance(0.5)
    with pytest.raises(LeaseLostError, match="too soon to act"):
        fenced.apply(BLOCK, key="too-late")
    assert recorder.applied == ["in-time"]


def test_the_ttl_must_exceed_the_margin(backend: Backend) -> None:
    with pytest.raises(ValueError, match="ttl_s > margin_s"):
        LeaderElector(backend.open(), LEADER_LEASE, "a", 5.0, VirtualClock(T0), margin_s=5.0)
