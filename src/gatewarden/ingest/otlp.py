"""OTLP trace payloads (protobuf or the OTLP JSON mapping) -> request-log contract records.

A *request span* is one LLM call: a span carrying ``gen_ai.request.model`` (LiteLLM's
``litellm_request`` span; any GenAI-semconv instrumentation). Only a fixed allow-list of
attributes is ever read (:data:`KEPT`): prompt and response text (``gen_ai.input.messages``,
``gen_ai.output.messages``, ``llm.openai.messages``...), error messages and stack traces are
dropped while decoding and never reach a record, a log line or the store.

Mapping (LiteLLM first, then plain GenAI semantic conventions):

* ``requested_model``: ``litellm.model_group``, else ``gen_ai.request.model``
* ``model``: ``litellm.provider.model`` without its ``provider/`` prefix, else
  ``gen_ai.response.model``, else ``gen_ai.request.model`` (LiteLLM puts the *group* in
  ``gen_ai.response.model``, so it is not trusted when ``litellm.model_group`` is present)
* ``provider``: ``gen_ai.system`` / ``gen_ai.provider.name``, else the ``provider/`` prefix
* ``status``: ``http.response.status_code``, else numeric ``error.code``, else 500 for an
  error span and 200 otherwise; LiteLLM's ``RouterRateLimitError`` (no deployment left) is the
  gateway's own 429 (``provider: gateway``, as in the request-log contract)
* tokens: ``gen_ai.usage.input_tokens``/``output_tokens`` (or the older ``prompt_tokens``/
  ``completion_tokens``); cost: ``gen_ai.cost.total_cost``
* ``api_key``: ``metadata.user_api_key_alias``, else ``metadata.user_api_key_hash`` (LiteLLM's
  hash, never the key); ``team``: ``metadata.user_api_key_team_alias``, else ``..._team_id``
* ``ttft_ms`` stays empty: LiteLLM's spans carry no TTFT (it comes from ``/metrics``).

Fallback and retry flags need every request span of a trace: see :class:`TraceLinker`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from gatewarden.errors import InputError

Scalar = str | int | float | bool

#: The only span attributes gatewarden reads. Everything else is dropped while decoding.
KEPT: frozenset[str] = frozenset(
    {
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.system",
        "gen_ai.provider.name",
        "gen_ai.response.id",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.prompt_tokens",
        "gen_ai.usage.completion_tokens",
        "gen_ai.cost.total_cost",
        "gen_ai.conversation.id",
        "session.id",
        "litellm.model_group",
        "litellm.provider.model",
        "litellm.call_id",
        "error.type",
        "error.code",
        "http.response.status_code",
        "metadata.user_api_key_alias",
        "metadata.user_api_key_hash",
        "metadata.user_api_key_team_id",
        "metadata.user_api_key_team_alias",
    }
)

_UINT64 = 2**64
_INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
_OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
GATEWAY_ERRORS = {"RouterRateLimitError": (429, "router_rate_limit")}

#: LiteLLM labels a "no deployment left" span with the *fallback* group; the group the client
#: asked for only appears in the router's own message ("... Passed model=primary. ..."). Only
#: that name is extracted from ``error.message``; the message itself is never kept.
PASSED_MODEL = "gatewarden.passed_model"
_PASSED_MODEL = re.compile(r"Passed model=(\S+?)\.?(?:\s|$)")


def _passed_model(message: object) -> str | None:
    if not isinstance(message, str):
        return None
    match = _PASSED_MODEL.search(message[:2000])
    return match.group(1) if match else None


class OtlpPayloadError(InputError):
    """An OTLP export request that cannot be decoded."""


@dataclass(frozen=True)
class SpanView:
    """What gatewarden keeps of one span."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    start_ns: int
    end_ns: int
    error: bool
    attrs: Mapping[str, Scalar]


def _keep_passed_model(attrs: dict[str, Scalar], message: object) -> None:
    passed = _passed_model(message)
    if passed is not None:
        attrs[PASSED_MODEL] = passed


# -- protobuf -------------------------------------------------------------------------------


def _any_value(value: AnyValue) -> Scalar | None:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    return None  # arrays, maps, bytes: never needed


def spans_from_protobuf(body: bytes) -> Iterator[SpanView]:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise OtlpPayloadError(f"not an OTLP protobuf ExportTraceServiceRequest: {exc}") from exc
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                attrs: dict[str, Scalar] = {}
                for kv in span.attributes:
                    if kv.key in KEPT:
                        scalar = _any_value(kv.value)
                        if scalar is not None:
                            attrs[kv.key] = scalar
                    elif kv.key == "error.message":
                        _keep_passed_model(attrs, kv.value.string_value)
                yield SpanView(
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    name=span.name,
                    start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano,
                    error=span.status.code == Status.STATUS_CODE_ERROR,
                    attrs=attrs,
                )


# -- JSON -----------------------------------------------------------------------------------


def _json_id(raw: object, size: int) -> str:
    """OTLP/JSON ids are hex; protobuf's generic JSON mapping (and some exporters) use
    base64. A hex id of ``2*size`` characters cannot be a base64 id of ``size`` bytes."""
    if not isinstance(raw, str):
        raise OtlpPayloadError("span id is not a string")
    if len(raw) == 2 * size:
        try:
            return bytes.fromhex(raw).hex()
        except ValueError:
            pass
    try:
        decoded = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise OtlpPayloadError(f"id {raw[:40]!r} is neither hex nor base64") from exc
    return decoded.hex()


def _json_value(value: object) -> Scalar | None:
    if not isinstance(value, dict):
        return None
    if "stringValue" in value and isinstance(value["stringValue"], str):
        return str(value["stringValue"])
    if "intValue" in value:
        try:
            return int(value["intValue"])  # a string in OTLP/JSON (int64)
        except (TypeError, ValueError, OverflowError):
            return None
    if "doubleValue" in value:
        try:
            return float(value["doubleValue"])
        except (TypeError, ValueError, OverflowError):  # OverflowError: an int literal > 1e308
            return None
    if "boolValue" in value and isinstance(value["boolValue"], bool):
        return bool(value["boolValue"])
    return None


def _is_error(status: object) -> bool:
    if not isinstance(status, dict):
        return False
    code = status.get("code")
    return code in (2, "2", "STATUS_CODE_ERROR")


def _list(parent: Mapping[str, Any], *keys: str) -> list[Any]:
    for key in keys:
        value = parent.get(key)
        if isinstance(value, list):
            return value
    return []


def spans_from_json(body: bytes) -> Iterator[SpanView]:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad JSON, bad UTF-8 and int literals over 4300 digits;
        # RecursionError, nesting deeper than the interpreter allows.
        raise OtlpPayloadError(f"not JSON: {type(exc).__name__}") from exc
    if not isinstance(payload, dict):
        raise OtlpPayloadError("OTLP/JSON payload must be an object")
    for resource_spans in _list(payload, "resourceSpans", "resource_spans"):
        if not isinstance(resource_spans, dict):
            raise OtlpPayloadError("resourceSpans entries must be objects")
        scopes = _list(resource_spans, "scopeSpans", "scope_spans", "instrumentationLibrarySpans")
        for scope_spans in scopes:
            if not isinstance(scope_spans, dict):
                raise OtlpPayloadError("scopeSpans entries must be objects")
            for span in _list(scope_spans, "spans"):
                yield _json_span(span)


def _json_span(span: object) -> SpanView:
    if not isinstance(span, dict):
        raise OtlpPayloadError("spans entries must be objects")
    attrs: dict[str, Scalar] = {}
    attributes = span.get("attributes") or []
    if not isinstance(attributes, list):
        raise OtlpPayloadError("span attributes must be a list")
    for kv in attributes:
        key = kv.get("key") if isinstance(kv, dict) else None
        if not isinstance(key, str):
            continue  # not a key-value pair (a list key would not even hash)
        if key in KEPT:
            scalar = _json_value(kv.get("value"))
            if scalar is not None:
                attrs[key] = scalar
        elif key == "error.message":
            _keep_passed_model(attrs, _json_value(kv.get("value")))
    try:
        start = int(span.get("startTimeUnixNano", 0))
        end = int(span.get("endTimeUnixNano", 0))
    except (TypeError, ValueError, OverflowError) as exc:
        raise OtlpPayloadError("span times must be integers (nanoseconds)") from exc
    if not (0 <= start < _UINT64 and 0 <= end < _UINT64):
        # OTLP times are fixed64; a larger one would overflow the float seconds of a record.
        raise OtlpPayloadError("span times must be unsigned 64-bit nanoseconds")
    return SpanView(
        trace_id=_json_id(span.get("traceId"), 16),
        span_id=_json_id(span.get("spanId"), 8),
        parent_span_id=_json_id(span.get("parentSpanId"), 8) if span.get("parentSpanId") else "",
        name=str(span.get("name", "")),
        start_ns=start,
        end_ns=end,
        error=_is_error(span.get("status")),
        attrs=attrs,
    )


# -- spans -> records -----------------------------------------------------------------------


def _text(attrs: Mapping[str, Scalar], *keys: str) -> str | None:
    for key in keys:
        value = attrs.get(key)
        if value is not None and not isinstance(value, bool) and str(value) not in ("", "None"):
            return str(value)
    return None


def _int(attrs: Mapping[str, Scalar], *keys: str) -> int | None:
    for key in keys:
        value = attrs.get(key)
        if isinstance(value, bool) or value is None:
            continue
        try:
            return int(value)
        except (ValueError, OverflowError):  # "abc", NaN / inf
            continue
    return None


def is_request_span(span: SpanView) -> bool:
    return "gen_ai.request.model" in span.attrs


def record_of(span: SpanView) -> dict[str, Any]:
    """The request-log contract record of one request span (``fallback``/``retries`` are set
    by :class:`TraceLinker`)."""
    a = span.attrs
    requested = _text(a, "litellm.model_group", "gen_ai.request.model") or "unknown"
    served = _text(a, "litellm.provider.model")
    prefix, _, served_model = served.partition("/") if served and "/" in served else ("", "", "")
    if "litellm.model_group" in a:
        model = served_model or _text(a, "gen_ai.request.model")
    else:
        model = _text(a, "gen_ai.response.model", "gen_ai.request.model")
    provider = _text(a, "gen_ai.system", "gen_ai.provider.name") or prefix or "unknown"
    error_type = _text(a, "error.type")
    status = _int(a, "http.response.status_code", "error.code")
    error = error_type
    if error_type in GATEWAY_ERRORS:
        status, error = GATEWAY_ERRORS[error_type]
        requested = _text(a, PASSED_MODEL) or requested
        provider, model = "gateway", requested
    if status is None or not 100 <= status <= 599:
        status = 500 if span.error else 200
    if status >= 400 and error is None:
        error = "error"
    cost = a.get("gen_ai.cost.total_cost")
    return {
        "ts": span.start_ns / 1e9,
        "request_id": _text(a, "litellm.call_id", "gen_ai.response.id") or span.span_id,
        "trace_id": span.trace_id,
        "session_id": _text(a, "session.id", "gen_ai.conversation.id"),
        "api_key": _text(a, "metadata.user_api_key_alias", "metadata.user_api_key_hash")
        or "unknown",
        "team": _text(a, "metadata.user_api_key_team_alias", "metadata.user_api_key_team_id"),
        "workflow": None,
        "provider": provider,
        "model": model or requested,
        "requested_model": requested,
        "status": status,
        "error": error,
        "latency_ms": max(0.0, (span.end_ns - span.start_ns) / 1e6),
        "ttft_ms": None,
        "input_tokens": max(0, _int(a, *_INPUT_TOKENS) or 0),
        "output_tokens": max(0, _int(a, *_OUTPUT_TOKENS) or 0),
        "cost_usd": max(0.0, float(cost)) if isinstance(cost, int | float) else 0.0,
        "fallback": False,
        "retries": 0,
    }
