"""Failover against a real LiteLLM proxy that has no database: rewrite its config, restart it.

``primary`` routes to gpt-4o (``order: 1``) and keeps gpt-4o-mini as a spare (``order: 2``).
gpt-4o starts failing and never recovers: gatewarden (reading only ``/metrics`` and the OTLP
spans) opens an error-rate incident on gpt-4o, its playbook ranks gpt-4o behind the spare in
the config file, restarts the proxy through the reload command, verifies and resolves, while
the upstream still fails every gpt-4o call.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import yaml

from gatewarden.aggregate import AggregateStage, SeriesHistory
from gatewarden.clock import SystemClock
from gatewarden.correlate import CorrelateStage
from gatewarden.correlate.config import CorrelateConfig
from gatewarden.detect import DetectStage
from gatewarden.detect.spec import load_detector_specs
from gatewarden.gateways.litellm_config import LiteLLMConfigFile
from gatewarden.ingest.otlp_server import OtlpReceiver
from gatewarden.ingest.prometheus_text import PrometheusScrapeSource
from gatewarden.ingest.sample_frames import SampleFramesStage
from gatewarden.models import EventType, IncidentStatus
from gatewarden.pipeline import Pipeline
from gatewarden.remediate import RemediateStage
from gatewarden.remediate.language import load_playbooks
from gatewarden.store import SQLiteStore
from tests.litellm.conftest import ProxyFactory
from tests.litellm.fake_upstream import FakeUpstream
from tests.litellm.scenario import (
    DETECTORS,
    PLAYBOOKS,
    TICK_S,
    Loop,
    Traffic,
    find,
    opened,
    resolved,
)


def orders(config: Path) -> dict[str, int | None]:
    data = yaml.safe_load(config.read_text())
    return {m["model_info"]["id"]: m["litellm_params"].get("order") for m in data["model_list"]}


def test_model_outage_is_failed_over_through_the_config_file_and_a_restart(
    make_proxy: ProxyFactory, upstream: FakeUpstream, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    proxy = make_proxy(spare=True)
    clock = SystemClock()
    store = SQLiteStore(tmp_path / "gatewarden.db")
    history = SeriesHistory()
    gateway = LiteLLMConfigFile(
        proxy.config,
        reload_command=proxy.restart_command(),
        health_url=proxy.url,
        reload_timeout_s=60,
        health_attempts=90,
        health_interval_s=1.0,
    )
    scrape = PrometheusScrapeSource(f"{proxy.url}/metrics/", name="litellm-metrics", timeout=10)
    stages = [
        AggregateStage(),
        SampleFramesStage(),
        DetectStage(load_detector_specs(DETECTORS), history=history),
        CorrelateStage(store, CorrelateConfig(resolve_after_ticks=3, group_window_s=1)),
        RemediateStage(load_playbooks(PLAYBOOKS), store, gateway, history, clock),
    ]
    pipeline = Pipeline([scrape, receiver], stages, clock, tick_seconds=TICK_S)
    loop = Loop(pipeline, store)
    try:
        with Traffic(proxy.url):
            for _ in range(12):
                loop.tick()
            assert loop.incidents() == []
            upstream.controls.set("gpt-4o", error_rate=1.0, status=500)  # for good
            loop.until("an error-rate incident on gpt-4o", opened("error_rate", "gpt-4o"), 10)
            loop.until(
                "the incident resolved by the failover", resolved("error_rate", "gpt-4o"), 25
            )
            failed_over_at = time.time()
            calls_then = upstream.controls.snapshot()["calls"].get("gpt-4o", 0)
            for _ in range(3):
                loop.tick()
            calls_later = upstream.controls.snapshot()["calls"].get("gpt-4o", 0)
    finally:
        scrape.close()
        gateway.close()

    incident = find(loop.incidents(), "error_rate", "gpt-4o")
    assert incident is not None and incident.status is IncidentStatus.RESOLVED
    assert incident.mitigated_at is not None, loop.describe()
    applied = store.events(incident_id=incident.id, types=[EventType.ACTION_APPLIED])
    assert len(applied) == 1, loop.describe()
    # The file now ranks gpt-4o behind the spare; the restarted proxy routes primary to it.
    new = orders(proxy.config)
    assert new["primary-dep-1"] is not None and new["primary-dep-2"] is not None
    assert new["primary-dep-1"] > new["primary-dep-2"]
    assert calls_later == calls_then, "gpt-4o still called after the failover"
    after = pd.concat([t.records for t in loop.ticks[-3:]])
    served = after[(after["requested_model"] == "primary") & ~after["fallback"]]
    assert len(served) > 0 and set(served["model"]) == {"gpt-4o-mini"}
    assert (served["status"] == 200).all()
    assert failed_over_at > incident.opened_at
    store.close()
