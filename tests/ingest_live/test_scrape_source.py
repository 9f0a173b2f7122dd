"""The /metrics scrape source against the simulator on 127.0.0.1: per-tick frames from counters
agree with the frames aggregated from the very requests the counters counted."""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gatewarden.aggregate import aggregate
from gatewarden.clock import VirtualClock
from gatewarden.errors import SourceError
from gatewarden.ingest.prom_rates import histogram_quantile
from gatewarden.ingest.prometheus_text import PrometheusScrapeSource
from gatewarden.ingest.request_log import records_frame
from gatewarden.ingest.sample_frames import frames_from_samples
from gatewarden.simulator import Scenario, Simulator, SimulatorServer
from gatewarden.simulator.metrics import LATENCY_BUCKETS
from gatewarden.simulator.scenario import DEFAULT_START

EXCERPT = Path(__file__).parent.parent / "fixtures" / "litellm_metrics_excerpt.txt"
TICK = 60.0


@pytest.fixture
def served() -> Iterator[tuple[Simulator, VirtualClock, str]]:
    clock = VirtualClock(DEFAULT_START)
    outage = {
        "type": "provider_outage",
        "provider": "openai",
        "model": "gpt-4o",
        "start": 300,
        "duration": 240,
        "error_rate": 0.9,
        "statuses": {500: 1.0},
    }
    scenario = Scenario.model_validate(
        {"seed": 5, "duration_s": 3600, "master_key": "sk-t", "faults": [outage]}
    )
    sim = Simulator(scenario, clock)
    server = SimulatorServer(sim, "127.0.0.1", 0)
    url = server.start()
    try:
        yield sim, clock, url
    finally:
        server.stop()


def test_frames_from_scrapes_match_frames_from_the_same_requests(
    served: tuple[Simulator, VirtualClock, str],
) -> None:
    sim, clock, url = served
    source = PrometheusScrapeSource(f"{url}/metrics")
    baseline = source.pull(clock.now()).samples
    assert baseline and {s.name for s in baseline} == {"litellm_deployment_state"}  # gauges only
    assert source.rates.last_result == "baseline"
    errors_seen = 0.0
    for _ in range(10):
        start = clock.now()
        end = clock.advance(TICK)
        batch = source.pull(end)
        prom = frames_from_samples(batch.samples, window=TICK)
        truth = aggregate(records_frame(sim.records(start, end)), start=start, end=end)
        for level in ("provider", "model"):
            for column in ("requests", "errors", "cost", "input_tokens", "output_tokens"):
                got = prom[level][column].sort_index()
                want = truth[level][column].sort_index().astype(float)
                assert got.to_dict() == pytest.approx(want.to_dict()), (level, column)
        fallbacks = prom["requested_model"]["fallbacks"].dropna()
        want_fb = truth["requested_model"]["fallbacks"]
        assert fallbacks.to_dict() == {k: want_fb[k] for k in fallbacks.index}
        assert prom["model"]["rps"].to_dict() == pytest.approx(
            (truth["model"]["requests"] / TICK).to_dict()
        )
        # TTFT p95: PromQL's histogram_quantile over this tick's observations, per model.
        records = records_frame(sim.records(start, end))
        for (provider, model), ttft in records.dropna(subset=["ttft_ms"]).groupby(
            ["provider", "model"]
        )["ttft_ms"]:
            counts = [0] * (len(LATENCY_BUCKETS) + 1)
            for value in ttft / 1000.0:
                counts[bisect.bisect_left(LATENCY_BUCKETS, value)] += 1
            cumulative = list(itertools.accumulate(counts))
            buckets = list(zip([*LATENCY_BUCKETS, math.inf], cumulative, strict=True))
            key = f"provider={provider},model={model}"
            want_p95 = histogram_quantile(0.95, buckets) * 1000
            assert prom["model"].loc[key, "ttft_p95"] == pytest.approx(want_p95), key
        errors_seen += float(prom["model"]["errors"].sum())
    assert errors_seen > 50  # the outage was inside the window and seen through the counters
    gauges = [s for s in batch.samples if s.name == "litellm_deployment_state"]
    assert gauges and {s.labels["litellm_model_name"] for s in gauges} >= {"gpt-4o"}


def test_the_same_page_twice_is_a_stale_scrape_not_zeros(
    served: tuple[Simulator, VirtualClock, str],
) -> None:
    _, clock, url = served
    source = PrometheusScrapeSource(f"{url}/metrics")
    source.pull(clock.now())
    clock.advance(TICK)
    assert any(s.name.startswith("gatewarden:") for s in source.pull(clock.now()).samples)
    again = source.pull(clock.now() + 1)  # the simulator's time did not move: same page
    assert again.samples == [] and source.stale == 1
    assert source.health_details(0.0)["stale_scrapes"] == 1


def test_a_gateway_restart_counts_the_new_values() -> None:
    text = EXCERPT.read_text()
    pages = [text, text.replace("} 4.0\n", "} 9.0\n"), text.replace("} 4.0\n", "} 2.0\n")]
    served = iter(pages)
    client = httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, text=next(served)))
    )
    source = PrometheusScrapeSource("http://gw/metrics", client=client)
    source.pull(100.0)
    grew = frames_from_samples(source.pull(115.0).samples, window=15)
    restarted = frames_from_samples(source.pull(130.0).samples, window=15)
    # The excerpt's only "4.0" counter: 4 -> 9 is +5, then 9 -> 2 is a restart: +2.
    assert grew["api_key"]["requests"].sum() == 5.0
    assert restarted["api_key"]["requests"].sum() == 2.0
    assert source.rates.resets >= 1


def test_unreachable_or_failing_metrics_endpoint_is_a_source_error() -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(503)))
    with pytest.raises(SourceError, match="503"):
        PrometheusScrapeSource("http://gw/metrics", client=client).pull(1.0)
    with pytest.raises(SourceError, match="ConnectError"):
        PrometheusScrapeSource("http://127.0.0.1:9/metrics", timeout=2.0).pull(1.0)


def test_raw_mode_and_garbage_pages() -> None:
    text = EXCERPT.read_text()
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, text=text)))
    raw = PrometheusScrapeSource("http://gw/metrics", client=client, metric_map=None).pull(1.0)
    assert any(s.name == "litellm_proxy_total_requests_metric_total" for s in raw.samples)
    half = text + 'broken{le="1" 2\n'
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, text=half)))
    batch = PrometheusScrapeSource("http://gw/metrics", client=client).pull(1.0)
    assert batch.malformed == 1 and "line" in batch.problems[0]
