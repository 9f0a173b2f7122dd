"""The daemon's HTTP surface: liveness, readiness and self-metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gatewarden.httpserve import ThreadedServer
from gatewarden.ingest.health import SourceHealth
from gatewarden.web import StatusSnapshot, create_app

Client = Callable[[StatusSnapshot], httpx.Client]

BASE = StatusSnapshot(
    now=1000.0,
    tick_seconds=15.0,
    ticks=10,
    last_tick_at=995.0,
    last_tick_duration_s=0.05,
    records=1234,
    malformed=2,
    overruns=1,
    sources=(SourceHealth("logs", pulls=3, last_success=995.0), SourceHealth("metrics")),
    detector_series=42,
    open_incidents=3,
    outbox_depth=4,
    action_failures=1,
    store_ok=True,
)


class _Box:
    snapshot = BASE


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with ThreadedServer(create_app(lambda: _Box.snapshot), name="web-test") as srv:
        yield srv.url


@pytest.fixture
def client(server: str) -> Callable[[StatusSnapshot], httpx.Client]:
    def make(snapshot: StatusSnapshot) -> httpx.Client:
        _Box.snapshot = snapshot
        return httpx.Client(base_url=server, timeout=5)

    return make


def test_healthy_daemon(client: Client) -> None:
    c = client(BASE)
    health = c.get("/healthz")
    assert health.status_code == 200
    assert health.json()["live"] is True
    ready = c.get("/readyz")
    assert ready.status_code == 200 and ready.text.strip() == "ok"


def test_healthz_reports_each_source_and_a_never_pulled_one_is_not_up(client: Client) -> None:
    body = client(BASE).get("/healthz").json()
    logs, metrics = body["sources"]
    assert (logs["name"], logs["up"], logs["lag_s"]) == ("logs", True, 5.0)
    assert logs["last_success"] == 995.0
    assert (metrics["name"], metrics["up"], metrics["lag_s"]) == ("metrics", False, None)
    assert body["status"] == "degraded"  # a source is down; the daemon itself is live (200)


def test_healthz_does_not_echo_credentials_from_source_errors(client: Client) -> None:
    leaky = SourceHealth(
        "m",
        pulls=1,
        failures=1,
        consecutive_failures=1,
        last_error="ConnectError for url 'http://admin:hunter22@gw/metrics' Bearer sk-abcdef123456",
    )
    body = client(replace(BASE, sources=(leaky,))).get("/healthz").text
    assert "hunter22" not in body and "sk-abcdef123456" not in body
    assert "ConnectError" in body


def test_wedged_tick_loop_fails_liveness(client: Client) -> None:
    response = client(replace(BASE, now=1000.0 + 120)).get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "stalled"
    assert "no tick for" in response.json()["detail"]


def test_readiness_needs_store_ticks_and_a_working_source(client: Client) -> None:
    assert (
        client(replace(BASE, store_ok=False, store_error="locked")).get("/readyz").status_code
        == 503
    )
    assert client(replace(BASE, ticks=0, last_tick_at=None)).get("/readyz").status_code == 503
    failing = (
        SourceHealth("logs", consecutive_failures=2),
        SourceHealth("m", consecutive_failures=1),
    )
    response = client(replace(BASE, sources=failing)).get("/readyz")
    assert response.status_code == 503 and "every source is failing" in response.text


def test_metrics_expose_the_snapshot(client: Client) -> None:
    text = client(BASE).get("/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("gatewarden_ticks_total", ())] == 10
    assert samples[("gatewarden_open_incidents", ())] == 3
    assert samples[("gatewarden_outbox_depth", ())] == 4
    assert samples[("gatewarden_source_lag_seconds", (("source", "logs"),))] == 5.0
    assert samples[("gatewarden_source_up", (("source", "logs"),))] == 1.0
    # Never pulled: not up, and no lag or last success to report.
    assert samples[("gatewarden_source_up", (("source", "metrics"),))] == 0.0
    assert ("gatewarden_source_lag_seconds", (("source", "metrics"),)) not in samples
    assert samples[("gatewarden_tick_duration_seconds", ())] == 0.05


def test_unknown_paths_are_404(client: Client) -> None:
    assert client(BASE).get("/console").status_code == 404
