"""The request-log contract: good lines parse, every kind of bad line is counted, none is fatal."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from gatewarden.errors import RecordError
from gatewarden.ingest import parse_lines, parse_record, read_log
from gatewarden.ingest.request_log import COLUMNS, to_jsonl

GOOD = {
    "ts": 1700000000.5,
    "request_id": "r1",
    "trace_id": "t1",
    "session_id": None,
    "api_key": "search-prod",
    "team": "search",
    "workflow": "rag",
    "provider": "openai",
    "model": "gpt-4o",
    "requested_model": "gpt-4o",
    "status": 200,
    "error": None,
    "latency_ms": 812.0,
    "ttft_ms": 210.5,
    "input_tokens": 900,
    "output_tokens": 120,
    "cost_usd": 0.0035,
    "fallback": False,
    "retries": 0,
    "prompt_hash": "abc",
    "tool": None,
}


def line(**override: object) -> str:
    return json.dumps({**GOOD, **override})


def test_good_line_round_trips_and_extra_fields_are_ignored() -> None:
    record = parse_record(line(gateway_specific="x"))
    assert record.model_dump() == GOOD
    batch = parse_lines([line(), line(request_id="r2", ttft_ms=None)])
    assert list(batch.records.columns) == list(COLUMNS)
    assert batch.malformed == 0 and len(batch.records) == 2
    back = [json.loads(x) for x in to_jsonl(batch.records).splitlines()]
    assert back[0] == GOOD and back[1]["ttft_ms"] is None


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "provider"}), "provider: Field req"),
        (line(status=99), "status"),
        (line(status="two hundred"), "status"),
        (line(latency_ms=-1), "latency_ms"),
        (line(cost_usd="NaN"), "cost_usd"),
        (line(input_tokens=1.5), "input_tokens"),
        (line(api_key=""), "api_key"),
    ],
)
def test_bad_line_is_a_record_error_with_the_reason(bad: str, reason: str) -> None:
    with pytest.raises(RecordError, match=reason):
        parse_record(bad)


def test_malformed_lines_are_counted_with_line_numbers_and_never_fatal() -> None:
    lines = [line(), "garbage", "", line(request_id="r2"), line(status=1000), "\x00\x01"]
    batch = parse_lines(lines, origin="app.jsonl")
    assert len(batch.records) == 2
    assert batch.malformed == 3
    assert batch.problems[0].startswith("app.jsonl:2: not JSON")
    assert batch.problems[1].startswith("app.jsonl:5: status")


def test_read_log_gz(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(line() + "\n" + "oops\n" + line(request_id="r2") + "\n")
    batch = read_log(path)
    assert (len(batch.records), batch.malformed) == (2, 1)
    assert batch.records["request_id"].tolist() == ["r1", "r2"]
