"""Fast request-log reading: pyarrow's JSON parser plus vectorised contract validation.

The result is the same as :func:`gatewarden.ingest.request_log.read_log` — the same records
DataFrame (columns and dtypes of ``records_frame``), the same malformed count and the same first
problem descriptions — at the speed of a C++ JSON parser instead of ``json.loads`` and one
pydantic model per line.

The file is read in blocks of whole lines, so memory stays bounded by the block size whatever
the log length. A block takes the fast path only when pyarrow's reading of it provably means
what the line-by-line parser's would; anything else (a line that is not JSON, a value of the
wrong JSON type, an explicit ``null`` for a defaulted field, invalid UTF-8, two objects on one
line, ...) sends that one block through the line-by-line parser, so the malformed count stays
exact. A block with rows that break the contract (status 99, a negative cost, a missing field)
is also re-read line by line while fewer than ``MAX_PROBLEMS`` problems are known, so the
problem texts and line numbers match the slow parser; after that they are only counted.
"""

from __future__ import annotations

import gzip
import io
import logging
import re
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import annotated_types
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from gatewarden.errors import RecordError
from gatewarden.ingest.request_log import (
    COLUMNS,
    MAX_PROBLEMS,
    empty_frame,
    parse_record,
    records_frame,
)
from gatewarden.models import RequestRecord
from gatewarden.protocols import Batch

log = logging.getLogger(__name__)

#: Bytes per block: large enough that pyarrow's per-call cost vanishes, small enough that a
#: block's raw bytes, Arrow table and DataFrame together stay around 100 MB.
DEFAULT_BLOCK_BYTES = 16 << 20

#: Called with the fraction of the file read so far.
Progress = Callable[[float], None]

#: Fields whose model validator demands a finite number (``RequestRecord._finite``); pinned by
#: ``tests/ingest/test_fast_log.py`` against the model itself.
FINITE_FIELDS: frozenset[str] = frozenset({"ts", "latency_ms", "cost_usd"})

_ARROW_TYPES: dict[type, pa.DataType] = {
    float: pa.float64(),
    int: pa.int64(),
    bool: pa.bool_(),
    str: pa.string(),
}


@dataclass(frozen=True)
class _Rule:
    name: str
    arrow_type: pa.DataType
    required: bool
    #: missing -> this default; an explicit JSON null is a contract error (non-Optional field)
    default: Any
    nullable: bool
    constraints: tuple[Any, ...]


def _rule(name: str) -> _Rule:
    field = RequestRecord.model_fields[name]
    annotation = field.annotation
    nullable = False
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(get_args(annotation))
        annotation = args[0] if len(args) == 1 else annotation
    if annotation not in _ARROW_TYPES:
        raise TypeError(f"fast_log: RequestRecord.{name} has unsupported type {annotation!r}")
    supported = (annotated_types.Ge, annotated_types.Le, annotated_types.MinLen)
    for item in field.metadata:
        if not isinstance(item, supported):
            # A constraint the vectorised check does not know would let bad rows through.
            raise TypeError(f"fast_log: RequestRecord.{name} has unsupported constraint {item!r}")
    return _Rule(
        name=name,
        arrow_type=_ARROW_TYPES[annotation],
        required=field.is_required(),
        default=None if field.is_required() else field.default,
        nullable=nullable,
        constraints=tuple(field.metadata),
    )


_RULES: tuple[_Rule, ...] = tuple(_rule(name) for name in COLUMNS)
_SCHEMA = pa.schema([(r.name, r.arrow_type) for r in _RULES])
_PARSE_OPTIONS = pj.ParseOptions(explicit_schema=_SCHEMA, unexpected_field_behavior="ignore")
_STRINGS = tuple(r.name for r in _RULES if r.arrow_type == pa.string())
#: Defaulted fields that do not accept null: pyarrow reads a missing field and an explicit null
#: alike, so a block with nulls there is searched for the explicit spelling.
_DEFAULTED = tuple(r for r in _RULES if not r.required and not r.nullable)
_EXPLICIT_NULL = re.compile(
    rb'"(?:' + b"|".join(re.escape(r.name.encode()) for r in _DEFAULTED) + rb')"\s*:\s*null'
    if _DEFAULTED
    else rb"(?!)"
)
_NEWLINE = ord("\n")
_SPACE = ord(" ")


class _Fallback(Exception):
    """This block must be read by the line-by-line parser."""


@dataclass
class BlockResult:
    """One block of whole lines, parsed."""

    batch: Batch
    lines: int
    fast: bool


def parse_block(
    data: bytes | bytearray | memoryview,
    *,
    first_line: int = 1,
    origin: str = "<block>",
    problems_wanted: int = 0,
) -> BlockResult:
    """Parse a block of whole JSON lines (``first_line`` = the file line number of its first).

    ``problems_wanted`` > 0 asks for that many problem descriptions; a block with malformed
    rows is then re-read line by line so they match :func:`request_log.parse_lines` exactly.
    """
    raw = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(raw == _NEWLINE)
    lines = len(newlines) + int(len(raw) > 0 and raw[-1] != _NEWLINE)
    try:
        records, malformed = _parse_fast(data, raw, newlines, problems_wanted)
    except _Fallback:
        batch = _parse_slow(bytes(data), first_line, origin, problems_wanted)
        return BlockResult(batch, lines, False)
    return BlockResult(Batch(records=records, malformed=malformed), lines, True)


def _parse_fast(
    data: bytes | bytearray | memoryview,
    raw: npt.NDArray[np.uint8],
    newlines: npt.NDArray[np.intp],
    problems_wanted: int,
) -> tuple[pd.DataFrame, int]:
    content = _content_lines(raw, newlines)
    if content == 0:
        return empty_frame(), 0
    if raw.max() >= 0x80:
        try:  # json.loads rejects a line with invalid UTF-8 anywhere; pyarrow may not look
            str(data, "utf-8")
        except UnicodeDecodeError as exc:
            raise _Fallback from exc
    read_options = pj.ReadOptions(block_size=max(1 << 20, len(raw) // 4 + 1))
    try:
        table = pj.read_json(
            pa.BufferReader(pa.py_buffer(data)),
            read_options=read_options,
            parse_options=_PARSE_OPTIONS,
        )
    except pa.ArrowInvalid as exc:
        raise _Fallback from exc
    if table.num_rows != content:
        raise _Fallback  # e.g. two objects on one line: json.loads calls that one bad line
    valid = _valid_mask(table)
    malformed = int(len(valid) - np.count_nonzero(valid))
    if malformed and problems_wanted > 0:
        raise _Fallback  # re-read for exact problem texts and line numbers
    if malformed:
        table = table.filter(pa.array(valid))
    table = _fill_defaults(table, data)
    return _to_frame(table), malformed


def _content_lines(raw: npt.NDArray[np.uint8], newlines: npt.NDArray[np.intp]) -> int:
    """Lines that are not blank (the ones either parser reads)."""
    if len(raw) == 0:
        return 0
    lines = len(newlines) + int(raw[-1] != _NEWLINE)
    starts = newlines[newlines < len(raw) - 1] + 1
    # Data lines start with "{"; only a line starting with whitespace (<= 0x20) can be blank.
    if raw[0] > _SPACE and not (raw[starts] <= _SPACE).any():
        return lines
    return sum(1 for line in raw.tobytes().split(b"\n") if line.strip())


def _valid_mask(table: pa.Table) -> np.ndarray[Any, np.dtype[np.bool_]]:
    valid = np.ones(table.num_rows, dtype=bool)
    for rule in _RULES:
        column = table.column(rule.name)
        has_nulls = column.null_count > 0
        if rule.required and has_nulls:
            valid &= column.is_valid().to_numpy(zero_copy_only=False)
        checks = []
        for item in rule.constraints:
            if isinstance(item, annotated_types.Ge):
                checks.append(pc.greater_equal(column, item.ge))
            elif isinstance(item, annotated_types.Le):
                checks.append(pc.less_equal(column, item.le))
            elif isinstance(item, annotated_types.MinLen):
                checks.append(pc.greater_equal(pc.binary_length(column), item.min_length))
        if rule.name in FINITE_FIELDS:
            checks.append(pc.is_finite(column))
        for check in checks:
            # null = value absent: its own rule (required / default) judged it above
            ok = pc.fill_null(check, True) if has_nulls else check
            valid &= ok.to_numpy(zero_copy_only=False)
    return valid


def _fill_defaults(table: pa.Table, data: bytes | bytearray | memoryview) -> pa.Table:
    for rule in _DEFAULTED:
        column = table.column(rule.name)
        if column.null_count == 0:
            continue
        if _EXPLICIT_NULL.search(data):
            raise _Fallback  # an explicit null is a contract error only the slow path can place
        index = table.schema.get_field_index(rule.name)
        table = table.set_column(
            index, rule.name, pc.fill_null(column, pa.scalar(rule.default, rule.arrow_type))
        )
    return table


def _to_frame(table: pa.Table) -> pd.DataFrame:
    frame: pd.DataFrame = table.to_pandas()
    for name in _STRINGS:
        if len(frame) and table.column(name).null_count == len(frame):
            # records_frame keeps an all-None column as object None, not a NaN string column
            frame[name] = pd.Series([None] * len(frame), dtype=object, index=frame.index)
    return frame


def _parse_slow(data: bytes, first_line: int, origin: str, problems_wanted: int) -> Batch:
    """The line-by-line parser (``request_log.parse_record`` per line) over one block."""
    good: list[RequestRecord] = []
    malformed = 0
    problems: list[str] = []
    # lines keep their newline, as file iteration gives them (json.loads' messages differ)
    pieces = data.split(b"\n")
    tail = pieces.pop()
    lines = [piece + b"\n" for piece in pieces]
    if tail:
        lines.append(tail)
    for offset, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            good.append(parse_record(line))
        except RecordError as exc:
            malformed += 1
            if len(problems) < problems_wanted:
                problems.append(f"{origin}:{first_line + offset}: {exc}")
    return Batch(records=records_frame(good), malformed=malformed, problems=problems)


def iter_blocks(
    path: Path, block_bytes: int = DEFAULT_BLOCK_BYTES, *, progress: Progress | None = None
) -> Iterator[memoryview]:
    """Whole-line blocks of about ``block_bytes`` (the block ends at the end of its last line).

    Each block is a fresh buffer read straight from the file, with no copy on top.
    ``progress`` is called after each block with the fraction of the file read (of the
    compressed bytes for ``.gz``).
    """
    if block_bytes < 1:
        raise ValueError("block_bytes must be positive")
    size = max(path.stat().st_size, 1)
    with path.open("rb") as raw:
        handle: io.BufferedIOBase = gzip.GzipFile(fileobj=raw) if path.suffix == ".gz" else raw
        with handle:
            while True:
                buffer = bytearray(block_bytes)
                filled = handle.readinto(buffer)
                if not filled:
                    break
                if buffer[filled - 1] != _NEWLINE:
                    # finish the last line so the block holds whole lines only
                    rest = handle.readline()
                    buffer[filled : filled + len(rest)] = rest
                    filled += len(rest)
                if progress is not None:
                    progress(min(raw.tell() / size, 1.0))
                yield memoryview(buffer)[:filled]
    if progress is not None:
        progress(1.0)


def iter_log(
    path: Path, *, block_bytes: int = DEFAULT_BLOCK_BYTES, progress: Progress | None = None
) -> Iterator[Batch]:
    """One Batch per block of ``path`` (``.jsonl`` or ``.jsonl.gz``), in file order.

    Each batch carries its block's malformed count and, while the file has fewer than
    ``MAX_PROBLEMS``, its problem descriptions (``path:line: reason``).
    """
    origin = str(path)
    line = 1
    problems = 0
    malformed = 0
    first_problem = ""
    for data in iter_blocks(path, block_bytes, progress=progress):
        result = parse_block(
            data, first_line=line, origin=origin, problems_wanted=MAX_PROBLEMS - problems
        )
        line += result.lines
        problems += len(result.batch.problems)
        malformed += result.batch.malformed
        if result.batch.problems and not first_problem:
            first_problem = result.batch.problems[0]
        yield result.batch
    if malformed:
        log.warning(
            "%s: %d malformed request-log line(s); first: %s", origin, malformed, first_problem
        )


def read_log_fast(path: Path, *, block_bytes: int = DEFAULT_BLOCK_BYTES) -> Batch:
    """Read a whole request log: the same Batch as ``request_log.read_log(path)``, faster."""
    frames: list[pd.DataFrame] = []
    malformed = 0
    problems: list[str] = []
    for batch in iter_log(path, block_bytes=block_bytes):
        malformed += batch.malformed
        problems.extend(batch.problems)
        if not batch.records.empty:
            frames.append(batch.records)
    if not frames:
        return Batch(records=empty_frame(), malformed=malformed, problems=problems)
    return Batch(records=concat_records(frames), malformed=malformed, problems=problems)


def concat_records(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate records frames with the dtypes ``records_frame`` would give the union."""
    if len(frames) == 1:
        return frames[0]
    frame = pd.concat(frames, ignore_index=True)
    if all(f.dtypes.equals(frames[0].dtypes) for f in frames[1:]):
        return frame  # each part is canonical and they agree: so is the whole
    for name in _STRINGS:
        column = frame[name]
        all_missing = bool(column.isna().all())
        if all_missing and column.dtype != object:
            frame[name] = pd.Series([None] * len(frame), dtype=object, index=frame.index)
        elif not all_missing and column.dtype == object:
            frame[name] = column.astype("str")
    return frame
