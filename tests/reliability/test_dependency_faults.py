"""Dependencies misbehave; the tick loop does not: hanging and garbage endpoints are bounded
by timeouts, counted, raised as gatewarden's own incident, and recovered from."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gatewarden.clock import VirtualClock
from gatewarden.correlate import CorrelateConfig, CorrelateStage
from gatewarden.httpserve import ThreadedServer
from gatewarden.ingest import HttpRequestLogSource, PrometheusScrapeSource
from gatewarden.models import EventType, IncidentStatus
from gatewarden.pipeline import Pipeline
from gatewarden.projections import incidents_from_events
from gatewarden.store import SQLiteStore


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a hung dependency)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


class Flaky:
    """A dependency whose behaviour the test switches: ok, garbage, or HTTP 500."""

    mode = "ok"

    def __init__(self) -> None:
        self.asked: list[tuple[str, float]] = []

    def app(self) -> Starlette:
        def metrics(request: Request) -> PlainTextResponse:
            if self.mode == "garbage":
                return PlainTextResponse("\x00\x01 this {{ is not prometheus")
            if self.mode == "error":
                return PlainTextResponse("boom", status_code=500)
            return PlainTextResponse('up{job="gw"} 1\n')

        def requests(request: Request) -> PlainTextResponse:
            self.asked.append((self.mode, float(request.query_params["since"])))
            if self.mode == "error":
                return PlainTextResponse("boom", status_code=500)
            return PlainTextResponse("")

        return Starlette(
            routes=[Route("/metrics", metrics), Route("/gatewarden/requests", requests)]
        )


def test_hanging_source_times_out_and_the_tick_completes(silent_port: int) -> None:
    clock = VirtualClock(1000.0)
    store = SQLiteStore(":memory:")
    hung = HttpRequestLogSource(f"http://127.0.0.1:{silent_port}", timeout=0.3, name="hung")
    pipeline = Pipeline(
        [hung],
        [CorrelateStage(store, CorrelateConfig(resolve_after_ticks=2))],
        clock,
        tick_seconds=15,
    )
    for _ in range(3):
        clock.advance(15)
        pipeline.tick()
    health = pipeline.health["hung"]
    assert health.consecutive_failures == 3
    assert "Timeout" in health.last_error
    [incident] = incidents_from_events(store.events())
    assert incident.kinds == ("gateway_unreachable",)
    assert incident.scope == {"source": "hung"}
    evidence = store.events(types=[EventType.ALERT_FIRED])[0].payload["evidence"]
    assert "Timeout" in evidence["detail"]


def test_garbage_and_errors_are_counted_then_recovered_from() -> None:
    flaky = Flaky()
    clock = VirtualClock(1000.0)
    store = SQLiteStore(":memory:")
    with ThreadedServer(flaky.app(), name="flaky") as server:
        sources = [
            PrometheusScrapeSource(f"{server.url}/metrics", timeout=2, name="metrics"),
            HttpRequestLogSource(server.url, timeout=2, name="logs", since=1000.0),
        ]
        pipeline = Pipeline(
            sources,
            [CorrelateStage(store, CorrelateConfig(resolve_after_ticks=2))],
            clock,
            tick_seconds=15,
        )

        def run(mode: str, ticks: int) -> None:
            flaky.mode = mode
            for _ in range(ticks):
                clock.advance(15)
                pipeline.tick()

        run("garbage", 2)
        assert pipeline.stats.malformed == 2  # one unparseable scrape per tick, counted
        assert pipeline.health["metrics"].consecutive_failures == 0
        before_errors = clock.now()
        run("error", 3)
        assert pipeline.health["logs"].consecutive_failures == 3
        incidents = incidents_from_events(store.events())
        assert {i.scope["source"] for i in incidents} == {"metrics", "logs"}
        run("ok", 3)
    incidents = incidents_from_events(store.events())
    assert all(i.status is IncidentStatus.RESOLVED for i in incidents)
    # The request-log cursor stayed put while failing: the first good pull re-asks the window.
    first_ok = next(since for mode, since in flaky.asked[5:] if mode == "ok")
    assert first_ok == before_errors
