"""Per-source health through the real pipeline and the daemon's web app: a source that raises
what no source should is counted, logged with its name and becomes gateway_unreachable while
the other sources keep flowing; /healthz and /metrics show each source's figures."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gatewarden.clock import VirtualClock
from gatewarden.httpserve import ThreadedServer
from gatewarden.ingest import JsonlTailSource, PrometheusScrapeSource
from gatewarden.pipeline import UNREACHABLE_AFTER, Pipeline
from gatewarden.protocols import Batch
from gatewarden.web import StatusSnapshot, create_app
from tests.ingest.lines import record_line

EXCERPT = Path(__file__).parent.parent / "fixtures" / "litellm_metrics_excerpt.txt"


class Buggy:
    """A source with a bug: it raises an exception type no source is meant to raise."""

    name = "buggy"

    def pull(self, until: float) -> Batch:
        raise KeyError("model_group")


class Interrupted:
    name = "interrupted"

    def pull(self, until: float) -> Batch:
        raise KeyboardInterrupt


@pytest.fixture
def frozen_exporter() -> Iterator[str]:
    """A /metrics that serves the same page every time (a stuck exporter or caching proxy)."""
    page = EXCERPT.read_text()

    def metrics(request: Request) -> PlainTextResponse:
        return PlainTextResponse(page)

    with ThreadedServer(Starlette(routes=[Route("/metrics", metrics)]), name="frozen") as server:
        yield f"{server.url}/metrics"


def status_of(pipeline: Pipeline, now: float) -> StatusSnapshot:
    """What ``Assembly.status`` reports for a pipeline (no store, no incidents here)."""
    stats = pipeline.stats
    return StatusSnapshot(
        now=now,
        tick_seconds=pipeline.tick_seconds,
        ticks=stats.ticks,
        last_tick_at=stats.last_tick_at,
        last_tick_duration_s=stats.last_duration_s,
        records=stats.records,
        malformed=stats.malformed,
        overruns=0,
        sources=tuple(pipeline.health.values()),
        detector_series=0,
        open_incidents=0,
        outbox_depth=0,
        action_failures=0,
        store_ok=True,
    )


def test_a_buggy_source_degrades_to_unreachable_and_the_others_keep_flowing(
    tmp_path: Path, frozen_exporter: str, caplog: pytest.LogCaptureFixture
) -> None:
    log_path = tmp_path / "requests.jsonl"
    clock = VirtualClock(1000.0)
    sources = [
        Buggy(),
        JsonlTailSource(log_path, name="logs"),
        PrometheusScrapeSource(frozen_exporter, name="metrics", timeout=5),
    ]
    pipeline = Pipeline(sources, [], clock, tick_seconds=15)
    caplog.set_level(logging.WARNING)
    for n in range(UNREACHABLE_AFTER):
        with log_path.open("a") as handle:
            handle.write(record_line(f"r{n}", clock.now()) + "\n")
        tick = pipeline.tick(clock.advance(15))
        assert tick.records["request_id"].tolist() == [f"r{n}"]  # the tick went on
    unreachable = [a for a in tick.alerts if a.kind == "gateway_unreachable"]
    assert [a.scope for a in unreachable] == [{"source": "buggy"}]
    assert "KeyError" in unreachable[0].evidence.detail
    buggy = [r for r in caplog.records if "buggy" in r.getMessage()]
    assert len(buggy) == UNREACHABLE_AFTER and all(r.levelno == logging.ERROR for r in buggy)
    # One traceback for the distinct error, not one per tick.
    assert [r.exc_info is not None for r in buggy] == [True, False, False]

    app = create_app(lambda: status_of(pipeline, clock.now() + 5))
    with ThreadedServer(app, name="web") as web, httpx.Client(base_url=web.url) as client:
        body = client.get("/healthz").json()
        ready = client.get("/readyz").status_code
        exposition = client.get("/metrics").text
    assert body["status"] == "degraded" and body["live"] is True
    by_name = {s["name"]: s for s in body["sources"]}
    assert by_name["buggy"]["up"] is False
    assert (by_name["buggy"]["unexpected_errors"], by_name["buggy"]["consecutive_failures"]) == (
        3,
        3,
    )
    assert by_name["buggy"]["last_success"] is None and "KeyError" in by_name["buggy"]["last_error"]
    assert by_name["logs"]["up"] is True and by_name["logs"]["records"] == 3
    assert by_name["logs"]["lag_s"] == 5.0
    # The frozen exporter answered (up) but every page after the baseline repeated it.
    assert by_name["metrics"]["up"] is True and by_name["metrics"]["stale_scrapes"] == 2
    assert ready == 200  # not every source is failing

    metrics = {
        (s.name, s.labels.get("source")): s.value
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
    }
    assert metrics[("gatewarden_source_up", "buggy")] == 0.0
    assert metrics[("gatewarden_source_up", "logs")] == 1.0
    assert metrics[("gatewarden_source_unexpected_errors_total", "buggy")] == 3
    assert metrics[("gatewarden_source_failures_total", "buggy")] == 3
    assert metrics[("gatewarden_source_consecutive_failures", "buggy")] == 3
    assert metrics[("gatewarden_source_stale_scrapes_total", "metrics")] == 2
    assert ("gatewarden_source_stale_scrapes_total", "logs") not in metrics  # not a scrape
    assert metrics[("gatewarden_source_records_total", "logs")] == 3
    assert metrics[("gatewarden_source_last_success_timestamp_seconds", "logs")] == clock.now()
    assert ("gatewarden_source_lag_seconds", "buggy") not in metrics  # never succeeded


def test_an_unreadable_log_is_a_source_failure(tmp_path: Path) -> None:
    pipeline = Pipeline(
        [JsonlTailSource(tmp_path, name="logs")], [], VirtualClock(0), tick_seconds=15
    )
    pipeline.tick(15.0)  # the path is a directory: counted, not raised
    health = pipeline.health["logs"]
    assert (health.failures, health.unexpected) == (1, 0)
    assert "cannot read" in health.last_error


def test_an_interrupt_still_stops_the_daemon() -> None:
    pipeline = Pipeline([Interrupted()], [], VirtualClock(0), tick_seconds=15)
    with pytest.raises(KeyboardInterrupt):
        pipeline.tick(15.0)
