"""The request-log contract: JSON Lines, one object per LLM call, parsed into a DataFrame.

A malformed line is counted and described (line number and reason) but never fatal.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd
from pydantic import ValidationError

from gatewarden.errors import RecordError
from gatewarden.models import RequestRecord
from gatewarden.protocols import Batch

log = logging.getLogger(__name__)

#: Column order of every records DataFrame in gatewarden.
COLUMNS: tuple[str, ...] = tuple(RequestRecord.model_fields)

#: How many problem descriptions a batch keeps (the count is always exact).
MAX_PROBLEMS = 20


def empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=_DTYPES.get(c, "object")) for c in COLUMNS})


_DTYPES: dict[str, str] = {
    "ts": "float64",
    "status": "int64",
    "latency_ms": "float64",
    "ttft_ms": "float64",
    "input_tokens": "int64",
    "output_tokens": "int64",
    "cost_usd": "float64",
    "fallback": "bool",
    "retries": "int64",
}


def parse_record(line: str | bytes) -> RequestRecord:
    """Parse one JSON line; raises RecordError with a precise reason."""
    try:
        raw = json.loads(line)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad JSON, bad UTF-8 and int literals over 4300 digits;
        # RecursionError, nesting deeper than the interpreter allows.
        raise RecordError(f"not JSON: {str(exc)[:200]}") from exc
    if not isinstance(raw, dict):
        raise RecordError(f"expected a JSON object, got {type(raw).__name__}")
    try:
        return RequestRecord.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        raise RecordError(f"{where}: {first['msg']}") from exc


def records_frame(records: Iterable[RequestRecord | dict[str, object]]) -> pd.DataFrame:
    """Build the canonical records DataFrame from models or contract dicts."""
    rows = [r.model_dump() if isinstance(r, RequestRecord) else r for r in records]
    if not rows:
        return empty_frame()
    frame = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
    # Plain dicts may leave out defaulted fields (retries, fallback, ...): fill the contract's
    # defaults before casting so an omitted field never turns into a cast error.
    defaults = {
        name: field.default
        for name, field in RequestRecord.model_fields.items()
        if not field.is_required() and field.default is not None
    }
    frame = frame.fillna(defaults)
    return frame.astype({c: t for c, t in _DTYPES.items() if c != "ttft_ms"}).astype(
        {"ttft_ms": "float64"}
    )


def parse_lines(lines: Iterable[str | bytes], *, origin: str = "<lines>") -> Batch:
    """Parse JSON lines into a Batch; blank lines are skipped, bad ones counted."""
    good: list[RequestRecord] = []
    malformed = 0
    problems: list[str] = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            good.append(parse_record(line))
        except RecordError as exc:
            malformed += 1
            if len(problems) < MAX_PROBLEMS:
                problems.append(f"{origin}:{lineno}: {exc}")
    if malformed:
        log.warning(
            "%s: %d malformed request-log line(s); first: %s", origin, malformed, problems[0]
        )
    return Batch(records=records_frame(good), malformed=malformed, problems=problems)


def open_log(path: Path) -> io.BufferedIOBase:
    """Open a request log, transparently gunzipping ``*.gz``."""
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return path.open("rb")


def iter_lines(path: Path) -> Iterator[bytes]:
    with open_log(path) as handle:
        yield from handle


def read_log(path: Path) -> Batch:
    """Read a whole request log file (``.jsonl`` or ``.jsonl.gz``)."""
    return parse_lines(iter_lines(path), origin=str(path))


def to_jsonl(frame: pd.DataFrame) -> str:
    """Serialise a records frame back to the JSON Lines contract (NaN ttft -> null)."""
    out = frame.astype(object).where(frame.notna(), None)
    return "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in out.to_dict("records"))
