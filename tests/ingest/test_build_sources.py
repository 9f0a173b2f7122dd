"""The sources ``gatewarden run`` builds from a daemon config file (``wiring.build_sources``),
pulled by a real pipeline against local stand-ins: a LiteLLM-like server (``/metrics/``,
``/spend/logs/v2``), a Prometheus HTTP API, the OTLP receiver the config starts, and a JSONL log
named relative to the config file. Secrets come from the environment, as configured."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from gatewarden.clock import VirtualClock
from gatewarden.config import load_config
from gatewarden.httpserve import ThreadedServer
from gatewarden.ingest import JsonlTailSource, PrometheusScrapeSource
from gatewarden.ingest.litellm_spend import LiteLLMSpendLogSource
from gatewarden.ingest.otlp_server import OtlpReceiver
from gatewarden.ingest.promql import PromQLSource
from gatewarden.pipeline import Pipeline
from gatewarden.store import SQLiteStore
from gatewarden.wiring import build_sources

FIXTURES = Path(__file__).parent.parent / "fixtures"
#: just after the spans of the OTLP fixture
START = 1795393700.0
ENV = {"GW_METRICS_TOKEN": "metrics-tok", "GW_PROM_TOKEN": "prom-tok", "GW_MASTER_KEY": "sk-m"}

CONFIG = """\
tick_seconds: 15
sources:
  - type: prometheus
    name: litellm_metrics
    url: "{url}/metrics"
    bearer_token: {{env: GW_METRICS_TOKEN}}
  - {{type: otlp, name: litellm_spans, host: 127.0.0.1, port: 0}}
  - type: promql
    name: prom
    url: "{url}"
    bearer_token: {{env: GW_PROM_TOKEN}}
    queries:
      - name: provider-errors
        level: provider
        metric: errors
        query: sum by (api_provider) (increase(litellm_deployment_failure_responses_total[1m]))
        labels: {{provider: api_provider}}
  - {{type: litellm_spend_logs, name: spend, url: "{url}", master_key: {{env: GW_MASTER_KEY}}}}
  - {{type: jsonl, name: logs, path: logs/requests.jsonl}}
"""


@dataclass
class Gateway:
    """What the stand-in server saw: the Authorization header per route."""

    auth: dict[str, set[str]] = field(default_factory=dict)
    scrapes: int = 0

    def app(self, clock: VirtualClock) -> Starlette:
        page = (FIXTURES / "litellm_metrics_excerpt.txt").read_text()

        def seen(request: Request) -> None:
            route = request.url.path
            self.auth.setdefault(route, set()).add(request.headers.get("authorization", ""))

        def metrics(request: Request) -> Response:
            seen(request)
            self.scrapes += 1
            # The excerpt's only "4.0" counter is a key's request total: it grows every scrape.
            return PlainTextResponse(page.replace("} 4.0\n", f"}} {4 + self.scrapes}.0\n"))

        def query_range(request: Request) -> Response:
            seen(request)
            series = {"metric": {"api_provider": "openai"}, "values": [[clock.now(), "7"]]}
            data = {"resultType": "matrix", "result": [series]}
            return JSONResponse({"status": "success", "data": data})

        def spend_logs(request: Request) -> Response:
            seen(request)
            start = datetime.fromtimestamp(clock.now() - 5, UTC).isoformat()
            row = {
                "request_id": f"spend-{int(clock.now())}",
                "startTime": start,
                "endTime": start,
                "model": "gpt-4o",
                "model_group": "primary",
                "custom_llm_provider": "openai",
                "api_key": "hashed-key",
                "status": "success",
                "prompt_tokens": 3,
                "completion_tokens": 4,
                "spend": 0.001,
            }
            return JSONResponse({"data": [row], "total_pages": 1})

        return Starlette(
            routes=[
                Route("/metrics/", metrics),  # LiteLLM serves /metrics/; /metrics redirects
                Route("/api/v1/query_range", query_range),
                Route("/spend/logs/v2", spend_logs),
            ]
        )


@pytest.fixture
def gateway() -> Iterator[tuple[Gateway, VirtualClock, str]]:
    clock = VirtualClock(START)
    gw = Gateway()
    with ThreadedServer(gw.app(clock), name="gateway") as server:
        yield gw, clock, server.url


def test_the_daemon_config_builds_every_source_and_each_one_delivers(
    tmp_path: Path, gateway: tuple[Gateway, VirtualClock, str]
) -> None:
    gw, clock, url = gateway
    config_file = tmp_path / "gatewarden.yaml"
    config_file.write_text(CONFIG.format(url=url))
    (tmp_path / "logs").mkdir()
    line = {
        "ts": START - 1,
        "request_id": "jsonl-1",
        "api_key": "k",
        "provider": "anthropic",
        "model": "claude",
        "requested_model": "claude",
        "status": 200,
        "latency_ms": 5,
        "input_tokens": 1,
        "output_tokens": 1,
        "cost_usd": 0,
    }
    (tmp_path / "logs" / "requests.jsonl").write_text(json.dumps(line) + "\n")

    closers: list[Callable[[], None]] = []
    config = load_config(config_file)
    sources = build_sources(
        config, since=clock.now() - config.tick_seconds, env=ENV, clock=clock, closers=closers
    )
    try:
        kinds = {s.name: type(s) for s in sources}
        assert kinds == {
            "litellm_metrics": PrometheusScrapeSource,
            "litellm_spans": OtlpReceiver,
            "prom": PromQLSource,
            "spend": LiteLLMSpendLogSource,
            "logs": JsonlTailSource,
        }
        [receiver] = [s for s in sources if isinstance(s, OtlpReceiver)]
        exported = httpx.post(
            f"{receiver.url}/v1/traces",
            content=(FIXTURES / "litellm_otlp_excerpt.json").read_bytes(),
            headers={"content-type": "application/json"},
        )
        assert exported.status_code == 200

        store = SQLiteStore(":memory:")
        pipeline = Pipeline(sources, [], clock, tick_seconds=15, checkpoints=store)
        first = pipeline.tick(clock.advance(15))
        second = pipeline.tick(clock.advance(15))
    finally:
        for close in closers:
            close()

    health = pipeline.health
    assert all(h.up for h in health.values()), {n: h.last_error for n, h in health.items()}
    records = [*first.records.to_dict("records"), *second.records.to_dict("records")]
    by_provider = {(r["request_id"], r["provider"]) for r in records}
    assert ("jsonl-1", "anthropic") in by_provider  # the log path resolved against the config
    assert {rid for rid, _ in by_provider if rid.startswith("spend-")}  # spend logs
    assert health["litellm_spans"].records == 7  # the request spans of the export
    assert health["logs"].records == 1 and health["spend"].records >= 1
    # PromQL: one frame value per tick; the scrape: a baseline, then per-tick increases.
    promql = [s for s in first.samples if s.name == "gatewarden:provider:errors"]
    assert [(s.labels, s.value) for s in promql] == [({"provider": "openai"}, 7.0)]
    requests = [s for s in second.samples if s.name == "gatewarden:api_key:requests"]
    assert requests and sum(s.value for s in requests) == 1.0
    # Each configured secret went to its own endpoint (resolved from the environment).
    assert gw.auth["/metrics/"] == {"Bearer metrics-tok"}
    assert gw.auth["/api/v1/query_range"] == {"Bearer prom-tok"}
    assert gw.auth["/spend/logs/v2"] == {"Bearer sk-m"}
    # Only a completed tick's position is stored: the JSONL tail is checkpointed.
    saved = store.get_state("source.logs.checkpoint")
    assert saved is not None and json.loads(saved)["files"][0]["offset"] > 0
