"""Traffic-moving playbooks without an end-to-end test before: model-failover (one model of a
provider fails), ttft-provider-shift (a whole provider is slow) and cost-model-failover (one
deployment's price per token goes up)."""

from __future__ import annotations

import numpy as np

from gatewarden.models import EventType
from gatewarden.simulator import CostSpike, ProviderOutage, TtftDegradation, default_catalog
from gatewarden.simulator.catalog import Catalog

from .harness import ONSET_S, Record, after, start
from .test_routing_playbooks import order_update

HOURS = 3 * 3600.0


def test_model_failover_moves_only_the_failing_model() -> None:
    outage = ProviderOutage(
        start=ONSET_S, duration=HOURS, provider="openai", model="gpt-4o-mini", error_rate=0.5
    )
    h = start([outage])
    try:
        h.skip(60)
        scope = {"provider": "openai", "model": "gpt-4o-mini"}
        run = h.open_incident("inc-mini", "error_rate", scope)
        assert run.endswith(":model-failover")  # not provider-failover: it loads first
        h.tick()
        assert h.writes() == []  # waits for a human
        h.approve(run, 0)
        h.tick()
        moved = h.applied_at(run, 1)
        assert h.writes() == [order_update("openai-gpt-4o-mini", 3)]
        h.until(lambda: h.state(run) is not None, max_ticks=8)
        assert h.state(run) == "succeeded"

        onset = h.sim.scenario.start + ONSET_S
        before = after(h.records(onset, moved), provider="openai", model="gpt-4o-mini")
        assert np.mean([r["status"] >= 400 for r in before]) > 0.3
        later = h.records(moved)
        assert after(later, provider="openai", model="gpt-4o-mini") == []
        assert after(later, provider="azure", model="gpt-4o-mini")  # its group's other one
        assert after(later, provider="openai", model="gpt-4o")  # openai's healthy model stays
        mini = after(later, requested_model="gpt-4o-mini", fallback=False)
        assert np.mean([r["status"] >= 500 for r in mini]) < 0.02
    finally:
        h.close()


def test_ttft_provider_shift_moves_every_model_of_the_slow_provider() -> None:
    h = start([TtftDegradation(start=ONSET_S, duration=HOURS, provider="openai", factor=4)])
    try:
        h.skip(60)
        run = h.open_incident("inc-slow", "ttft", {"provider": "openai"})
        assert run.endswith(":ttft-provider-shift")
        h.tick()  # auto mode: the traffic moves at once
        shifted = h.applied_at(run, 0)
        moves = [order_update("openai-gpt-4o", 3), order_update("openai-gpt-4o-mini", 3)]
        assert h.writes() == moves
        granted = h.store.events(run_id=run, types=[EventType.APPROVAL_GRANTED])
        assert granted == []  # no approval step at all
        h.until(lambda: h.state(run) is not None, max_ticks=6)
        assert h.state(run) == "succeeded"

        onset = h.sim.scenario.start + ONSET_S
        before = after(h.records(onset, shifted), provider="openai")
        later = h.records(shifted)
        assert after(later, provider="openai") == []
        slow = np.percentile([r["ttft_ms"] for r in before if r["ttft_ms"] is not None], 95)
        fast = np.percentile([r["ttft_ms"] for r in later if r["ttft_ms"] is not None], 95)
        assert slow > 1500 > fast
    finally:
        h.close()


def repriced_catalog() -> Catalog:
    """Azure serves a dated gpt-4o snapshot, so a price change of "gpt-4o" hits OpenAI only."""
    catalog = default_catalog()
    deployments = [
        d.model_copy(update={"model": "gpt-4o-2024-08-06"}) if d.id == "azure-gpt-4o" else d
        for d in catalog.deployments
    ]
    return catalog.model_copy(update={"deployments": deployments})


def cost_per_token(records: list[Record]) -> float:
    """Mean cost per output token of the successful primary calls."""
    ok = [r for r in records if r["status"] == 200 and not r["fallback"]]
    return float(np.mean([r["cost_usd"] / max(1, r["output_tokens"]) for r in ok]))


def test_cost_model_failover_moves_traffic_off_the_repriced_deployment() -> None:
    spike = CostSpike(start=ONSET_S, duration=HOURS, model="gpt-4o", price_factor=4)
    h = start([spike], catalog=repriced_catalog())
    try:
        h.skip(60)
        run = h.open_incident("inc-price", "cost", {"provider": "openai", "model": "gpt-4o"})
        assert run.endswith(":cost-model-failover")
        h.tick()
        assert h.writes() == []  # the failover changes who answers: a human approves it
        h.approve(run, 0)
        h.tick()
        moved = h.applied_at(run, 1)
        assert h.writes() == [order_update("openai-gpt-4o", 3)]
        h.until(lambda: h.state(run) is not None, max_ticks=6)
        assert h.state(run) == "succeeded"

        onset = h.sim.scenario.start + ONSET_S
        before = after(h.records(onset, moved), requested_model="gpt-4o")
        later = after(h.records(moved), requested_model="gpt-4o")
        assert {r["provider"] for r in later if not r["fallback"]} == {"azure"}
        # The group's price per output token is back to the unchanged deployment's.
        assert cost_per_token(later) < cost_per_token(before) / 2
    finally:
        h.close()
