"""``/metrics``: real LiteLLM names and labels, parseable, monotonic, consistent with records."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gatewarden.simulator import ProviderOutage, Simulator
from gatewarden.simulator.catalog import default_catalog
from tests.simulator.helpers import START, Live, scenario

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "litellm-samples/metrics_scrape.txt"
REQUIRED = [
    "litellm_proxy_total_requests_metric",
    "litellm_proxy_failed_requests_metric",
    "litellm_llm_api_time_to_first_token_metric",
    "litellm_llm_api_latency_metric",
    "litellm_request_total_latency_metric",
    "litellm_spend_metric",
    "litellm_input_tokens_metric",
    "litellm_output_tokens_metric",
    "litellm_total_tokens_metric",
    "litellm_deployment_state",
    "litellm_deployment_success_responses",
    "litellm_deployment_failure_responses",
    "litellm_deployment_total_requests",
    "litellm_deployment_successful_fallbacks",
    "litellm_deployment_failed_fallbacks",
    "litellm_deployment_cooled_down",
]

Families = dict[str, Any]


def _families(text: str) -> Families:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _values(
    fams: Families, name: str, suffix: str = ""
) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for s in fams[name].samples
        if s.name == name + suffix
    }


def _total(fams: Families, name: str, suffix: str = "_total", **match: str) -> float:
    return sum(
        float(s.value)
        for s in fams[name].samples
        if s.name == name + suffix and all(s.labels.get(k) == v for k, v in match.items())
    )


def _outage_sim() -> Simulator:
    fault = ProviderOutage(start=300, duration=600, provider="openai", error_rate=0.6)
    return Simulator(scenario(fault))


def test_families_types_and_label_names_match_real_litellm() -> None:
    sim = _outage_sim()
    sim.advance_to(START + 1200)
    ours = _families(sim.metrics.exposition().decode())  # type: ignore[union-attr]
    for name in REQUIRED:
        assert name in ours, name
        assert ours[name].samples, name
    if not SAMPLE.exists():
        pytest.skip("real LiteLLM scrape not available")
    real = _families(SAMPLE.read_text())
    for name, fam in ours.items():
        assert name in real, f"{name} is not a LiteLLM metric"
        assert fam.type == real[name].type, name
        real_labels = {k for s in real[name].samples for k in s.labels}
        our_labels = {k for s in fam.samples for k in s.labels}
        assert our_labels == real_labels, name
        real_les = [s.labels["le"] for s in real[name].samples if "le" in s.labels]
        our_les = [s.labels["le"] for s in fam.samples if "le" in s.labels]
        assert set(our_les) == set(real_les), name


def test_counters_consistent_with_released_records() -> None:
    sim = _outage_sim()
    records = sim.generate(START, START + 1200)
    fams = _families(sim.metrics.exposition().decode())  # type: ignore[union-attr]
    ok = [r for r in records if r["status"] == 200]
    traces = Counter(r["trace_id"] for r in records)

    # One client request per trace; provider calls per record.
    assert _total(fams, "litellm_proxy_total_requests_metric") == len(traces)
    finals: dict[str, dict[str, Any]] = {r["trace_id"]: r for r in records}
    assert _total(fams, "litellm_proxy_failed_requests_metric") == sum(
        r["status"] >= 400 for r in finals.values()
    )
    provider_calls = [r for r in records if r["provider"] != "gateway"]
    assert _total(fams, "litellm_deployment_total_requests") == len(provider_calls)
    assert _total(fams, "litellm_deployment_success_responses") == len(ok)
    assert _total(fams, "litellm_deployment_failure_responses") == sum(
        r["status"] >= 400 for r in provider_calls
    )
    assert _total(fams, "litellm_spend_metric") == pytest.approx(sum(r["cost_usd"] for r in ok))
    assert _total(fams, "litellm_input_tokens_metric") == sum(r["input_tokens"] for r in ok)
    assert _total(fams, "litellm_output_tokens_metric") == sum(r["output_tokens"] for r in ok)
    assert _total(fams, "litellm_total_tokens_metric") == sum(
        r["input_tokens"] + r["output_tokens"] for r in ok
    )
    streamed = [r for r in ok if r["ttft_ms"] is not None]
    ttft = "litellm_llm_api_time_to_first_token_metric"
    assert _total(fams, ttft, "_count") == len(streamed)
    assert _total(fams, ttft, "_sum") == pytest.approx(sum(r["ttft_ms"] for r in streamed) / 1e3)
    assert _total(fams, "litellm_llm_api_latency_metric", "_count") == len(ok)
    # Per deployment.
    for dep in default_catalog().deployments:
        calls = [
            r for r in provider_calls if (r["provider"], r["model"]) == (dep.provider, dep.model)
        ]
        assert _total(fams, "litellm_deployment_total_requests", model_id=dep.id) == len(calls)
    # Fallbacks.
    fallbacks = [r for r in records if r["fallback"]]
    assert fallbacks
    assert _total(fams, "litellm_deployment_successful_fallbacks") == sum(
        r["status"] == 200 for r in fallbacks
    )
    assert _total(fams, "litellm_deployment_failed_fallbacks") == sum(
        r["status"] >= 400 for r in fallbacks
    )
    assert (
        _total(
            fams,
            "litellm_deployment_successful_fallbacks",
            requested_model="gpt-4o",
            fallback_model="claude-sonnet",
        )
        > 0
    )
    assert _total(fams, "litellm_deployment_cooled_down", api_provider="openai") > 0
    key = next(k for k in default_catalog().keys if k.alias == "search-prod")
    assert _total(
        fams,
        "litellm_proxy_total_requests_metric",
        api_key_alias="search-prod",
        hashed_api_key=key.hashed,
    ) == sum(r["api_key"] == "search-prod" for r in finals.values())


def test_histogram_buckets_are_cumulative() -> None:
    sim = _outage_sim()
    sim.advance_to(START + 600)
    fams = _families(sim.metrics.exposition().decode())  # type: ignore[union-attr]
    name = "litellm_llm_api_latency_metric"
    series: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    for s in fams[name].samples:
        if s.name == name + "_bucket":
            key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
            series.setdefault(key, []).append((float(s.labels["le"]), s.value))
    counts = _values(fams, name, "_count")
    assert series
    for key, buckets in series.items():
        values = [v for _, v in sorted(buckets)]
        assert values == sorted(values)
        assert values[-1] == counts[key]


def test_metrics_over_http_monotonic(live: Live) -> None:
    live.step(120)
    first = _families(live.client.get("/metrics").text)
    hashed = next(k for k in default_catalog().keys if k.alias == "search-prod").hashed
    live.client.post("/key/block", json={"key": hashed}, headers=live.auth)
    live.step(240)
    second_resp = live.client.get("/metrics/")
    assert second_resp.headers["content-type"].startswith("text/plain")
    second = _families(second_resp.text)
    for name in REQUIRED:
        if name == "litellm_deployment_state":
            continue
        suffixes = (
            ("_count", "_sum", "_bucket") if second[name].type == "histogram" else ("_total",)
        )
        for suffix in suffixes:
            before = _values(first, name, suffix)
            after = _values(second, name, suffix)
            for labels, value in before.items():
                assert after[labels] >= value, (name, labels)
    assert _total(second, "litellm_proxy_total_requests_metric") > _total(
        first, "litellm_proxy_total_requests_metric"
    )
    blocked = _total(
        second,
        "litellm_proxy_failed_requests_metric",
        api_key_alias="search-prod",
        exception_status="401",
    )
    records = live.requests(START)
    assert blocked == sum(r["status"] == 401 for r in records) > 0
    states = _values(second, "litellm_deployment_state")
    assert set(states.values()) <= {0.0, 1.0, 2.0} and len(states) == 6
