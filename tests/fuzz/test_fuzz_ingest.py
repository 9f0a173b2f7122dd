"""Hostile input to the two ingest parsers: the Prometheus exposition and the request log.

Only the documented error may escape (ScrapeError, RecordError), and ``parse_lines`` never
raises at all: a bad line is counted, with its line number, and the rest survives.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatewarden.errors import RecordError, ScrapeError
from gatewarden.ingest import parse_exposition, parse_lines, parse_record
from gatewarden.models import RequestRecord, Sample
from tests.fuzz.settings import fuzz

T0 = 1_700_000_000.0

# -- Prometheus text exposition ---------------------------------------------------------------

# Hypothesis spends its time generating, not parsing: lines are therefore combined from small
# pools of hostile fragments up front (deterministically), and each example draws a handful of
# whole lines, plus free text.
NAMES = [
    "up",
    "a",
    "a_total",
    "a_bucket",
    "a_count",
    "a_sum",
    "a_created",
    "le",
    "quantile",
    "litellm_requests_metric_total",
    "x:y",
    "_",
    "0bad",
    "bad-name",
    "ünï",
    "a b",
    "",
    "#",
]
LABEL_VALUES = [
    "",
    "v",
    '\\"',
    "\\\\",
    "\\n",
    "\\",
    '"',
    "}",
    "{",
    ",",
    "=",
    "+Inf",
    "NaN",
    "0.5",
    "é",
    "\x00",
]
NUMBERS = [
    "0",
    "1",
    "-1",
    "1.5",
    "+Inf",
    "-Inf",
    "NaN",
    "nan",
    "1e400",
    "-1e-400",
    "0x10",
    "1_000",
    "",
    "-",
    "Inf",
    "1e",
    "\u0661",
    "1.7976931348623157e308",
    "9" * 30,
    "0.1e-5",
]
SHAPES = ["{%s}", "{%s,}", "%s", "{%s", "{ %s }", "{%s}}", "{{%s}"]
TYPES = ["counter", "gauge", "histogram", "summary", "untyped", "info", "", "x y"]


def _lines(count: int) -> list[str]:
    rng = random.Random(9)
    out = []
    for _ in range(count):
        pairs = [(rng.choice(NAMES), rng.choice(LABEL_VALUES)) for _ in range(rng.randrange(4))]
        labels = ",".join(f'{k}="{v}"' for k, v in pairs)
        stamp = rng.choice(["", " ", " 1700000000000", " -1", " " + rng.choice(NUMBERS)])
        sep = rng.choice([" ", "  ", "\t", ""])
        out.append(
            f"{rng.choice(NAMES)}{rng.choice(SHAPES) % labels}{sep}{rng.choice(NUMBERS)}{stamp}"
        )
    for kind in ["TYPE", "HELP", "EOF", "UNIT", "random"]:
        out.extend(f"# {kind} {name} {t}" for name in NAMES for t in TYPES)
    return [*out, "", "#", "# EOF", " ", "\r"]


LINES = _lines(3000)
exposition = st.lists(st.sampled_from(LINES) | st.text(max_size=12), max_size=10).map("\n".join)


def check_exposition(text: str) -> None:
    try:
        samples = parse_exposition(text, T0)
    except ScrapeError as exc:
        assert str(exc)  # a reason, not an empty message
        return
    assert all(isinstance(s, Sample) and not math.isnan(s.value) for s in samples)


@fuzz(1000)
@given(text=st.text())
def test_prometheus_arbitrary_text(text: str) -> None:
    check_exposition(text)


@fuzz(1500)
@given(text=exposition)
def test_prometheus_exposition_shaped_text(text: str) -> None:
    check_exposition(text)


# -- request log ------------------------------------------------------------------------------

FIELDS = list(RequestRecord.model_fields)
VALID: dict[str, Any] = {
    "ts": T0,
    "request_id": "r1",
    "api_key": "team-a-1",
    "provider": "openai",
    "model": "gpt-4o",
    "requested_model": "gpt-4o",
    "status": 200,
    "latency_ms": 812.5,
    "ttft_ms": 120.0,
    "input_tokens": 10,
    "output_tokens": 20,
    "cost_usd": 0.001,
}
HOSTILE_VALUES: list[Any] = [
    None, True, False, 0, -1, 99, 100, 599, 600, 2**63, -(2**63) - 1, 10**40, 0.0, -0.0, 1.5,
    -1.5, 1e308, 5e-324, math.nan, math.inf, -math.inf, "", " ", "200", "1e3", "NaN", "true",
    "null", "\x00", "\ud800", "é" * 50, "x" * 10_000, [], [1], {}, {"a": 1}, [[[]]],
]  # fmt: skip
json_value = st.sampled_from(HOSTILE_VALUES) | st.floats() | st.integers() | st.text(max_size=8)


DROP = object()


def mutated(field: str, value: Any, extra: str, extra_value: Any) -> dict[str, Any]:
    """The valid record with ``field`` replaced (or dropped) and one more field set."""
    record = dict(VALID)
    if value is DROP:
        record.pop(field, None)
    else:
        record[field] = value
    if extra_value is not DROP:
        record[extra] = extra_value
    return record


field_names = st.sampled_from([*FIELDS, "x", "", "TS", "status "])
record_object = st.builds(
    mutated, st.sampled_from(FIELDS), json_value | st.just(DROP), field_names,
    json_value | st.just(DROP),
)  # fmt: skip


def check_record(line: str | bytes) -> RequestRecord | None:
    try:
        record = parse_record(line)
    except RecordError as exc:
        assert str(exc)
        return None
    assert 100 <= record.status <= 599
    assert record.request_id and record.api_key and record.provider and record.model
    assert math.isfinite(record.ts) and math.isfinite(record.latency_ms)
    assert record.latency_ms >= 0 and record.cost_usd >= 0 and record.input_tokens >= 0
    return record


@fuzz(1500)
@given(line=st.text() | st.binary())
def test_request_log_arbitrary_lines(line: str | bytes) -> None:
    check_record(line)


@fuzz(1500)
@given(record=record_object)
def test_request_log_contract_shaped_objects(record: dict[str, Any]) -> None:
    check_record(json.dumps(record))


lines = st.lists(
    record_object.map(json.dumps) | st.text(max_size=30) | st.sampled_from(["", "  ", "{}"]),
    max_size=12,
)


@fuzz(150)  # each example builds a pandas frame: ~10x the cost of one line
@given(batch=lines)
def test_parse_lines_counts_every_bad_line_and_keeps_the_rest(batch: list[str]) -> None:
    parsed = parse_lines(batch, origin="fuzz.jsonl")
    verdicts = [(i, check_record(line)) for i, line in enumerate(batch, 1) if line.strip()]
    bad = [i for i, record in verdicts if record is None]
    assert parsed.malformed == len(bad)
    assert len(parsed.records) == len(verdicts) - len(bad)
    assert [p.split(":")[1] for p in parsed.problems] == [str(i) for i in bad][
        : len(parsed.problems)
    ]


# -- known bugs: minimal failing inputs (the fix flips these to passing) ----------------------

HUGE_INT = '{"ts": 1' + "0" * 5000 + "}"
DEEP = "[" * 100_000 + "]" * 100_000


def test_request_log_huge_int_literal_is_a_record_error() -> None:
    with pytest.raises(RecordError):
        parse_record(HUGE_INT)


def test_request_log_deep_nesting_is_a_record_error() -> None:
    with pytest.raises(RecordError):
        parse_record(DEEP)


def test_one_hostile_line_does_not_lose_the_batch() -> None:
    batch = parse_lines([json.dumps(VALID), HUGE_INT, json.dumps(VALID)])
    assert batch.malformed == 1 and len(batch.records) == 2


@pytest.mark.parametrize("field", ["input_tokens", "output_tokens", "retries"])
def test_counts_past_int64_are_malformed_not_a_crash(field: str) -> None:
    # The frame's int64 columns cannot hold them: found by the OTLP fuzz suite (token counts).
    batch = parse_lines([json.dumps(VALID), json.dumps({**VALID, field: 2**63})])
    assert batch.malformed == 1 and len(batch.records) == 1
    assert f":2: {field}:" in batch.problems[0]
