"""The pyarrow reader must read a request log exactly as the line-by-line parser does.

Same records frame (values and dtypes), same malformed count, same first problem texts with
their line numbers, on the same files, with every kind of bad line we could think of mixed in.
Small blocks put clean blocks (fast path) and blocks with bad lines (fallback) in one file.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from gatewarden.errors import RecordError
from gatewarden.ingest.fast_log import (
    FINITE_FIELDS,
    iter_blocks,
    iter_log,
    parse_block,
    read_log_fast,
)
from gatewarden.ingest.request_log import MAX_PROBLEMS, parse_record, read_log
from gatewarden.models import RequestRecord
from gatewarden.simulator import Scenario, write_offline

GOOD: dict[str, Any] = {
    "ts": 1_748_937_600.5,
    "request_id": "r-1",
    "api_key": "k",
    "provider": "openai",
    "model": "gpt-4o",
    "requested_model": "gpt-4o",
    "status": 200,
    "latency_ms": 120.0,
    "input_tokens": 10,
    "output_tokens": 5,
    "cost_usd": 0.001,
}


def line(**changes: Any) -> bytes:
    record = {**GOOD, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...}).encode() + b"\n"


#: Lines that json.loads + RequestRecord reject (malformed) or accept, in pyarrow's blind spots.
ODD_LINES: list[bytes] = [
    b"hello, not json\n",
    b'{"ts": 1, "request_id": "trunc\n',
    b"[1, 2, 3]\n",
    b"42\n",
    line(status="200"),  # wrong JSON type: pyarrow fails the block, fallback decides
    line(status=200.5),
    line(status=200.0),  # valid for pydantic (integral float)
    line(ts=True),  # valid for pydantic (bool -> float)
    line(fallback=1),  # valid for pydantic (1 -> True)
    line(request_id=...),  # missing required field
    line(request_id=""),
    line(status=99),
    line(status=600),
    line(latency_ms=-1.0),
    line(cost_usd=-0.5),
    line(input_tokens=-3),
    line(retries=-1),
    line(retries=None),  # explicit null for a defaulted field: malformed
    line(retries=...),  # omitted: defaults to 0
    line(fallback=None),
    line(ttft_ms=None),
    line(ttft_ms=-0.0),
    line(ttft_ms=float("nan")),  # json.dumps writes NaN: pydantic's ge=0 rejects it
    line(ttft_ms=float("inf")),  # accepted: ttft_ms has no finiteness rule
    line(ts=float("inf")),
    line(latency_ms=float("nan")),
    line(status=10**30),
    line(team="Ärger", workflow="ünïcode", extra={"nested": [1, {"a": None}]}),
    b'{"ts": 1, "ts": 2}\n',  # duplicate key
    line(request_id="two-a").rstrip(b"\n") + b" " + line(request_id="two-b"),  # two on a line
    line(api_key="caf\xc3\xa9"),  # valid UTF-8, via json's escaping it stays ASCII
    line(api_key="k").replace(b'"k"', b'"\xff\xfe"'),  # invalid UTF-8 in a valid record
    b"\n",
    b"   \t \n",
    b"\x0c\n",
    line(request_id="crlf").rstrip(b"\n") + b"\r\n",
]


@pytest.fixture(scope="module")
def sim_lines(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    out = tmp_path_factory.mktemp("sim") / "log.jsonl"
    scenario = Scenario(seed=3, duration_s=240.0, base_rps=6.0)
    write_offline(scenario, out, out.with_suffix(".labels.json"))
    return out.read_bytes().splitlines(keepends=True)


def assert_same_as_slow(path: Path, *, block_bytes: int) -> None:
    slow = read_log(path)
    fast = read_log_fast(path, block_bytes=block_bytes)
    assert fast.malformed == slow.malformed
    assert fast.problems == slow.problems
    pd.testing.assert_frame_equal(fast.records, slow.records, check_exact=True)


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_fast_reader_equals_line_parser_with_bad_lines(
    tmp_path: Path, sim_lines: list[bytes], suffix: str
) -> None:
    lines = list(sim_lines)
    for i, odd in enumerate(ODD_LINES):  # spread over the file, so over many blocks
        lines.insert(7 + i * (len(lines) // len(ODD_LINES)), odd)
    data = b"".join(lines)
    path = tmp_path / f"log{suffix}"
    path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    assert read_log(path).malformed >= 20  # the mix really holds bad lines
    assert_same_as_slow(path, block_bytes=8_192)


def test_malformed_count_stays_exact_after_the_problem_list_is_full(
    tmp_path: Path, sim_lines: list[bytes]
) -> None:
    lines = list(sim_lines)
    # contract violations only (valid JSON): past MAX_PROBLEMS they are counted vectorised
    bad = [line(status=99), line(cost_usd=-1.0), line(request_id=""), line(model=...)]
    for i in range(3 * MAX_PROBLEMS):
        lines.insert(5 + i * (len(lines) // (3 * MAX_PROBLEMS + 1)), bad[i % len(bad)])
    path = tmp_path / "many-bad.jsonl"
    path.write_bytes(b"".join(lines))
    slow = read_log(path)
    assert slow.malformed == 3 * MAX_PROBLEMS and len(slow.problems) == MAX_PROBLEMS
    assert_same_as_slow(path, block_bytes=4_096)


def test_clean_blocks_take_the_fast_path_and_count_bad_rows_vectorised(
    sim_lines: list[bytes],
) -> None:
    clean = b"".join(sim_lines[:200])
    result = parse_block(clean)
    assert result.fast and result.batch.malformed == 0 and len(result.batch.records) == 200
    with_bad = clean + line(status=99) + line(cost_usd=float("inf"))
    counted = parse_block(with_bad, problems_wanted=0)
    assert counted.fast and counted.batch.malformed == 2 and len(counted.batch.records) == 200
    described = parse_block(with_bad, first_line=10, origin="x", problems_wanted=5)
    assert not described.fast and described.batch.malformed == 2
    assert described.batch.problems[0].startswith("x:210: status")
    not_json = parse_block(clean + b"{oops\n")
    assert not not_json.fast and not_json.batch.malformed == 1 and not_json.lines == 201
    # json.loads rejects invalid UTF-8 even where pyarrow would read the record
    bad_utf8 = parse_block(clean + line(api_key="k").replace(b'"k"', b'"\xff"'))
    assert not bad_utf8.fast and bad_utf8.batch.malformed == 1


def test_edge_files(tmp_path: Path, sim_lines: list[bytes]) -> None:
    cases = {
        "empty": b"",
        "blank": b"\n\n  \n",
        "no-final-newline": b"".join(sim_lines[:30]).rstrip(b"\n"),
        "long-line": line(request_id="x" * 50_000) + b"".join(sim_lines[:5]),
        "only-bad": b"nope\n[]\n",
    }
    for name, data in cases.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(data)
        assert_same_as_slow(path, block_bytes=1_024)


def test_blocks_hold_whole_lines_and_batches_add_up(tmp_path: Path, sim_lines: list[bytes]) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"".join(sim_lines))
    blocks = [bytes(b) for b in iter_blocks(path, 3_000)]
    assert len(blocks) > 10
    assert all(b.endswith(b"\n") for b in blocks)
    assert b"".join(blocks) == path.read_bytes()
    seen: list[float] = []
    iter_log_batches = list(iter_log(path, block_bytes=3_000, progress=seen.append))
    assert sum(len(b.records) for b in iter_log_batches) == len(sim_lines)
    assert seen[-1] == 1.0 and seen == sorted(seen)


def test_finite_fields_match_the_model() -> None:
    """``FINITE_FIELDS`` mirrors ``RequestRecord``'s finiteness validator, field by field."""
    floats = [
        name
        for name, field in RequestRecord.model_fields.items()
        if field.annotation in (float, float | None)
    ]
    assert floats
    for name in floats:
        rejected = False
        try:
            parse_record(json.dumps({**GOOD, name: math.inf}))
        except RecordError:
            rejected = True
        assert rejected == (name in FINITE_FIELDS), name
