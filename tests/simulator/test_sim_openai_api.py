"""OpenAI-compatible inference on the simulator: response shapes, the request log, /metrics,
and rejected input, against the real server over HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gatewarden.clock import VirtualClock
from gatewarden.models import RequestRecord
from gatewarden.simulator import Simulator
from gatewarden.simulator.catalog import default_catalog
from tests.simulator.helpers import MASTER, START, Live, scenario

TOKENS = {k.alias: k.token for k in default_catalog().keys}
HELLO = [{"role": "user", "content": "Summarise the incident for me."}]


def bearer(alias: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[alias]}"}


def record_of(live: Live, request_id: str) -> dict[str, Any]:
    matches = [r for r in live.requests(START) if r["request_id"] == request_id]
    assert len(matches) == 1, f"{request_id}: {len(matches)} records"
    return matches[0]


def proxy_requests(exposition: str, alias: str) -> float:
    """``litellm_proxy_total_requests_metric_total`` summed over one key's series."""
    return sum(
        s.value
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
        if s.name == "litellm_proxy_total_requests_metric_total"
        and s.labels.get("api_key_alias") == alias
    )


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/chat/completions"])
def test_completion_is_logged_with_key_team_model_and_counted_in_metrics(
    live: Live, path: str
) -> None:
    live.step(30)
    body = {
        "model": "gpt-4o",
        "messages": HELLO,
        "user": "alice",
        "metadata": {"session_id": "sess-client-1", "trace_id": "trace-client-1"},
    }
    resp = live.client.post(path, json=body, headers=bearer("support-web"))
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["object"] == "chat.completion" and out["id"].startswith("chatcmpl-")
    assert out["created"] == int(START + 30)  # sim time, not wall time
    assert out["model"] == "gpt-4o"  # served by the group's order-1 deployment
    choice = out["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] == "stop"
    usage = out["usage"]
    assert len(choice["message"]["content"].split()) == usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert resp.headers["x-litellm-call-id"] == out["id"]
    assert resp.headers["x-litellm-model-id"] == "openai-gpt-4o"
    assert "x-gatewarden-sim-ttft-ms" not in resp.headers  # not streamed

    # The record is released once sim time passes the call, like any generated one.
    assert not any(r["request_id"] == out["id"] for r in live.requests(START))
    live.step(1)
    rec = record_of(live, out["id"])
    RequestRecord.model_validate(rec)
    assert rec["ts"] == START + 30
    assert (rec["api_key"], rec["team"], rec["workflow"]) == (
        "support-web",
        "support",
        "support-chat",
    )
    assert (rec["provider"], rec["model"], rec["requested_model"]) == ("openai", "gpt-4o", "gpt-4o")
    assert (rec["status"], rec["fallback"], rec["ttft_ms"]) == (200, False, None)
    assert (rec["session_id"], rec["trace_id"]) == ("sess-client-1", "trace-client-1")
    assert rec["input_tokens"] == usage["prompt_tokens"]
    assert rec["output_tokens"] == usage["completion_tokens"]
    assert rec["latency_ms"] == float(resp.headers["x-litellm-response-duration-ms"]) > 0
    assert rec["cost_usd"] == float(resp.headers["x-litellm-response-cost"]) > 0
    assert len(rec["prompt_hash"]) == 16

    # /metrics counts it: exactly one more proxy request for the key than without the call.
    twin = Simulator(scenario(), VirtualClock(live.clock.now()))
    served = live.client.get("/metrics").text
    baseline = twin.exposition().decode()
    assert proxy_requests(served, "support-web") == proxy_requests(baseline, "support-web") + 1


def _events(text: str) -> list[str]:
    blocks = [b for b in text.split("\n\n") if b]
    assert all(b.startswith("data: ") for b in blocks), blocks[:3]
    return [b[len("data: ") :] for b in blocks]


def test_streaming_yields_chunks_then_done_and_logs_ttft(live: Live) -> None:
    body = {
        "model": "claude-haiku",
        "messages": HELLO,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    resp = live.client.post("/v1/chat/completions", json=body, headers=bearer("helpdesk-prod"))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = _events(resp.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len(chunks) >= 4
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["id"] for c in chunks} == {resp.headers["x-litellm-call-id"]}
    assert {c["model"] for c in chunks} == {"claude-haiku-4-5"}
    with_choices = [c for c in chunks if c["choices"]]
    assert with_choices[0]["choices"][0]["delta"]["role"] == "assistant"
    assert with_choices[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in with_choices[:-1])
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in with_choices)
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == [] and len(text.split()) == usage["completion_tokens"] > 0

    live.step(1)
    rec = record_of(live, resp.headers["x-litellm-call-id"])
    assert rec["api_key"] == "helpdesk-prod" and rec["team"] == "it"
    assert rec["provider"] == "anthropic" and rec["output_tokens"] == usage["completion_tokens"]
    # Streamed: the record carries the simulated TTFT, and so does the response.
    assert rec["ttft_ms"] == float(resp.headers["x-gatewarden-sim-ttft-ms"])
    assert 0 < rec["ttft_ms"] < rec["latency_ms"]


def test_max_tokens_caps_the_answer(shared_live: Live) -> None:
    body = {"model": "gpt-4o-mini", "messages": HELLO, "max_tokens": 3}
    resp = shared_live.client.post(
        "/v1/chat/completions", json=body, headers=bearer("growth-campaigns")
    )
    out = resp.json()
    assert out["usage"]["completion_tokens"] == 3
    assert out["choices"][0]["finish_reason"] == "length"
    assert len(out["choices"][0]["message"]["content"].split()) == 3


def test_models_lists_the_model_groups(shared_live: Live) -> None:
    groups = [g.name for g in default_catalog().model_groups]
    for path in ("/v1/models", "/models"):
        for headers in (bearer("search-prod"), {"Authorization": f"Bearer {MASTER}"}):
            resp = shared_live.client.get(path, headers=headers)
            assert resp.status_code == 200
            out = resp.json()
            assert out["object"] == "list"
            assert [m["id"] for m in out["data"]] == groups
            assert {m["object"] for m in out["data"]} == {"model"}
        assert shared_live.client.get(path).status_code == 401


GOOD: dict[str, Any] = {"model": "gpt-4o", "messages": HELLO}
BAD_BODIES: list[tuple[object, str | None]] = [
    (b"{not json", "request_body"),
    (b"[1, 2]", "request_body"),
    ({"messages": HELLO}, "model"),
    ({"model": 4, "messages": HELLO}, "model"),
    ({"model": "gpt-5", "messages": HELLO}, "model"),
    ({"model": "gpt-4o"}, "messages"),
    ({"model": "gpt-4o", "messages": []}, "messages"),
    ({"model": "gpt-4o", "messages": "hi"}, "messages"),
    ({"model": "gpt-4o", "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
    ({"model": "gpt-4o", "messages": [{"content": "x"}]}, "messages.0.role"),
    (GOOD | {"stream": "yes"}, "stream"),
    (GOOD | {"max_tokens": 0}, "max_tokens"),
    (GOOD | {"max_tokens": 1.5}, "max_tokens"),
    (GOOD | {"n": 2}, "n"),
    (GOOD | {"user": 7}, "user"),
    (GOOD | {"metadata": "x"}, "metadata"),
    (GOOD | {"metadata": {"session_id": 5}}, "metadata"),
]


def test_rejected_requests_get_openai_errors_and_leave_no_record(live: Live) -> None:
    url = "/v1/chat/completions"
    for payload, param in BAD_BODIES:
        kwargs: dict[str, Any] = (
            {"content": payload} if isinstance(payload, bytes) else {"json": payload}
        )
        resp = live.client.post(url, headers=bearer("search-prod"), **kwargs)
        assert resp.status_code == 400, (payload, resp.text)
        error = resp.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}, payload
        assert (error["code"], error["param"]) == ("400", param), (payload, error)
        assert error["type"] in ("invalid_request_error", "bad_request_error")
    for headers in (
        {},
        {"Authorization": "Bearer sk-not-a-key"},
        {"Authorization": TOKENS["search-prod"]},  # no "Bearer "
        {"Authorization": f"Bearer {MASTER}"},  # no alias/team to log the call under
    ):
        resp = live.client.post(url, json=GOOD, headers=headers)
        assert resp.status_code == 401, (headers, resp.text)
        assert resp.json()["error"]["code"] == "401"
    # The LiteLLM header works as well as a bearer token.
    ok = live.client.post(url, json=GOOD, headers={"x-litellm-api-key": TOKENS["search-prod"]})
    assert ok.status_code == 200
    live.step(2)
    # Only the accepted call added a record: the rest match a simulator nobody called.
    reference = Simulator(scenario(), metrics=False).generate(START, START + 2)
    served = live.requests(START)
    assert [r for r in served if r["request_id"] != ok.json()["id"]] == reference
    assert len(served) == len(reference) + 1
