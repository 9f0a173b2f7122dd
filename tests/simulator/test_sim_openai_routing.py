"""Client calls share the generated traffic's router and gateway state: faults, fallbacks,
blocked keys and key rate limits apply to them, and they never perturb generated traffic."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from gatewarden.clock import VirtualClock
from gatewarden.simulator import Simulator, SimulatorServer
from gatewarden.simulator.catalog import default_catalog
from tests.simulator.helpers import START, Live, scenario

TOKENS = {k.alias: k.token for k in default_catalog().keys}
HELLO = [{"role": "user", "content": "What changed in the last deploy?"}]
CHAT = "/v1/chat/completions"


def bearer(alias: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[alias]}"}


def trace(live: Live, trace_id: str) -> list[dict[str, Any]]:
    return [r for r in live.requests(START) if r["trace_id"] == trace_id]


def outage(live: Live, provider: str, status: int) -> None:
    fault = {
        "type": "provider_outage",
        "provider": provider,
        "error_rate": 1.0,
        "statuses": {str(status): 1.0},
        "duration": 600,
    }
    assert live.client.post("/sim/faults", json=fault).status_code == 201


def test_provider_outage_fails_over_to_the_fallback_group(live: Live) -> None:
    outage(live, "openai", 503)
    body = {"model": "gpt-4o", "messages": HELLO, "metadata": {"trace_id": "t-failover"}}
    resp = live.client.post(CHAT, json=body, headers=bearer("search-prod"))
    assert resp.status_code == 200, resp.text
    assert resp.json()["model"] == "claude-sonnet-4-5"
    assert resp.headers["x-litellm-attempted-fallbacks"] == "1"
    assert resp.headers["x-litellm-model-group"] == "claude-sonnet"
    assert resp.headers["x-litellm-model-id"] == "anthropic-claude-sonnet"
    live.step(30)
    first, second = trace(live, "t-failover")
    assert (first["provider"], first["status"], first["fallback"]) == ("openai", 503, False)
    assert first["error"] == "Openai.ServiceUnavailableError"
    assert (second["provider"], second["status"], second["fallback"]) == ("anthropic", 200, True)
    assert second["requested_model"] == "gpt-4o" and second["request_id"] == resp.json()["id"]
    # The fallback starts when the failed call ends; the header spans both.
    assert second["ts"] == pytest.approx(first["ts"] + first["latency_ms"] / 1000, abs=1e-3)
    expected = (second["ts"] - first["ts"]) * 1000 + second["latency_ms"]
    assert float(resp.headers["x-litellm-response-duration-ms"]) == pytest.approx(expected)


@pytest.mark.parametrize(("status", "kind"), [(503, "api_error"), (429, "throttling_error")])
def test_provider_outage_without_fallback_fails_with_its_status(
    live: Live, status: int, kind: str
) -> None:
    deleted = live.client.delete("/fallback/gpt-4o", headers=live.auth)
    assert deleted.status_code == 200
    outage(live, "openai", status)
    body = {"model": "gpt-4o", "messages": HELLO, "metadata": {"trace_id": "t-down"}}
    resp = live.client.post(CHAT, json=body, headers=bearer("search-prod"))
    assert resp.status_code == status
    error = resp.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (kind, str(status), None)
    assert "OpenaiException" in error["message"]
    # A provider's 429 carries no retry-after: that is how clients tell it from the gateway's.
    assert "retry-after" not in resp.headers
    live.step(5)
    (rec,) = trace(live, "t-down")
    assert (rec["provider"], rec["status"], rec["api_key"]) == ("openai", status, "search-prod")
    assert rec["request_id"] == resp.headers["x-litellm-call-id"]


def test_whole_chain_failing_answers_with_the_last_hop(live: Live) -> None:
    outage(live, "openai", 503)
    outage(live, "anthropic", 500)
    body = {"model": "gpt-4o", "messages": HELLO, "metadata": {"trace_id": "t-chain"}}
    resp = live.client.post(CHAT, json=body, headers=bearer("search-prod"))
    assert resp.status_code == 500
    assert "Available Model Group Fallbacks=['claude-sonnet']" in resp.json()["error"]["message"]
    live.step(30)
    assert [(r["provider"], r["status"]) for r in trace(live, "t-chain")] == [
        ("openai", 503),
        ("anthropic", 500),
    ]


def test_blocked_key_gets_401_then_unblocked_key_is_served(live: Live) -> None:
    # LiteLLM's key endpoints take the key itself (or its hash), never the alias.
    key = {"key": TOKENS["support-web"]}
    block = live.client.post("/key/block", json=key, headers=live.auth)
    assert block.status_code == 200
    body = {"model": "gpt-4o", "messages": HELLO, "metadata": {"trace_id": "t-blocked"}}
    resp = live.client.post(CHAT, json=body, headers=bearer("support-web"))
    assert resp.status_code == 401
    error = resp.json()["error"]
    assert (error["type"], error["code"]) == ("auth_error", "401")
    assert "blocked" in error["message"]
    # Other keys are unaffected.
    other = live.client.post(CHAT, json=body, headers=bearer("support-mobile"))
    assert other.status_code == 200
    assert live.client.post("/key/unblock", json=key, headers=live.auth).status_code == 200
    assert live.client.post(CHAT, json=body, headers=bearer("support-web")).status_code == 200
    live.step(30)
    statuses = [(r["api_key"], r["status"], r["error"]) for r in trace(live, "t-blocked")]
    assert statuses == [
        ("support-web", 401, "key_blocked"),
        ("support-mobile", 200, None),
        ("support-web", 200, None),
    ]


def test_key_rpm_limit_yields_429_with_retry_after(live: Live) -> None:
    update = {"key": TOKENS["it-sandbox"], "rpm_limit": 3}
    assert live.client.post("/key/update", json=update, headers=live.auth).status_code == 200
    body = {"model": "claude-haiku", "messages": HELLO}
    answers = [live.client.post(CHAT, json=body, headers=bearer("it-sandbox")) for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    limited = answers[3]
    error = limited.json()["error"]
    assert (error["type"], error["code"]) == ("throttling_error", "429")
    assert "rpm/tpm limit" in error["message"] and "team=it" in error["message"]
    assert limited.headers["retry-after"] == "60"
    lifted = {"key": TOKENS["it-sandbox"], "rpm_limit": None}
    assert live.client.post("/key/update", json=lifted, headers=live.auth).status_code == 200
    assert live.client.post(CHAT, json=body, headers=bearer("it-sandbox")).status_code == 200
    live.step(1)
    by_id = {r["request_id"]: r for r in live.requests(START)}
    rec = by_id[limited.headers["x-litellm-call-id"]]
    assert (rec["status"], rec["error"], rec["provider"]) == (429, "rate_limited", "gateway")
    assert rec["api_key"] == "it-sandbox" and rec["team"] == "it"


def test_exhausted_key_budget_is_refused_without_retry_after(live: Live) -> None:
    update = {"key": TOKENS["analytics-dash"], "max_budget": 0}
    assert live.client.post("/key/update", json=update, headers=live.auth).status_code == 200
    body = {"model": "gpt-4o", "messages": HELLO, "metadata": {"trace_id": "t-budget"}}
    resp = live.client.post(CHAT, json=body, headers=bearer("analytics-dash"))
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert (error["type"], error["code"]) == ("budget_exceeded", "400")
    assert "retry-after" not in resp.headers  # waiting a minute does not restore a budget
    live.step(1)
    (rec,) = trace(live, "t-budget")
    assert (rec["status"], rec["error"], rec["provider"]) == (400, "budget_exceeded", "gateway")


@contextmanager
def _server() -> Iterator[tuple[httpx.Client, VirtualClock]]:
    clock = VirtualClock(START)
    server = SimulatorServer(Simulator(scenario(), clock))
    url = server.start()
    try:
        with httpx.Client(base_url=url, timeout=10.0) as client:
            yield client, clock
    finally:
        server.stop()


def test_ttft_degradation_slows_client_calls_by_its_factor() -> None:
    body = {"model": "gpt-4o", "messages": HELLO, "stream": True}
    degradation = {"type": "ttft_degradation", "provider": "openai", "factor": 4, "duration": 60}
    with _server() as (clean, _), _server() as (slow, _):
        assert slow.post("/sim/faults", json=degradation).status_code == 201
        a = clean.post(CHAT, json=body, headers=bearer("search-prod"))
        b = slow.post(CHAT, json=body, headers=bearer("search-prod"))
    assert a.status_code == b.status_code == 200
    ttft_a = float(a.headers["x-gatewarden-sim-ttft-ms"])
    ttft_b = float(b.headers["x-gatewarden-sim-ttft-ms"])
    # Same call number on the same seed draws the same randomness: only the fault differs.
    assert ttft_b == pytest.approx(4 * ttft_a, abs=0.05)
    latency_a = float(a.headers["x-litellm-response-duration-ms"])
    latency_b = float(b.headers["x-litellm-response-duration-ms"])
    assert latency_b - latency_a == pytest.approx(3 * ttft_a, abs=0.05)
    assert a.text == b.text  # same answer, tokens and ids


def test_generated_traffic_is_byte_identical_with_client_calls_interleaved(live: Live) -> None:
    calls = [
        ("search-prod", "gpt-4o", False),
        ("code-agent-ide", "claude-sonnet", True),
        ("support-triage-prod", "claude-haiku", False),
        ("research-prod", "gpt-4o-mini", True),
    ] * 2
    for i, (alias, model, stream) in enumerate(calls):
        live.step(45.5)
        body = {
            "model": model,
            "messages": [{"role": "user", "content": f"question {i}"}],
            "stream": stream,
            "metadata": {"trace_id": f"client-{i}"},
        }
        resp = live.client.post(CHAT, json=body, headers=bearer(alias))
        assert resp.status_code == 200, resp.text
    live.step(600 - 45.5 * len(calls))
    resp = live.client.get("/gatewarden/requests", params={"since": START})
    lines = resp.text.splitlines()
    records = [json.loads(line) for line in lines]
    client = [i for i, r in enumerate(records) if str(r["trace_id"]).startswith("client-")]
    assert len(client) == len(calls)
    # Interleaved in time order with the generated records, not appended.
    assert client[0] > 0 and client[-1] < len(records) - 1
    assert [r["ts"] for r in records] == sorted(r["ts"] for r in records)
    assert len({r["request_id"] for r in records}) == len(records)
    generated = [line for i, line in enumerate(lines) if i not in set(client)]
    untouched = Simulator(scenario(), metrics=False).generate(START, START + 600)
    assert len(untouched) > 3000
    assert generated == [json.dumps(r, separators=(",", ":")) for r in untouched]
