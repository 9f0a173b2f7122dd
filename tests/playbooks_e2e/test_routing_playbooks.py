"""Routing playbooks end to end: provider outage, TTFT degradation, fallback storm; rollback when
the failover target fails too; dry run."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from gatewarden.models import EventType
from gatewarden.simulator import FallbackStorm, ProviderOutage, TtftDegradation

from .harness import ONSET_S, SimHarness, after, start

HOURS = 3 * 3600.0


def order_update(dep_id: str, order: int) -> tuple[str, str, object]:
    body = {"model_info": {"id": dep_id}, "litellm_params": {"order": order}}
    return ("POST", "/model/update", body)


@pytest.fixture
def outage() -> Iterator[SimHarness]:
    h = start([ProviderOutage(start=ONSET_S, duration=HOURS, provider="openai", error_rate=0.5)])
    yield h
    h.close()


def test_provider_outage_fails_over_and_openai_errors_stop(outage: SimHarness) -> None:
    h = outage
    h.skip(60)
    run = h.open_incident("inc-outage", "error_rate", {"provider": "openai"})
    h.tick()
    assert h.writes() == []  # waiting for a human
    h.approve(run, 0)
    h.tick()
    switched = h.applied_at(run, 1)
    assert h.writes() == [order_update("openai-gpt-4o", 3), order_update("openai-gpt-4o-mini", 3)]
    assert (h.calls()[0].method, h.calls()[0].path) == ("GET", "/model/info")  # planned first
    h.until(lambda: h.state(run) is not None, max_ticks=8)
    assert h.state(run) == "succeeded"
    assert h.store.events(incident_id="inc-outage", types=[EventType.INCIDENT_MITIGATED])

    onset = h.sim.scenario.start + ONSET_S
    before = after(h.records(onset, switched), provider="openai")
    assert sum(r["status"] >= 500 for r in before) > 10
    later = h.records(switched)
    assert after(later, provider="openai") == []  # every openai call moved off at once
    assert np.mean([r["status"] >= 500 for r in later]) < 0.02


def test_dry_run_calls_nothing_and_the_outage_goes_on(outage: SimHarness) -> None:
    h = outage
    h.new_stage(dry_run=True)
    h.skip(30)
    run = h.open_incident("inc-outage", "error_rate", {"provider": "openai"})
    h.ticks(3)
    assert h.state(run) == "dry_run"
    assert h.writes() == []
    assert {(c.method, c.path) for c in h.calls()} == {("GET", "/model/info")}
    [intended] = h.store.events(run_id=run, types=[EventType.ACTION_INTENDED])
    assert intended.payload["preview"].startswith("dry run: will move model groups")
    later = h.records(intended.ts)
    assert sum(r["provider"] == "openai" and r["status"] >= 500 for r in later) > 10


def test_rollback_when_the_failover_target_fails_too() -> None:
    h = start(
        [
            ProviderOutage(start=ONSET_S, duration=HOURS, provider="openai", error_rate=0.5),
            ProviderOutage(start=ONSET_S, duration=HOURS, provider="azure", error_rate=0.5),
        ],
        base_rps=2.0,
    )
    try:
        h.skip(30)
        run = h.open_incident("inc-both", "error_rate", {"provider": "openai"})
        h.tick()
        h.approve(run, 0)
        h.tick()
        failover = [order_update("openai-gpt-4o", 3), order_update("openai-gpt-4o-mini", 3)]
        assert h.writes() == failover
        h.ticks(2)  # bad ticks: the errors go on on azure
        assert h.state(run) is None
        # Verification times out 600 s after the change: the inverse restores the orders.
        h.skip(600 - 3 * 15)
        h.until(lambda: h.state(run) is not None, max_ticks=2)
        assert h.state(run) == "rolled_back"
        assert h.writes() == [
            *failover,
            order_update("openai-gpt-4o", 1),
            order_update("openai-gpt-4o-mini", 1),
        ]
        orders = {d.id: d.order for d in h.sim.state.deployments()}
        assert orders["openai-gpt-4o"] == 1 and orders["openai-gpt-4o-mini"] == 1
        rolled = h.store.events(run_id=run, types=[EventType.ACTION_ROLLED_BACK])
        assert len(rolled) == 1
        h.tick()
        assert after(h.records(rolled[0].ts), provider="openai")  # openai serves again
    finally:
        h.close()


def test_ttft_degradation_shifts_that_model_only() -> None:
    slow_4o = TtftDegradation(
        start=ONSET_S, duration=HOURS, provider="openai", model="gpt-4o", factor=3
    )
    h = start([slow_4o])
    try:
        h.skip(60)
        run = h.open_incident("inc-ttft", "ttft", {"provider": "openai", "model": "gpt-4o"})
        h.tick()  # auto mode: no approval, the traffic moves at once
        shifted = h.applied_at(run, 0)
        assert h.writes() == [order_update("openai-gpt-4o", 3)]
        h.until(lambda: h.state(run) is not None, max_ticks=6)
        assert h.state(run) == "succeeded"

        onset = h.sim.scenario.start + ONSET_S
        before = after(h.records(onset, shifted), requested_model="gpt-4o", fallback=False)
        later = h.records(shifted)
        assert after(later, provider="openai", model="gpt-4o") == []
        assert after(later, provider="openai", model="gpt-4o-mini")  # the healthy model stays
        slow = np.percentile([r["ttft_ms"] for r in before if r["ttft_ms"] is not None], 95)
        served = after(later, requested_model="gpt-4o", fallback=False)
        fast = np.percentile([r["ttft_ms"] for r in served if r["ttft_ms"] is not None], 95)
        assert slow > 1500 > fast
    finally:
        h.close()


def test_fallback_storm_fails_the_group_over() -> None:
    h = start([FallbackStorm(start=ONSET_S, duration=HOURS, requested_model="gpt-4o")])
    try:
        h.skip(60)
        run = h.open_incident("inc-storm", "fallback_storm", {"requested_model": "gpt-4o"})
        h.tick()
        h.approve(run, 0)
        h.tick()
        moved = h.applied_at(run, 1)
        assert h.writes() == [order_update("openai-gpt-4o", 3)]
        h.until(lambda: h.state(run) is not None, max_ticks=6)
        assert h.state(run) == "succeeded"

        onset = h.sim.scenario.start + ONSET_S
        before = after(h.records(onset, moved), requested_model="gpt-4o")
        later = after(h.records(moved), requested_model="gpt-4o")
        assert np.mean([r["fallback"] for r in before]) > 0.3
        assert np.mean([r["fallback"] for r in later]) < 0.05
        assert {r["provider"] for r in later if not r["fallback"]} == {"azure"}
    finally:
        h.close()
