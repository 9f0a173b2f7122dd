"""A real LiteLLM proxy (1.106.2) in front of a fault-injecting fake OpenAI upstream.

gatewarden reads only what a production deployment would give it: the proxy's ``/metrics``
and the OTLP spans the proxy exports. An upstream outage on ``gpt-4o`` and a TTFT degradation
on ``gpt-4o-mini`` must each open the right incident, and each must resolve after recovery.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from gatewarden.aggregate import AggregateStage, SeriesHistory
from gatewarden.clock import SystemClock
from gatewarden.correlate import CorrelateStage
from gatewarden.correlate.config import CorrelateConfig
from gatewarden.detect import DetectStage
from gatewarden.detect.spec import load_detector_specs
from gatewarden.ingest.otlp_server import OtlpReceiver
from gatewarden.ingest.prometheus_text import PrometheusScrapeSource
from gatewarden.ingest.sample_frames import SampleFramesStage
from gatewarden.models import IncidentStatus
from gatewarden.pipeline import Pipeline
from gatewarden.store import SQLiteStore
from tests.litellm.fake_upstream import FakeUpstream
from tests.litellm.harness import Proxy
from tests.litellm.scenario import (
    DETECTORS,
    SENTINEL,
    TICK_S,
    Loop,
    Traffic,
    find,
    opened,
    resolved,
)


def test_outage_and_ttft_degradation_open_and_resolve_incidents(
    proxy: Proxy, upstream: FakeUpstream, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    store = SQLiteStore(tmp_path / "gatewarden.db")
    scrape = PrometheusScrapeSource(f"{proxy.url}/metrics/", name="litellm-metrics", timeout=10)
    correlate = CorrelateConfig(resolve_after_ticks=3, group_window_s=1, reopen_window_s=0)
    stages = [
        AggregateStage(),
        SampleFramesStage(),
        DetectStage(load_detector_specs(DETECTORS), history=SeriesHistory()),
        CorrelateStage(store, correlate),
    ]
    pipeline = Pipeline([scrape, receiver], stages, SystemClock(), tick_seconds=TICK_S)
    loop = Loop(pipeline, store)
    controls = upstream.controls
    try:
        with Traffic(proxy.url) as traffic:
            for _ in range(12):  # warm-up: baselines of every detector (warmup: 5 ticks)
                loop.tick()
            assert loop.incidents() == [], "no incident on healthy traffic"

            controls.set("gpt-4o", error_rate=1.0, status=500)
            outage_start = time.time()
            loop.until("an error-rate incident on gpt-4o", opened("error_rate", "gpt-4o"), 10)
            controls.set("gpt-4o", error_rate=0.0)
            outage_end = time.time()
            loop.until("the outage incident resolved", resolved("error_rate", "gpt-4o"), 15)

            # Far above what a loaded 2-core machine adds (TTFT p95 spikes of ~0.5 s seen).
            controls.set("gpt-4o-mini", ttft_ms=2500.0)
            loop.until("a TTFT incident on gpt-4o-mini", opened("ttft", "gpt-4o-mini"), 15)
            controls.set("gpt-4o-mini", ttft_ms=5.0)
            loop.until("the TTFT incident resolved", resolved("ttft", "gpt-4o-mini"), 15)
    finally:
        scrape.close()
    assert traffic.sent > 100

    incidents = loop.incidents()
    outage = find(incidents, "error_rate", "gpt-4o")
    slow = find(incidents, "ttft", "gpt-4o-mini")
    assert outage is not None and outage.scope == {"provider": "openai", "model": "gpt-4o"}
    assert slow is not None and slow.scope == {"provider": "openai", "model": "gpt-4o-mini"}
    assert all(i.status is IncidentStatus.RESOLVED for i in incidents), loop.describe()
    assert not [i for i in incidents if "gateway_unreachable" in i.kinds]

    # The outage as the spans showed it: primary failing, served by backup as fallbacks. Calls
    # are dated by their start; those in flight at either edge may have seen both states.
    seen = pd.concat([t.records for t in loop.ticks])
    outage_records = seen[(seen["ts"] > outage_start + 0.5) & (seen["ts"] < outage_end - 1.0)]
    failing = outage_records[outage_records["model"] == "gpt-4o"]
    assert (failing["status"] == 500).all() and len(failing) > 0
    rescued = outage_records[outage_records["fallback"]]
    assert len(rescued) > 0
    assert set(rescued["model"]) == {"gpt-4o-mini"} and set(rescued["requested_model"]) == {
        "primary"
    }
    # Both sources stayed healthy (a loaded proxy may answer one scrape late; three in a row
    # would have been a gateway_unreachable incident, checked above).
    health = pipeline.health
    assert health["litellm-metrics"].consecutive_failures == 0 and health["otlp"].failures == 0
    assert sum(1 for t in loop.ticks if any(s.name.startswith("gatewarden:") for s in t.samples))
    assert receiver.stats["rejected"] == 0
    # Prompt text never reached gatewarden's store.
    store.close()
    for path in tmp_path.glob("gatewarden.db*"):
        assert SENTINEL.encode() not in path.read_bytes()
