"""Gateway state changes (what the admin API does) change the traffic from that instant on."""

from __future__ import annotations

from collections import deque

from gatewarden.simulator import ProviderOutage, Simulator
from tests.simulator.helpers import START, scenario, window

T = START + 600  # when each change is applied
END = START + 1200


def _sim(*faults: ProviderOutage) -> Simulator:
    sim = Simulator(scenario(*faults), metrics=False)
    sim.advance_to(T)
    return sim


def test_block_key_rejects_only_that_key() -> None:
    sim = _sim()
    sim.state.update_key("search-prod", blocked=True)
    records = sim.generate(START, END)
    before, after = window(records, START, T), window(records, T, END)
    assert not any(r["status"] == 401 for r in before)
    mine = [r for r in after if r["api_key"] == "search-prod"]
    assert len(mine) > 100
    for r in mine:
        assert (r["status"], r["error"], r["provider"]) == (401, "key_blocked", "gateway")
        assert r["model"] == r["requested_model"] and r["cost_usd"] == 0
        assert r["input_tokens"] == r["output_tokens"] == 0 and not r["fallback"]
    assert not any(r["status"] == 401 for r in after if r["api_key"] != "search-prod")

    sim.state.update_key("search-prod", blocked=False)
    later = sim.generate(END, END + 300)
    assert any(r["api_key"] == "search-prod" and r["status"] == 200 for r in later)
    assert not any(r["status"] == 401 for r in later)


def test_rpm_limit_rejects_over_the_sliding_minute() -> None:
    sim = _sim()
    sim.state.update_key("search-prod", rpm_limit=20)
    after = [r for r in sim.generate(T, END) if r["api_key"] == "search-prod"]
    limited = [r for r in after if r["status"] == 429]
    accepted = [r for r in after if r["error"] != "rate_limited"]
    assert len(limited) > 100
    assert all(r["provider"] == "gateway" and r["error"] == "rate_limited" for r in limited)
    # Within any trailing minute at most 20 requests got through.
    recent: deque[float] = deque()
    for r in accepted:
        if r["fallback"]:
            continue
        while recent and recent[0] <= r["ts"] - 60:
            recent.popleft()
        recent.append(r["ts"])
        assert len(recent) <= 20
    others = [r for r in sim.generate(T, END) if r["api_key"] != "search-prod"]
    assert not any(r["error"] == "rate_limited" for r in others)


def test_tpm_limit_and_budget() -> None:
    sim = _sim()
    sim.state.update_key("analytics-dash", tpm_limit=20_000)
    sim.state.update_key("support-web", max_budget=sim.spend("support-web") + 0.05)
    after = sim.generate(T, END)
    dash = [r for r in after if r["api_key"] == "analytics-dash"]
    assert any(r["error"] == "rate_limited" for r in dash)
    web = [r for r in after if r["api_key"] == "support-web"]
    assert web[-1]["error"] == "budget_exceeded" and web[-1]["status"] == 400
    assert sim.spend("support-web") < sim.state.key("support-web").max_budget + 0.2  # type: ignore[operator]


def test_order_change_moves_group_to_azure_immediately() -> None:
    sim = _sim(ProviderOutage(start=0, duration=3600, provider="openai", error_rate=0.5))
    for dep in ("openai-gpt-4o", "openai-gpt-4o-mini"):
        sim.state.update_deployment(dep, order=3)
    records = sim.generate(START, END)
    before, after = window(records, START, T), window(records, T, END)
    assert sum(r["provider"] == "openai" and r["status"] >= 400 for r in before) > 100
    assert sum(r["provider"] == "azure" for r in before) == 0
    assert not any(r["provider"] == "openai" for r in after)
    azure = [r for r in after if r["provider"] == "azure"]
    assert {r["model"] for r in azure} == {"gpt-4o", "gpt-4o-mini"}
    assert len(azure) > 1000
    # With openai out of the path, fallbacks drop back to the background rate.
    assert sum(r["fallback"] for r in after) < 0.01 * len(after)


def test_deployment_rpm_spills_to_next_order() -> None:
    sim = _sim()
    sim.state.update_deployment("openai-gpt-4o", rpm=30)
    after = [r for r in sim.generate(T, END) if r["requested_model"] == "gpt-4o"]
    per_provider = {p: sum(r["provider"] == p for r in after) for p in ("openai", "azure")}
    assert per_provider["openai"] <= 30 * 10 + 30  # 10 minutes at 30 rpm (+ window edge)
    assert per_provider["azure"] > per_provider["openai"]


def test_router_rate_limit_when_no_deployment_has_capacity() -> None:
    sim = _sim()
    sim.state.update_deployment("anthropic-claude-haiku", rpm=0)
    after = [r for r in sim.generate(T, END) if r["requested_model"] == "claude-haiku"]
    assert after and all(r["status"] == 429 and r["error"] == "router_rate_limit" for r in after)


def test_removing_fallbacks_stops_fallback_records() -> None:
    sim = _sim(ProviderOutage(start=0, duration=3600, provider="openai", error_rate=0.5))
    sim.state.set_fallbacks("gpt-4o", None)
    records = sim.generate(START, END)
    gpt4o_fb = [r for r in records if r["fallback"] and r["requested_model"] == "gpt-4o"]
    assert gpt4o_fb and all(r["ts"] < T + 60 for r in gpt4o_fb)
    # Clients now see the openai errors directly.
    assert (
        sum(
            r["status"] >= 500 and r["requested_model"] == "gpt-4o"
            for r in window(records, T + 60, END)
        )
        > 100
    )
    sim.state.set_fallbacks("gpt-4o", ["claude-haiku"])
    later = sim.generate(END, END + 300)
    assert any(
        r["fallback"] and r["model"] == "claude-haiku-4-5" and r["requested_model"] == "gpt-4o"
        for r in later
    )
