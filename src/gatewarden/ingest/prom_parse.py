"""A fast Prometheus text-format parser that agrees with ``prometheus_client``'s.

``prometheus_client.parser`` is the reference implementation, but it walks every label block
character by character in Python: a 1.4 MB LiteLLM-shaped page (3.3k samples, ~17 labels each)
takes ~0.65 s, which is most of a short tick. Almost every real line is plain (no escapes,
single spaces, legacy names), so such lines are matched with one regex here; any other line is
handed to ``prometheus_client`` on its own. Family bookkeeping (``# TYPE``/``# HELP``, the
counter ``_total`` renaming, untyped singletons) mirrors the reference state machine, so the
output is sample-for-sample identical (a property test checks this on random pages).

Unlike the reference, a bad line does not discard the page: it is counted and skipped.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from gatewarden.models import Sample

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_PAIR = r'[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"'
#: A plain sample line: name, optional ``{a="b",...}`` without escapes or spaces, one space,
#: value, optionally one space and a timestamp. Anything else goes to the reference parser.
_PLAIN = re.compile(rf"({_NAME})(?:\{{((?:{_PAIR},)*(?:{_PAIR})?)\}})? ([^ ]+)(?: ([^ ]+))?")
_PAIRS = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"\\]*)"')
_LEGACY_NAME = re.compile(rf"{_NAME}")
_WS = re.compile(r"[ \t\n\r\x0b\x0c]+")

#: Sample names a family of each type owns (the reference's ``allowed_names``).
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("",),
    "gauge": ("",),
    "summary": ("_count", "_sum", ""),
    "histogram": ("_count", "_sum", "_bucket"),
}

#: How many problem descriptions a scrape keeps (the count is always exact).
MAX_PROBLEMS = 10

_Raw = tuple[str, dict[str, str], float, float | None]


@dataclass
class Scrape:
    """One parsed exposition stamped ``ts`` (when it was pulled): samples in page order, each
    sample name's family type (``counter``, ``gauge``, ``histogram``, ``summary`` or
    ``untyped``), and bad lines."""

    ts: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)
    malformed: int = 0
    problems: list[str] = field(default_factory=list)

    def bad(self, lineno: int, why: str) -> None:
        self.malformed += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(f"line {lineno}: {why}")


def _number(token: str) -> float:
    # The reference rejects '_' (which float() would accept as a digit separator).
    if "_" in token:
        raise ValueError(f"invalid value {token!r}")
    return float(token)


def _timestamp(token: str) -> float:
    if "_" in token:
        raise ValueError(f"invalid timestamp {token!r}")
    try:
        return int(token) / 1000  # exact, like the reference, for integer milliseconds
    except ValueError:
        return float(token) / 1000


def _fast(line: str) -> _Raw | None:
    """The sample of a plain line, or None when the reference parser must decide."""
    if "\t" in line or "#" in line:
        return None
    match = _PLAIN.fullmatch(line)
    if match is None:
        return None
    name, block, value, ts = match.groups()
    labels: dict[str, str] = {}
    if block:
        pairs = _PAIRS.findall(block)
        labels = dict(pairs)
        if len(labels) != len(pairs):
            return None  # duplicate names: the reference rejects the line
        if "__" in block and any(k.startswith("__") for k in labels):
            return None  # reserved names (``__name__``...): the reference decides
    try:
        return name, labels, _number(value), None if ts is None else _timestamp(ts)
    except ValueError:
        return None


def _reference(line: str) -> _Raw:
    """One sample line through ``prometheus_client`` (alone, it is an untyped singleton)."""
    families = list(text_string_to_metric_families(line + "\n"))
    if len(families) != 1 or len(families[0].samples) != 1:
        raise ValueError("not a single sample")
    s = families[0].samples[0]
    ts = None if s.timestamp is None else float(s.timestamp)
    return s.name, dict(s.labels), float(s.value), ts


class _Family:
    __slots__ = ("allowed", "name", "raws", "type")

    def __init__(self, name: str = "", type_: str = "untyped", allowed: tuple[str, ...] = ()):
        self.name, self.type, self.allowed = name, type_, allowed
        self.raws: list[_Raw] = []


class _Parser:
    def __init__(self, ts: float) -> None:
        self.ts = ts
        self.out = Scrape(ts=ts)
        self.family = _Family()

    def close(self) -> None:
        fam = self.family
        if fam.name:
            # The reference renames every sample of a counter family not named *_total.
            rename = fam.type == "counter" and not fam.name.endswith("_total")
            self.emit(fam.raws, fam.type, suffix="_total" if rename else "")
        self.family = _Family()

    def emit(self, raws: list[_Raw], type_: str, suffix: str = "") -> None:
        for name, labels, value, ts in raws:
            if math.isnan(value):
                continue
            full = name + suffix
            self.out.types.setdefault(full, type_)
            # Every field is already of its declared type: skip re-validating ~3k models a page
            # (it was ~40% of the parse time).
            self.out.samples.append(
                Sample.model_construct(
                    name=full, labels=labels, ts=self.ts if ts is None else ts, value=value
                )
            )

    def comment(self, line: str) -> None:
        # Split like the reference (ASCII whitespace, at most four parts).
        parts = _WS.split(line, 3)
        if len(parts) < 2:
            return
        candidate = ""
        if len(parts) > 2:
            if parts[1] not in ("TYPE", "HELP"):
                return
            if '"' in "".join(parts[:3]):
                # Quoted (UTF-8) family names: not needed by gatewarden, so rejected rather
                # than half-understood.
                raise ValueError(f"quoted name in {parts[1]} line is not supported")
            candidate = parts[2]
            if not _LEGACY_NAME.fullmatch(candidate):
                raise ValueError(f"invalid metric name in {parts[1]} line")
        if parts[1] == "HELP":
            if candidate != self.family.name:
                self.close()
                self.family = _Family(candidate, "untyped", (candidate,))
        elif parts[1] == "TYPE":
            if len(parts) < 4:
                raise ValueError("TYPE line without a type")
            if candidate != self.family.name:
                self.close()
                self.family = _Family(candidate)
            self.family.type = parts[3]
            self.family.allowed = tuple(candidate + s for s in _SUFFIXES.get(parts[3], ("",)))

    def sample(self, raw: _Raw) -> None:
        if raw[0] in self.family.allowed:
            self.family.raws.append(raw)
            return
        self.close()
        self.emit([raw], "untyped")


def parse_scrape(text: str, ts: float) -> Scrape:
    """Parse a text exposition leniently: bad lines are counted in ``malformed`` and skipped.

    Samples without their own timestamp are stamped ``ts``; NaN samples are left out.
    """
    parser = _Parser(ts)
    for lineno, raw_line in enumerate(text.split("\n"), start=1):
        line = raw_line.strip()
        if not line:
            continue
        try:
            if line.startswith("#"):
                parser.comment(line)
                continue
            raw = _fast(line)
            parser.sample(raw if raw is not None else _reference(line))
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            # The reference parser signals bad input with these.
            parser.out.bad(lineno, f"{type(exc).__name__}: {exc}"[:200])
    parser.close()
    return parser.out
