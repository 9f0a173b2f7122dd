"""OTLP trace receiver: real LiteLLM spans -> request records; no prompt text survives."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from gatewarden.clock import VirtualClock
from gatewarden.errors import SourceError
from gatewarden.ingest.otlp import OtlpPayloadError, spans_from_json, spans_from_protobuf
from gatewarden.ingest.otlp_server import OtlpReceiver

FIXTURE = Path(__file__).parent.parent / "fixtures" / "litellm_otlp_excerpt.json"
FULL_EXPORT = Path(__file__).resolve().parents[3] / "shared" / "litellm-samples/otlp_export.jsonl"
#: Text that only appears in prompt / response / error-message attributes of the fixture.
PROMPT_TEXTS = ("Hello from the fake upstream", '"content"', "'role'", "fake upstream injected")


def payload() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text())
    return data


def as_protobuf(data: dict[str, Any]) -> bytes:
    # The fixture is protobuf's own JSON mapping (base64 ids), so it round-trips exactly.
    return json_format.ParseDict(data, ExportTraceServiceRequest()).SerializeToString()


def as_otlp_json(data: dict[str, Any]) -> bytes:
    """The OTLP/JSON spelling: hex ids (what OTLP/HTTP JSON exporters send)."""
    import base64

    out = json.loads(json.dumps(data))
    for rs in out["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(out).encode()


def strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from strings(v)


def test_litellm_spans_become_records_with_fallbacks_linked() -> None:
    receiver = OtlpReceiver()
    assert receiver.ingest(as_protobuf(payload()), "application/x-protobuf") == 7
    records = receiver.pull(2e9).records.sort_values(["trace_id", "ts"])
    assert len(records) == 7
    ok = records[records["request_id"] == "bfc399c3-9be3-4ba2-b62e-1185c48283cf"].iloc[0]
    assert (ok["provider"], ok["model"], ok["requested_model"]) == ("openai", "gpt-4o", "primary")
    assert (ok["status"], ok["input_tokens"], ok["output_tokens"]) == (200, 12, 6)
    assert ok["cost_usd"] == pytest.approx(9e-05)
    assert ok["api_key"] == "litellm_proxy_master_key"  # LiteLLM's hash label, not a secret
    assert ok["latency_ms"] == pytest.approx(733.878784)
    # 500 on primary, then backup serves: one trace, the second call is the fallback.
    failed = records[records["error"] == "InternalServerError"].iloc[0]
    trace = records[records["trace_id"] == failed["trace_id"]]
    assert trace["status"].tolist() == [500, 200]
    assert trace["fallback"].tolist() == [False, True]
    assert trace["model"].tolist() == ["gpt-4o", "gpt-4o-mini"]
    assert set(trace["requested_model"]) == {"primary"}
    # Primary in cooldown: LiteLLM's span says "backup"; the router's message names primary.
    rejected = records[records["error"] == "router_rate_limit"].iloc[0]
    assert (rejected["provider"], rejected["status"]) == ("gateway", 429)
    trace = records[records["trace_id"] == rejected["trace_id"]]
    assert trace["fallback"].tolist() == [False, True]
    assert set(trace["requested_model"]) == {"primary"}
    lone_429 = records[(records["status"] == 429) & (records["provider"] == "openai")]
    assert len(lone_429) == 1 and not lone_429["fallback"].iloc[0]


def test_json_and_protobuf_and_gzip_decode_to_the_same_records() -> None:
    data = payload()
    frames = []
    for body, media, encoding in [
        (as_protobuf(data), "application/x-protobuf", ""),
        (as_otlp_json(data), "application/json", ""),
        (json.dumps(data).encode(), "application/json; charset=utf-8", ""),
        (gzip.compress(as_protobuf(data)), "application/x-protobuf", "gzip"),
    ]:
        receiver = OtlpReceiver()
        receiver.ingest(body, media, encoding)
        frames.append(receiver.pull(2e9).records.sort_values("request_id", ignore_index=True))
    for frame in frames[1:]:
        assert frame.equals(frames[0])


def test_no_prompt_or_response_text_survives_ingest() -> None:
    data = payload()
    raw = list(strings(data))
    # The fixture really carries them (and "hi", the prompt itself, as message content).
    assert all(any(text in s for s in raw) for text in PROMPT_TEXTS)
    # Dropped while decoding: not even the in-memory span views hold the text.
    views = [*spans_from_protobuf(as_protobuf(data)), *spans_from_json(as_otlp_json(data))]
    held = [str(v) for view in views for v in view.attrs.values()]
    assert not [s for s in held if any(text in s for text in PROMPT_TEXTS)]
    assert "hi" not in held
    receiver = OtlpReceiver()
    receiver.ingest(as_protobuf(data), "application/x-protobuf")
    records = receiver.pull(2e9).records
    kept = [s for row in records.astype(object).to_dict("records") for s in strings(row)]
    assert not [s for s in kept if any(text in s for text in PROMPT_TEXTS)]
    assert "hi" not in kept  # the prompt itself


def test_the_whole_real_export_keeps_no_prompt_text() -> None:
    if not FULL_EXPORT.exists():
        pytest.skip("the shared LiteLLM capture is not on this machine")
    receiver = OtlpReceiver()
    for line in FULL_EXPORT.read_text().splitlines():
        receiver.ingest(json.dumps(json.loads(line)["data"]).encode(), "application/json")
    records = receiver.pull(2e9).records
    assert len(records) == 21 and receiver.stats["spans"] == 438
    kept = [s for row in records.astype(object).to_dict("records") for s in strings(row)]
    assert not [s for s in kept if any(text in s for text in PROMPT_TEXTS)]


def test_spans_of_one_trace_in_separate_exports_out_of_order_are_linked() -> None:
    data = payload()
    spans = data["resourceSpans"][0]["scopeSpans"]
    litellm = next(ss for ss in spans if ss["scope"]["name"] == "litellm")
    failing = next(
        s
        for s in litellm["spans"]
        if s["name"] == "litellm_request"
        and any(
            a["key"] == "error.code" and a["value"]["stringValue"] == "500" for a in s["attributes"]
        )
    )
    trace = [s for s in litellm["spans"] if s["traceId"] == failing["traceId"]]
    later = [s for s in trace if s is not failing]

    def export(chosen: list[dict[str, Any]]) -> bytes:
        body = {"resourceSpans": [{"scopeSpans": [{"scope": litellm["scope"], "spans": chosen}]}]}
        return json.dumps(body).encode()

    receiver = OtlpReceiver()
    receiver.ingest(export(later), "application/json")  # the fallback call arrives first
    receiver.ingest(export([failing]), "application/json")
    records = receiver.pull(2e9).records.sort_values("ts")
    assert records["fallback"].tolist() == [False, True]
    assert records["status"].tolist() == [500, 200]


@pytest.mark.parametrize(
    ("body", "media", "encoding"),
    [
        (b"\xff\x00garbage", "application/x-protobuf", ""),
        (b"{not json", "application/json", ""),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 7}]}]}]}',
            "application/json",
            "",
        ),
        (b"not gzip", "application/x-protobuf", "gzip"),
        (b"[" * 100_000, "application/json", ""),  # nesting deep enough for a RecursionError
    ],
)
def test_malformed_payloads_raise_and_are_counted(body: bytes, media: str, encoding: str) -> None:
    receiver = OtlpReceiver()
    with pytest.raises(OtlpPayloadError):
        receiver.ingest(body, media, encoding)
    batch = receiver.pull(1.0)
    assert batch.malformed == 1 and "rejected payload" in batch.problems[0]
    assert receiver.pull(2.0).malformed == 0  # reported once


def test_http_receiver_answers_400_413_415_and_keeps_serving() -> None:
    clock = VirtualClock(1_800_000_000.0)
    receiver = OtlpReceiver(max_body=200_000, clock=clock)
    url = receiver.serve(port=0)
    try:
        with httpx.Client(base_url=url, timeout=10.0) as client:
            bad = client.post(
                "/v1/traces",
                content=b"\x0a\xff",
                headers={"content-type": "application/x-protobuf"},
            )
            assert bad.status_code == 400
            wrong = client.post("/v1/traces", content=b"x", headers={"content-type": "text/plain"})
            assert wrong.status_code == 415
            huge = client.post(
                "/v1/traces",
                content=b"x" * 300_000,
                headers={"content-type": "application/x-protobuf"},
            )
            assert huge.status_code == 413
            good = client.post(
                "/v1/traces",
                content=as_protobuf(payload()),
                headers={"content-type": "application/x-protobuf"},
            )
            assert good.status_code == 200 and good.content == b""
            as_json = client.post(
                "/v1/traces",
                content=as_otlp_json(payload()),
                headers={"content-type": "application/json"},
            )
            assert as_json.status_code == 200 and as_json.json() == {}
        batch = receiver.pull(2e9)
        assert len(batch.records) == 14 and batch.malformed == 3
        details = receiver.health_details(clock.now() + 5)
        assert details["rejected"] == 3 and details["receive_lag_s"] == 5.0
    finally:
        receiver.close()


def test_records_wait_until_their_tick_and_overflow_drops_the_oldest() -> None:
    receiver = OtlpReceiver(max_buffer=5)
    receiver.ingest(as_protobuf(payload()), "application/x-protobuf")
    assert receiver.stats["dropped"] == 2
    first = receiver.pull(1_795_393_646.0)  # only calls that started before this instant
    rest = receiver.pull(2e9)
    assert len(first.records) + len(rest.records) == 5
    assert (first.records["ts"] < 1_795_393_646.0).all()
    assert (rest.records["ts"] >= 1_795_393_646.0).all()


def test_a_stopped_receiver_is_a_source_error() -> None:
    receiver = OtlpReceiver()
    receiver.serve(port=0)
    assert receiver._server is not None
    receiver._server.stop()
    with pytest.raises(SourceError, match="stopped"):
        receiver.pull(1.0)
    receiver.close()


def test_a_final_span_dated_from_the_request_start_is_still_the_fallback() -> None:
    """Live LiteLLM 1.106.2: the serving span of a fallback starts with the whole request
    (before the failed attempt), ends last, and shares the failed attempt's call id."""
    data = payload()
    litellm = next(
        ss for ss in data["resourceSpans"][0]["scopeSpans"] if ss["scope"]["name"] == "litellm"
    )
    requests = [s for s in litellm["spans"] if s["name"] == "litellm_request"]
    failing = next(s for s in requests if any(a["key"] == "error.code" for a in s["attributes"]))
    serving = next(s for s in requests if s["traceId"] == failing["traceId"] and s is not failing)
    serving["startTimeUnixNano"] = str(int(failing["startTimeUnixNano"]) - 1_000_000)
    call_id = next(a for a in failing["attributes"] if a["key"] == "litellm.call_id")
    serving["attributes"] = [a for a in serving["attributes"] if a["key"] != "litellm.call_id"]
    serving["attributes"].append(call_id)
    body = {
        "resourceSpans": [
            {"scopeSpans": [{"scope": litellm["scope"], "spans": [serving, failing]}]}
        ]
    }
    receiver = OtlpReceiver()
    receiver.ingest(json.dumps(body).encode(), "application/json")
    records = receiver.pull(2e9).records.set_index("model")
    assert records.loc["gpt-4o", "fallback"] == False  # noqa: E712 - numpy bool
    assert records.loc["gpt-4o-mini", "fallback"] == True  # noqa: E712
    assert set(records["requested_model"]) == {"primary"}
    ids = records["request_id"].tolist()
    assert len(set(ids)) == 2 and records.loc["gpt-4o-mini", "request_id"].endswith("-fb1")


def test_requests_sharing_a_propagated_trace_are_not_fallbacks() -> None:
    """An agent that propagates one trace across calls: different parents, no linking."""
    data = payload()
    litellm = next(
        ss for ss in data["resourceSpans"][0]["scopeSpans"] if ss["scope"]["name"] == "litellm"
    )
    requests = [s for s in litellm["spans"] if s["name"] == "litellm_request"]
    plain = [s for s in requests if not any(a["key"] == "error.type" for a in s["attributes"])]
    first, second = plain[0], plain[-1]
    assert first["parentSpanId"] != second["parentSpanId"]
    second = dict(second, traceId=first["traceId"])
    body = {
        "resourceSpans": [{"scopeSpans": [{"scope": litellm["scope"], "spans": [first, second]}]}]
    }
    receiver = OtlpReceiver()
    receiver.ingest(json.dumps(body).encode(), "application/json")
    records = receiver.pull(2e9).records
    assert records["fallback"].tolist() == [False, False]
    assert records["retries"].tolist() == [0, 0]


def test_a_chunked_upload_past_the_limit_is_refused() -> None:
    receiver = OtlpReceiver(max_body=1000)
    url = receiver.serve(port=0)
    try:

        def chunks() -> Iterator[bytes]:
            for _ in range(10):
                yield b"x" * 500

        with httpx.Client(base_url=url, timeout=10.0) as client:
            response = client.post(
                "/v1/traces", content=chunks(), headers={"content-type": "application/x-protobuf"}
            )
        assert response.status_code == 413
        assert receiver.pull(1.0).malformed == 1
    finally:
        receiver.close()
