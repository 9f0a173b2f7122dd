"""Hostile OTLP exports to the trace receiver: protobuf and JSON, shaped and shapeless.

Protobuf bodies are real ``ExportTraceServiceRequest`` messages (opentelemetry-proto) whose
spans carry hostile attribute values (every AnyValue kind, int64/uint64 extremes, NaN, huge
strings, ids of any length), sometimes cut, bit-flipped or padded; JSON bodies follow the OTLP
JSON mapping with any level replaced by a wrong type, plus int literals past 4300 digits and
nesting past the recursion limit. Raw bytes and text go to both decoders.

The contract (:mod:`gatewarden.ingest.otlp_server`): a payload is decoded into records that
satisfy the request-log contract (a span that cannot is counted malformed), or refused with
``OtlpPayloadError`` and counted malformed with its reason. Nothing else escapes, the pull
that follows never fails, and no attribute outside the allow-list (prompt text) reaches a record.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import random
import warnings
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from gatewarden.clock import VirtualClock
from gatewarden.ingest.otlp import KEPT, OtlpPayloadError
from gatewarden.ingest.otlp_server import OtlpReceiver
from tests.fuzz.settings import fuzz

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx; the client works as is
    from starlette.testclient import TestClient

T0 = 1_700_000_000.0
INT64 = 2**63
#: Only ever placed under attributes gatewarden must drop (prompts, completions, stacks).
PROMPT = "PLANTED-PROMPT-TEXT-7f3a"
DROPPED = ["gen_ai.input.messages", "gen_ai.output.messages", "llm.openai.messages",
           "gen_ai.prompt", "error.stack", "exception.stacktrace"]  # fmt: skip
KEYS = [*sorted(KEPT), "error.message", "", "gen_ai.request.model ", "GEN_AI.SYSTEM"]
PROTOBUF = "application/x-protobuf"
JSON = "application/json"

text = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)  # protobuf: no surrogates
STRINGS = [
    "", " ", "None", "0", "-1", "429", "200", "1e3", "NaN", "inf", "openai", "gpt-4o",
    "openai/gpt-4o", "/", "a/", "/b", "azure/gpt-4o/extra", "RouterRateLimitError",
    "No deployments available. Passed model=primary. ", "Passed model=", "Passed model=.",
    "x" * 10_000, "\x00", "é" * 40, "9" * 5000, "\u0661\u0662",
]  # fmt: skip
string = st.sampled_from(STRINGS) | text
int64 = st.integers(-INT64, INT64 - 1) | st.sampled_from([0, 1, -1, 429, INT64 - 1, -INT64])
uint64 = st.integers(0, 2**64 - 1) | st.sampled_from([0, 1, 2**63, 2**64 - 1, int(T0 * 1e9)])


# -- protobuf -----------------------------------------------------------------------------------

# Hypothesis spends its time generating, not decoding: most attributes come from a pool built
# up front (deterministically) from the hostile values; each example also draws one free-form.
DOUBLES = [math.nan, math.inf, -math.inf, 1e30, -1e30, 1e19, 2.0**63, -0.0, 0.5, 5e-324, 1e308]
INT64S = [0, 1, -1, 99, 429, 600, INT64 - 1, -INT64, 2**62, 10**18]


def _value(rng: random.Random, depth: int = 0) -> AnyValue:
    """One AnyValue of any kind, holding a hostile scalar (or nested ones, or nothing)."""
    value = AnyValue()
    kind = rng.choice(["string", "int", "double", "bool", "bytes", "none", "array", "kvlist"])
    if kind == "string":
        value.string_value = rng.choice(STRINGS)
    elif kind == "int":
        value.int_value = rng.choice(INT64S)
    elif kind == "double":
        value.double_value = rng.choice(DOUBLES)
    elif kind == "bool":
        value.bool_value = rng.random() < 0.5
    elif kind == "bytes":
        value.bytes_value = rng.randbytes(rng.randrange(17))
    elif depth < 2 and kind == "array":
        for _ in range(rng.randrange(4)):
            value.array_value.values.add().CopyFrom(_value(rng, depth + 1))
    elif depth < 2 and kind == "kvlist":
        for _ in range(rng.randrange(4)):
            item = value.kvlist_value.values.add(key=rng.choice(KEYS))
            item.value.CopyFrom(_value(rng, depth + 1))
    return value  # "none": no oneof set at all


def _attributes(count: int) -> list[KeyValue]:
    rng = random.Random(9)
    pool = [KeyValue(key=key, value=AnyValue(string_value=PROMPT)) for key in DROPPED]
    for _ in range(count):
        kv = KeyValue(key=rng.choice(KEYS))
        kv.value.CopyFrom(_value(rng))
        pool.append(kv)
    return pool


ATTRIBUTES = _attributes(4000)


# An attribute hypothesis builds itself, for what the pool does not hold.
free_value = st.one_of(
    string.map(lambda v: AnyValue(string_value=v)),
    st.integers(-INT64, INT64 - 1).map(lambda v: AnyValue(int_value=v)),
    st.floats().map(lambda v: AnyValue(double_value=v)),
)
free_attribute = st.builds(KeyValue, key=st.sampled_from(KEYS) | text, value=free_value)


# A few shared ids so that spans of one export share traces and parents (the linker's input).
ids16 = st.sampled_from([b"\x01" * 16, b"\x02" * 16, b""]) | st.binary(max_size=20)
ids8 = st.sampled_from([b"\x0a" * 8, b"\x0b" * 8, b""]) | st.binary(max_size=12)
MODEL_ATTR = [KeyValue(key="gen_ai.request.model", value=AnyValue(string_value=m)) for m in STRINGS]


# Module-level strategies over indices: a strategy built inside a draw re-hashes its whole
# sample pool to label itself, which costs more than the decoding under test.
model_attrs = st.lists(st.integers(0, len(MODEL_ATTR) - 1), max_size=1)
pool_attrs = st.lists(st.integers(0, len(ATTRIBUTES) - 1), max_size=8)
free_attrs = st.lists(free_attribute, max_size=1)
span_names = st.sampled_from(STRINGS)
status_codes = st.integers(-3, 5)  # proto3 enums are open: unknown codes too


@st.composite
def span(draw: st.DrawFn) -> Span:
    out = Span(
        trace_id=draw(ids16),
        span_id=draw(ids8),
        parent_span_id=draw(ids8),
        name=draw(span_names),
        start_time_unix_nano=draw(uint64),
        end_time_unix_nano=draw(uint64),
    )
    out.status.code = draw(status_codes)
    # Most spans are request spans (they name a model); attribute order decides which of two
    # equal keys wins, so the model may also come later, or be overridden.
    out.attributes.extend(MODEL_ATTR[i] for i in draw(model_attrs))
    out.attributes.extend(ATTRIBUTES[i] for i in draw(pool_attrs))
    out.attributes.extend(draw(free_attrs))
    return out


spans = st.lists(span(), max_size=4)


@st.composite
def export_request(draw: st.DrawFn) -> bytes:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(1, 2))):
        resource = request.resource_spans.add()
        for _ in range(draw(st.integers(1, 2))):
            scope = resource.scope_spans.add()
            scope.spans.extend(draw(spans))
    return request.SerializeToString()


@st.composite
def damaged(draw: st.DrawFn, body: bytes) -> bytes:
    """``body`` cut short, with bytes flipped, or with junk appended."""
    how = draw(st.sampled_from(["cut", "flip", "append"]))
    if how == "append" or not body:
        return body + draw(st.binary(min_size=1, max_size=32))
    at = draw(st.integers(0, len(body) - 1))
    if how == "cut":
        return body[:at]
    return body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1 :]


# -- JSON -------------------------------------------------------------------------------------

# Placeholders replaced after json.dumps by literals no Python value dumps to.
RAW = {
    '"@@HUGE_INT@@"': "1" + "0" * 5000,  # past int()'s 4300-digit limit
    '"@@BIG_INT@@"': "1" + "0" * 400,  # parses, but overflows a float
    '"@@DEEP@@"': "[" * 5000 + "]" * 5000,  # past the recursion limit
    '"@@EXP@@"': "1e999",  # infinity without saying so
}
HOSTILE: list[Any] = [
    None, True, False, 0, -1, 2, "2", 1.5, math.nan, math.inf, -math.inf, INT64, 2**64, 10**30,
    -(10**30), "", " ", "x", "NaN", "-1", "1e3", "0x10", "١٢", "STATUS_CODE_ERROR", [], [1], {},
    {"a": 1}, "AAAAAAAAAAAAAAAAAAAAAA==", "0" * 32, "zz" * 16, "%%%%", *RAW.keys(),
]  # fmt: skip
RAW_VALUES = [key.strip('"') for key in RAW]
scalar = st.sampled_from(HOSTILE) | st.integers() | st.floats() | st.text(max_size=8)
anything = st.recursive(
    scalar,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def hex_id(size: int) -> st.SearchStrategy[Any]:
    b64 = st.binary(min_size=size, max_size=size).map(lambda b: base64.b64encode(b).decode())
    exact = st.binary(min_size=size, max_size=size).map(bytes.hex)
    return exact | b64 | st.binary(max_size=2 * size).map(bytes.hex) | anything


json_any_value = st.one_of(
    st.fixed_dictionaries({"stringValue": string | anything}),
    st.fixed_dictionaries({"intValue": int64.map(str) | int64 | anything}),
    st.fixed_dictionaries({"doubleValue": st.floats() | anything}),
    st.fixed_dictionaries({"boolValue": st.booleans() | anything}),
    st.fixed_dictionaries({"arrayValue": st.fixed_dictionaries({"values": anything})}),
    anything,
)
json_attribute = st.one_of(
    st.fixed_dictionaries({"key": st.sampled_from(KEYS), "value": json_any_value}),
    st.fixed_dictionaries(
        {"key": st.sampled_from(DROPPED), "value": st.just({"stringValue": PROMPT})}
    ),
    st.fixed_dictionaries({"key": anything, "value": json_any_value}),
    anything,
)
nanos = uint64.map(str) | uint64 | anything
json_span = st.fixed_dictionaries(
    {"traceId": hex_id(16), "spanId": hex_id(8)},
    optional={
        "parentSpanId": hex_id(8),
        "name": string | anything,
        "startTimeUnixNano": nanos,
        "endTimeUnixNano": nanos,
        "status": st.fixed_dictionaries({"code": st.sampled_from([0, 1, 2, "2"]) | anything})
        | anything,
        "attributes": st.lists(json_attribute, max_size=6) | anything,
    },
)


def level(key: str, inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """One nesting level of the OTLP JSON document, or a wrong type in its place."""
    return st.fixed_dictionaries({key: st.lists(inner, max_size=3) | anything}) | anything


json_document = level(
    "resourceSpans", level("scopeSpans", json_span.map(lambda s: {"spans": [s]}) | json_span)
)


def dumps(doc: Any) -> bytes:
    out = json.dumps(doc)  # NaN and Infinity as JavaScript literals, which json.loads accepts
    for placeholder, literal in RAW.items():
        out = out.replace(placeholder, literal)
    return out.encode()


# -- the contract -------------------------------------------------------------------------------


def receiver(max_body: int = 16 << 20) -> OtlpReceiver:
    return OtlpReceiver(name="fuzz", clock=VirtualClock(T0), max_body=max_body)


def check(
    body: bytes, content_type: str, encoding: str = "", max_body: int = 16 << 20
) -> int | None:
    """Ingest one export; returns how many records it yielded, None if it was refused."""
    rx = receiver(max_body)
    try:
        count = rx.ingest(body, content_type, encoding)
    except OtlpPayloadError as exc:
        assert str(exc)
        batch = rx.pull(math.inf)
        assert batch.records.empty and batch.malformed == 1
        assert batch.problems == [f"fuzz: rejected payload: {str(exc)[:200]}"]
        return None
    batch = rx.pull(math.inf)
    assert len(batch.records) == count == rx.stats["records"]
    invalid = batch.malformed
    assert invalid + count <= rx.stats["spans"]
    records = batch.records
    assert records["status"].between(100, 599).all()
    assert records["ts"].map(math.isfinite).all() and (records["latency_ms"] >= 0).all()
    assert (records["input_tokens"] >= 0).all() and (records["output_tokens"] >= 0).all()
    assert (records["cost_usd"] >= 0).all() and records["cost_usd"].map(math.isfinite).all()
    assert PROMPT not in repr(records.to_dict("records"))
    return count


@fuzz(1000)
@given(body=export_request())
def test_protobuf_exports_with_hostile_attributes(body: bytes) -> None:
    # A well-formed message never refuses as a whole: only its bad spans are dropped.
    assert check(body, PROTOBUF) is not None


@fuzz(1000)
@given(body=export_request().flatmap(damaged) | st.binary(max_size=200))
def test_protobuf_damaged_and_random_bytes(body: bytes) -> None:
    check(body, PROTOBUF)


@fuzz(1000)
@given(doc=json_document)
def test_json_exports_with_wrong_types_and_hostile_values(doc: Any) -> None:
    check(dumps(doc), JSON)


@fuzz(1000)
@given(
    body=st.binary(max_size=200)
    | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))
    | st.sampled_from(RAW_VALUES).map(lambda k: dumps({"resourceSpans": k}))
)
def test_json_random_text_and_bytes(body: bytes) -> None:
    check(body, JSON)


MEDIA = [PROTOBUF, "application/protobuf", f"{PROTOBUF}; charset=binary", "APPLICATION/JSON",
         f"{JSON}; charset=utf-8", "text/plain", "", ";", f"{PROTOBUF};;", "*/*"]  # fmt: skip
ENCODINGS = ["", "identity", "gzip", " GZIP ", "deflate", "br", "gzip, gzip"]


@st.composite
def transport(draw: st.DrawFn) -> tuple[bytes, str, str]:
    """A body with any declared media type and encoding (gzip applied or only declared)."""
    media = draw(st.sampled_from(MEDIA))
    body = draw(export_request() if "json" not in media.lower() else json_document.map(dumps))
    encoding = draw(st.sampled_from(ENCODINGS))
    if encoding.strip().lower() == "gzip" and draw(st.booleans()):
        body = gzip.compress(body)
    return body, media, encoding


@fuzz(1000)
@given(request=transport())
def test_any_media_type_and_encoding(request: tuple[bytes, str, str]) -> None:
    check(*request)


# -- over HTTP: every refusal is a 4xx, never a 500 ---------------------------------------------

HTTP_RX = receiver(max_body=4096)  # small, so that some examples cross it
CLIENT = TestClient(HTTP_RX.app(), raise_server_exceptions=True)


@fuzz(300)  # each example is an ASGI round trip: ~10x the cost of a direct ingest
@given(request=transport() | st.tuples(st.binary(max_size=64), st.sampled_from(MEDIA), st.just("")))
def test_http_receiver_answers_4xx_never_500(request: tuple[bytes, str, str]) -> None:
    body, media, encoding = request
    expected = check(body, media, encoding, HTTP_RX.max_body)
    headers = {"content-type": media, "content-encoding": encoding}
    answer = CLIENT.post("/v1/traces", content=body, headers=headers)
    if len(body) > HTTP_RX.max_body:
        assert answer.status_code == 413
    elif expected is None:
        assert answer.status_code in (400, 415), answer.text
        assert answer.text
    else:
        assert answer.status_code == 200, answer.text
    HTTP_RX.pull(math.inf)  # keep the buffer small


# -- inputs that once escaped as raw exceptions --------------------------------------------------

ID = {"traceId": "01" * 16, "spanId": "0a" * 8}
MODEL = {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}}
COST = {"key": "gen_ai.cost.total_cost", "value": {"doubleValue": "@@BIG_INT@@"}}
BAD_KEY = {"key": [1], "value": {"stringValue": "x"}}


def one_span(**fields: Any) -> bytes:
    return dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{**ID, **fields}]}]}]})


@pytest.mark.parametrize(
    ("body", "records"),
    [
        pytest.param(dumps({"resourceSpans": "@@HUGE_INT@@"}), None, id="int-past-4300-digits"),
        pytest.param(
            one_span(startTimeUnixNano="@@BIG_INT@@", attributes=[MODEL]), None, id="huge-time"
        ),
        pytest.param(one_span(attributes=5), None, id="attributes-not-a-list"),
        pytest.param(one_span(attributes=[MODEL, COST]), 1, id="cost-overflows-a-float"),
        pytest.param(one_span(attributes=[MODEL, BAD_KEY]), 1, id="unhashable-key"),
    ],
)
def test_known_escapes_are_refused_or_ignored(body: bytes, records: int | None) -> None:
    """Each once escaped as a raw exception (ValueError, OverflowError, TypeError)."""
    assert check(body, JSON) == records


@pytest.mark.parametrize("tokens", [INT64, 10**30])
def test_token_counts_past_int64_are_counted_malformed(tokens: int) -> None:
    """They passed the contract and then broke the frame's int64 column in the pull."""
    usage = {"key": "gen_ai.usage.input_tokens", "value": {"intValue": str(tokens)}}
    rx = receiver()
    assert rx.ingest(one_span(attributes=[MODEL, usage]), JSON) == 0
    assert rx.pull(math.inf).malformed == 1
