"""Scrape-path speed on a simulator-sized LiteLLM page.

Run: ``python -m tests.ingest_live.bench_prom_scrape`` (meant to move to ``benchmarks/``).

Prints the median of several runs for: prometheus_client's parser (the reference), the fast
parser, counter deltas + LiteLLM frame samples, frames from samples, and OTLP decoding of the
real-capture excerpt. Figures, not assertions: the machine is shared.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from gatewarden.clock import VirtualClock
from gatewarden.ingest.litellm_metrics import LITELLM
from gatewarden.ingest.otlp import spans_from_json
from gatewarden.ingest.prom_parse import parse_scrape
from gatewarden.ingest.prom_rates import Deltas, RateTracker
from gatewarden.ingest.sample_frames import frames_from_samples
from gatewarden.simulator import Scenario, Simulator
from gatewarden.simulator.scenario import DEFAULT_START

REPEAT = 5
OTLP = Path(__file__).parent.parent / "fixtures" / "litellm_otlp_excerpt.json"


def median_s(fn: Callable[[], object], repeat: int = REPEAT) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    clock = VirtualClock(DEFAULT_START)
    scenario = Scenario.model_validate({"seed": 3, "duration_s": 7200, "master_key": "sk-b"})
    sim = Simulator(scenario, clock)
    clock.advance(1800)
    first = sim.exposition().decode()
    clock.advance(15)
    second = sim.exposition().decode()
    samples = len(parse_scrape(second, 0).samples)
    print(f"page: {len(second) / 1e6:.2f} MB, {second.count(chr(10))} lines, {samples} samples")

    def reference() -> None:
        for family in text_string_to_metric_families(second):
            list(family.samples)

    ref = median_s(reference)
    fast = median_s(lambda: parse_scrape(second, 0))
    print(f"prometheus_client parser: {ref * 1e3:8.1f} ms")
    print(f"parse_scrape (fast path): {fast * 1e3:8.1f} ms  ({ref / fast:.1f}x faster)")

    base, later = parse_scrape(first, 1.0), parse_scrape(second, 16.0)

    def deltas() -> Deltas:
        tracker = RateTracker()
        tracker.update(base)
        started = time.perf_counter()
        out = tracker.update(later)
        timed.append(time.perf_counter() - started)  # the baseline scrape is not timed
        assert out is not None
        return out

    timed: list[float] = []
    median_s(deltas)
    print(f"counter deltas (update):  {statistics.median(timed) * 1e3:8.1f} ms")
    step = deltas()
    mapping = median_s(lambda: LITELLM.frame_samples(step))
    cells = LITELLM.frame_samples(step)
    print(f"LiteLLM map -> cells:     {mapping * 1e3:8.1f} ms  ({len(cells)} cells)")
    build = median_s(lambda: frames_from_samples(cells, window=15.0))
    print(f"frames from samples:      {build * 1e3:8.1f} ms")

    body = json.dumps(json.loads(OTLP.read_text())).encode()
    spans = len(list(spans_from_json(body)))
    decode = median_s(lambda: list(spans_from_json(body)), repeat=20)
    print(
        f"OTLP/JSON decode:         {decode * 1e3:8.2f} ms for {spans} spans "
        f"({spans / decode:,.0f} spans/s)"
    )


if __name__ == "__main__":
    main()
