"""LiteLLM spend-log pull (/spend/logs/v2) against a stand-in with LiteLLM's field names."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from gatewarden.errors import SourceError
from gatewarden.ingest.litellm_spend import LiteLLMSpendLogSource, record_from_spend_log

KEY = "sk-master-secret-1234"


def row(rid: str, start: str, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "request_id": rid,
        "call_type": "acompletion",
        "api_key": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
        "spend": 0.00009,
        "total_tokens": 18,
        "prompt_tokens": 12,
        "completion_tokens": 6,
        "startTime": start,
        "endTime": start.replace(".000", ".900"),
        "completionStartTime": start.replace(".000", ".250"),
        "request_duration_ms": 900,
        "model": "gpt-4o",
        "model_id": "primary-dep-1",
        "model_group": "primary",
        "custom_llm_provider": "openai",
        "api_base": "http://127.0.0.1:9000/v1",
        "user": "default_user_id",
        "metadata": {"user_api_key_alias": "search-prod", "user_api_key_team_alias": "search"},
        "team_id": "team-1",
        "messages": [{"role": "user", "content": "PROMPT-SENTINEL"}],
        "response": {"choices": [{"message": {"content": "RESPONSE-SENTINEL"}}]},
        "session_id": "sess-1",
        "status": "success",
    }
    base.update(extra)
    return base


def test_fields_map_to_the_request_log_contract() -> None:
    ok = record_from_spend_log(row("a", "2026-11-23T10:00:00.000Z"))
    assert ok["ts"] == pytest.approx(1795428000.0)
    assert (ok["api_key"], ok["team"], ok["provider"], ok["model"]) == (
        "search-prod",
        "search",
        "openai",
        "gpt-4o",
    )
    assert (ok["status"], ok["latency_ms"], ok["ttft_ms"]) == (200, 900.0, 250.0)
    assert (ok["input_tokens"], ok["output_tokens"], ok["cost_usd"]) == (12, 6, 0.00009)
    assert "PROMPT-SENTINEL" not in json.dumps(ok) and "RESPONSE-SENTINEL" not in json.dumps(ok)
    failed = record_from_spend_log(
        row(
            "b",
            "2026-11-23T10:00:01.000+00:00",
            status="failure",
            completionStartTime="2026-11-23T10:00:01.900+00:00",  # = endTime: not streaming
            metadata=json.dumps(
                {
                    "error_information": {"error_code": "429", "error_class": "RateLimitError"},
                    "original_model_group": "primary",
                    "attempted_fallbacks": 1,
                    "attempted_retries": 2,
                }
            ),
            model_group="backup",
        )
    )
    assert (failed["status"], failed["error"], failed["ttft_ms"]) == (429, "RateLimitError", None)
    assert (failed["requested_model"], failed["fallback"], failed["retries"]) == (
        "primary",
        True,
        2,
    )
    assert failed["api_key"].startswith("88dc28")  # the hash, when there is no alias


class FakeProxy:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.calls: list[httpx.Request] = []
        self.fail = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return httpx.Response(401, json={"error": "auth"})
        if self.fail:
            return httpx.Response(500, json={"error": "db down"})
        page, size = int(request.url.params["page"]), int(request.url.params["page_size"])
        chunk = self.rows[(page - 1) * size : page * size]
        pages = max(1, -(-len(self.rows) // size))
        return httpx.Response(200, json={"data": chunk, "total_pages": pages, "page": page})


def test_pages_dedup_late_rows_and_hold_future_ones() -> None:
    rows = [row(f"r{i}", f"2026-11-23T10:00:{i:02d}.000Z") for i in range(5)]
    rows.append({"request_id": "broken", "startTime": "yesterday"})
    proxy = FakeProxy(rows)
    client = httpx.Client(base_url="http://proxy", transport=httpx.MockTransport(proxy))
    source = LiteLLMSpendLogSource("http://proxy", KEY, client=client, page_size=2)
    t0 = 1795428000.0
    first = source.pull(t0 + 3.0)
    assert sorted(first.records["request_id"]) == ["r0", "r1", "r2"]
    assert first.malformed == 1 and "broken" in first.problems[0]
    assert len(proxy.calls) == 3  # three pages of two
    params = proxy.calls[0].url.params
    assert (params["start_date"], params["end_date"]) == (
        "2026-11-23 09:56:03",
        "2026-11-23 10:00:04",
    )
    late = row("r9", "2026-11-23T10:00:01.500Z")  # written late by LiteLLM's batch writer
    proxy.rows.append(late)
    second = source.pull(t0 + 10.0)
    assert sorted(second.records["request_id"]) == ["r3", "r4", "r9"]


def test_failures_are_source_errors_without_the_key() -> None:
    proxy = FakeProxy([])
    proxy.fail = True
    client = httpx.Client(base_url="http://proxy", transport=httpx.MockTransport(proxy))
    with pytest.raises(SourceError) as err:
        LiteLLMSpendLogSource("http://proxy", KEY, client=client).pull(1795428000.0)
    assert KEY not in str(err.value) and "HTTPStatusError" in str(err.value)
