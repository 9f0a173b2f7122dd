"""Each fault type changes the right records (and only those), and yields the right label."""

from __future__ import annotations

import itertools
import statistics
from typing import Any

from gatewarden.simulator import (
    AgentLoop,
    CostSpike,
    FallbackStorm,
    KeySurge,
    ProviderOutage,
    Simulator,
    TtftDegradation,
    default_demo_scenario,
)
from tests.simulator.helpers import START, error_ratio, scenario, window

Records = list[dict[str, Any]]


def _run(*faults: Any, span: float = 1800.0) -> tuple[Simulator, Records]:
    sim = Simulator(scenario(*faults), metrics=False)
    return sim, sim.generate(START, START + span)


def test_demo_outage_raises_openai_errors_only_during_window() -> None:
    demo = default_demo_scenario()
    sim = Simulator(demo, metrics=False)
    records = sim.generate(demo.start, demo.end)
    t_start, t_end = demo.start + 40 * 60, demo.start + 65 * 60
    openai = [r for r in records if r["provider"] == "openai"]
    assert error_ratio(window(openai, demo.start, t_start)) < 0.02
    assert error_ratio(window(openai, t_start, t_end)) > 0.30
    assert error_ratio(window(openai, t_end, demo.end)) < 0.02
    statuses = {r["status"] for r in window(openai, t_start, t_end) if r["status"] >= 400}
    assert statuses == {500, 503, 429}
    # The outage is visible as fallbacks onto the anthropic groups.
    during = window(records, t_start, t_end)
    served = {(r["requested_model"], r["model"]) for r in during if r["fallback"]}
    assert ("gpt-4o", "claude-sonnet-4-5") in served
    assert ("gpt-4o-mini", "claude-haiku-4-5") in served
    per_min_during = sum(r["fallback"] for r in during) / 25
    per_min_before = sum(r["fallback"] for r in window(records, demo.start, t_start)) / 40
    assert per_min_during > 20 * max(per_min_before, 0.5)
    assert sim.labels() == [
        {
            "kind": "error_rate",
            "start": t_start,
            "end": t_end,
            "scope": {"provider": "openai"},
            "fault": "provider_outage",
        }
    ]


def test_fallback_records_are_paired_with_the_failed_call() -> None:
    _, records = _run(ProviderOutage(start=0, duration=900, provider="openai", error_rate=0.6))
    by_trace: dict[str, Records] = {}
    for r in records:
        by_trace.setdefault(str(r["trace_id"]), []).append(r)
    fallbacks = [r for r in records if r["fallback"]]
    assert len(fallbacks) > 200
    for fb in fallbacks:
        chain = by_trace[str(fb["trace_id"])]
        first = chain[0]
        assert not first["fallback"]
        assert first["status"] >= 500 or first["status"] == 429
        assert fb["request_id"].startswith(first["request_id"] + "-fb")
        assert fb["requested_model"] == first["requested_model"]
        assert fb["ts"] >= first["ts"] + first["latency_ms"] / 1000 - 0.002
        assert fb["session_id"] == first["session_id"] and fb["api_key"] == first["api_key"]
        expected = {
            "gpt-4o": "claude-sonnet-4-5",
            "gpt-4o-mini": "claude-haiku-4-5",
            "claude-sonnet": "gpt-4o",
        }
        assert fb["model"] == expected[first["requested_model"]]
        assert fb["provider"] != "gateway"
    # A successful primary call is never followed by a fallback.
    for chain in by_trace.values():
        assert all(r["status"] >= 400 for r in chain[:-1])


def test_ttft_degradation_scoped_to_provider() -> None:
    fault = TtftDegradation(start=900, duration=900, provider="anthropic", factor=3.0)
    sim, records = _run(fault)

    def median_ttft(provider: str, t0: float, t1: float) -> float:
        return statistics.median(
            float(r["ttft_ms"])
            for r in window(records, t0, t1)
            if r["provider"] == provider and r["ttft_ms"] is not None
        )

    before, during = (START, START + 900), (START + 900, START + 1800)
    assert median_ttft("anthropic", *during) > 2.5 * median_ttft("anthropic", *before)
    ratio = median_ttft("openai", *during) / median_ttft("openai", *before)
    assert 0.85 < ratio < 1.15
    assert sim.labels()[0]["kind"] == "ttft" and sim.labels()[0]["scope"] == {
        "provider": "anthropic"
    }


def test_cost_spike_on_workflow_output_tokens() -> None:
    fault = CostSpike(start=900, duration=900, workflow="support-chat", output_factor=6.0)
    sim, records = _run(fault)

    def mean_out(workflow: str, t0: float, t1: float) -> float:
        return statistics.mean(
            int(r["output_tokens"])
            for r in window(records, t0, t1)
            if r["workflow"] == workflow and r["status"] == 200
        )

    assert mean_out("support-chat", START + 900, START + 1800) > 3 * mean_out(
        "support-chat", START, START + 900
    )
    ratio = mean_out("search-answer", START + 900, START + 1800) / mean_out(
        "search-answer", START, START + 900
    )
    assert 0.6 < ratio < 1.6
    assert sim.labels()[0]["scope"] == {"workflow": "support-chat"}
    assert sim.labels()[0]["kind"] == "cost"


def test_cost_spike_price_change_on_model() -> None:
    fault = CostSpike(start=900, duration=900, model="gpt-4o-mini", price_factor=10.0)
    _, records = _run(fault)

    def unit_cost(model: str, t0: float, t1: float) -> float:
        ok = [r for r in window(records, t0, t1) if r["model"] == model and r["status"] == 200]
        return sum(float(r["cost_usd"]) for r in ok) / sum(
            int(r["input_tokens"]) + int(r["output_tokens"]) for r in ok
        )

    before, during = (START, START + 900), (START + 900, START + 1800)
    assert unit_cost("gpt-4o-mini", *during) > 5 * unit_cost("gpt-4o-mini", *before)
    assert unit_cost("gpt-4o", *during) < 2 * unit_cost("gpt-4o", *before)


def test_agent_loop_repeats_prompt_and_tool() -> None:
    fault = AgentLoop(start=600, duration=600, workflow="code-agent")
    sim, records = _run(fault)
    label = sim.labels()[0]
    assert label["kind"] == "agent_loop" and label["fault"] == "agent_loop"
    session = label["scope"]["session_id"]
    assert label["scope"]["workflow"] == "code-agent"
    loop = [r for r in records if r["session_id"] == session]
    assert 600 / 5 <= len(loop) <= 600 / 2 + 1
    assert len({r["prompt_hash"] for r in loop}) == 1
    assert len({r["tool"] for r in loop}) == 1 and loop[0]["tool"] is not None
    assert {r["api_key"] for r in loop} == {label["scope"]["api_key"]}
    primaries = [r for r in loop if not r["fallback"]]
    gaps = [b["ts"] - a["ts"] for a, b in itertools.pairwise(primaries)]
    assert min(gaps) >= 1.9 and max(gaps) <= 5.1
    assert all(label["start"] <= r["ts"] < label["end"] + 60 for r in loop)


def test_fallback_storm_moves_one_group_to_its_fallback() -> None:
    fault = FallbackStorm(start=900, duration=600, requested_model="gpt-4o-mini")
    sim, records = _run(fault)
    during = window(records, START + 900, START + 1500)
    before = window(records, START, START + 900)

    def fb(rs: Records, group: str) -> int:
        return sum(r["fallback"] and r["requested_model"] == group for r in rs)

    assert fb(during, "gpt-4o-mini") > 100 * max(1, fb(before, "gpt-4o-mini")) / 10
    assert all(
        r["model"] == "claude-haiku-4-5"
        for r in during
        if r["fallback"] and r["requested_model"] == "gpt-4o-mini"
    )
    mini_primary = [r for r in during if r["model"] == "gpt-4o-mini" and r["provider"] == "openai"]
    assert error_ratio(mini_primary) > 0.8
    gpt4o = [r for r in during if r["model"] == "gpt-4o" and r["provider"] == "openai"]
    assert error_ratio(gpt4o) < 0.03
    assert sim.labels()[0]["scope"] == {"requested_model": "gpt-4o-mini"}
    assert sim.labels()[0]["kind"] == "fallback_storm"


def test_key_surge_multiplies_one_key_and_leaves_the_rest_identical() -> None:
    fault = KeySurge(start=900, duration=600, api_key="growth-campaigns", factor=20)
    sim, records = _run(fault)
    _, baseline = _run()

    def count(rs: Records, t0: float, t1: float) -> int:
        return sum(r["api_key"] == "growth-campaigns" for r in window(rs, t0, t1))

    assert count(records, START + 900, START + 1500) > 10 * count(records, START, START + 600)
    assert count(records, START + 1500, START + 1800) < 3 * count(records, START, START + 300) + 5
    others = [r for r in records if r["api_key"] != "growth-campaigns"]
    assert others == [r for r in baseline if r["api_key"] != "growth-campaigns"]
    assert sim.labels()[0]["kind"] == "traffic"
    assert sim.labels()[0]["scope"] == {"api_key": "growth-campaigns"}


def test_runtime_fault_injection_matches_scenario_fault() -> None:
    """A fault added at its start time behaves like one declared in the scenario."""
    fault = KeySurge(start=600, duration=300, api_key="support-web", factor=10)
    declared = Simulator(scenario(fault), metrics=False).generate(START, START + 1200)
    runtime = Simulator(scenario(), metrics=False)
    runtime.advance_to(START + 600)
    runtime.add_fault(fault)
    assert runtime.generate(START, START + 1200) == declared
