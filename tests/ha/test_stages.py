"""LeaseStage and LeaderOnly: a standby skips the leader's stages, a fenced stage stops quietly."""

from __future__ import annotations

import pandas as pd
import pytest

from gatewarden.clock import VirtualClock
from gatewarden.errors import LeaseLostError
from gatewarden.ha import LEADER_LEASE, FencedGateway, LeaderElector, ttl_for
from gatewarden.ha.stages import LeaderOnly, LeaseStage, leader_only
from gatewarden.models import GatewayAction
from gatewarden.protocols import GatewayAdmin, Stage, Tick
from gatewarden.store.sqlite import SQLiteStore
from tests.ha.test_leader import Recording
from tests.remediate.helpers import make_gateway

T0 = 1_700_000_000.0
TICK = 10.0
BLOCK = GatewayAction(type="block_key", params={"key": "team-a-1"})


class Probe:
    """A stage that records the ticks it ran in, and optionally acts through a gateway."""

    def __init__(self, name: str, gateway: GatewayAdmin | None = None) -> None:
        self.name = name
        self.gateway = gateway
        self.ran: list[float] = []

    def run(self, tick: Tick) -> None:
        self.ran.append(tick.now)
        if self.gateway is not None:
            self.gateway.apply(BLOCK, key=f"block@{tick.now}")


def run(stages: list[Stage], clock: VirtualClock) -> None:
    now = clock.now()
    tick = Tick(now=now, start=now - TICK, records=pd.DataFrame())
    for stage in stages:
        stage.run(tick)


def test_only_the_leader_runs_the_leader_stages() -> None:
    store, clock = SQLiteStore(":memory:"), VirtualClock(T0)
    a = LeaderElector(store, LEADER_LEASE, "a", ttl_for(TICK), clock)
    b = LeaderElector(store, LEADER_LEASE, "b", ttl_for(TICK), clock)
    a_probe, b_probe, b_detect = Probe("remediate"), Probe("remediate"), Probe("detect")
    a_stages: list[Stage] = [LeaseStage(a), *leader_only(a, [a_probe])]
    b_stages: list[Stage] = [LeaseStage(b), b_detect, LeaderOnly(b_probe, b)]
    for _ in range(3):
        clock.advance(TICK)
        run(a_stages, clock)
        run(b_stages, clock)
    assert len(a_probe.ran) == 3 and b_probe.ran == []
    assert len(b_detect.ran) == 3  # the standby keeps detecting (warm baselines)
    assert isinstance(b_stages[2], LeaderOnly) and b_stages[2].skipped == 3
    for _ in range(2):  # a is gone; b takes over within two ticks
        clock.advance(TICK)
        run(b_stages, clock)
    assert b_probe.ran == [T0 + 5 * TICK]  # a's lease, renewed at T0 + 30, ran out at T0 + 45


def test_a_stage_fenced_mid_tick_stops_quietly_and_the_rest_stand_by() -> None:
    store = SQLiteStore(":memory:")
    a_clock, b_clock = VirtualClock(T0), VirtualClock(T0 + 100)  # b's clock runs ahead
    a = LeaderElector(store, LEADER_LEASE, "a", ttl_for(TICK), a_clock)
    b = LeaderElector(store, LEADER_LEASE, "b", ttl_for(TICK), b_clock)
    recorder = Recording(make_gateway())
    fenced = FencedGateway(recorder, a)
    assert isinstance(fenced, GatewayAdmin)
    acting, after = LeaderOnly(Probe("remediate", fenced), a), LeaderOnly(Probe("notify"), a)
    run([LeaseStage(a), acting, after], a_clock)
    assert recorder.applied == [f"block@{T0}"]

    assert b.tick() == 2  # b takes over while a is between its lease renewal and its action
    a_clock.advance(1)
    a_stages: list[Stage] = [acting, after]  # a's LeaseStage already ran this tick
    run(a_stages, a_clock)  # the fence trips inside the stage: no exception escapes the tick
    assert acting.fenced == 1 and after.skipped == 1
    assert recorder.applied == [f"block@{T0}"]
    with pytest.raises(LeaseLostError):
        a.check()


def test_a_rebuilt_stage_is_made_fresh_at_the_start_of_every_term() -> None:
    store, clock = SQLiteStore(":memory:"), VirtualClock(T0)
    a = LeaderElector(store, LEADER_LEASE, "a", ttl_for(TICK), clock)
    b = LeaderElector(store, LEADER_LEASE, "b", ttl_for(TICK), clock)
    built: list[Probe] = []

    def build() -> Probe:
        built.append(Probe("correlate"))
        return built[-1]

    stage = LeaderOnly(Probe("correlate"), b, rebuild=build)
    b_stages: list[Stage] = [LeaseStage(b), stage]
    a.tick()
    run(b_stages, clock)
    assert built == []  # standing by: nothing built, nothing run
    clock.advance(2 * TICK)  # a's lease runs out: b's first term
    run(b_stages, clock)
    run(b_stages, clock)
    assert len(built) == 1 and len(built[0].ran) == 2
    clock.advance(2 * TICK)  # b missed its renewals and comes back: a new term, token 3
    run(b_stages, clock)
    assert b.token == 3 and len(built) == 2 and len(built[1].ran) == 1
