"""Metric samples -> per-tick level frames, merged with the frames aggregated from records.

Sources that see metrics rather than requests (a ``/metrics`` scrape, PromQL) emit *frame
samples*: one value of one column of one level frame, named ``gatewarden:<level>:<metric>``
with the scope labels as labels, e.g. ``gatewarden:model:errors{provider="openai",
model="gpt-4o"} 3``. :class:`SampleFramesStage` (after ``AggregateStage``, before
``DetectStage``) pivots them into frames shaped like :func:`gatewarden.aggregate.aggregate`'s,
so detector specs work unchanged whichever source fed them.

Several frame samples for the same cell (two gateway replicas scraped separately) add up for
additive metrics and take the maximum for percentiles and ratios. Ratios and ``rps`` are
derived when their parts are present; a cell nobody reported stays NaN ("no data" is never a
zero). Records win over samples cell by cell (``prefer="records"``): a records row keeps its
values and only its NaN cells (e.g. TTFT, which LiteLLM's spans lack) are filled; a records row
without requests (the global frame's placeholder when no record came) does not count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Literal

import numpy as np
import pandas as pd

from gatewarden.aggregate import ADDITIVE, LEVELS, METRICS, RATIOS
from gatewarden.models import Sample, scope_key
from gatewarden.protocols import Tick

PREFIX = "gatewarden:"


def frame_sample_name(level: str, metric: str) -> str:
    return f"{PREFIX}{level}:{metric}"


def frame_sample(
    level: str, metric: str, scope: Mapping[str, str], value: float, ts: float
) -> Sample:
    """One cell of one level frame as a Sample (scope labels must be the level's labels)."""
    return Sample(name=frame_sample_name(level, metric), labels=dict(scope), ts=ts, value=value)


def parse_frame_sample_name(name: str) -> tuple[str, str] | None:
    """``gatewarden:model:errors`` -> ``("model", "errors")``; None for any other sample."""
    if not name.startswith(PREFIX):
        return None
    parts = name[len(PREFIX) :].split(":")
    if len(parts) != 2 or parts[0] not in LEVELS or parts[1] not in METRICS:
        return None
    return parts[0], parts[1]


def frames_from_samples(samples: Iterable[Sample], *, window: float) -> dict[str, pd.DataFrame]:
    """Level frames from the frame samples among ``samples`` (others are ignored)."""
    cells: dict[str, dict[str, dict[str, float]]] = {}
    scopes: dict[str, dict[str, dict[str, str]]] = {}
    for sample in samples:
        parsed = parse_frame_sample_name(sample.name)
        if parsed is None or math.isnan(sample.value):
            continue
        level, metric = parsed
        labels = LEVELS[level]
        scope = {k: v for k, v in sample.labels.items() if k in labels and v}
        if any(label not in scope for label in _required(level)):
            continue
        key = scope_key(scope)
        row = cells.setdefault(level, {}).setdefault(key, {})
        scopes.setdefault(level, {})[key] = scope
        if metric in row:
            additive = metric in ADDITIVE
            row[metric] = row[metric] + sample.value if additive else max(row[metric], sample.value)
        else:
            row[metric] = sample.value
    return {level: _frame(level, rows, scopes[level], window) for level, rows in cells.items()}


def _required(level: str) -> tuple[str, ...]:
    # ``api_key`` rows may lack the team, as in the records frames.
    return tuple(label for label in LEVELS[level] if not (level == "api_key" and label == "team"))


def _frame(
    level: str,
    rows: dict[str, dict[str, float]],
    scopes: dict[str, dict[str, str]],
    window: float,
) -> pd.DataFrame:
    keys = sorted(rows)
    data: dict[str, object] = {
        label: pd.Series([scopes[k].get(label, np.nan) for k in keys], dtype=object)
        for label in LEVELS[level]
    }
    for metric in METRICS:
        data[metric] = np.array([rows[k].get(metric, np.nan) for k in keys], dtype=np.float64)
    frame = pd.DataFrame(data)
    for ratio, (num, den) in RATIOS.items():
        derived = frame[num] / frame[den].where(frame[den] > 0)
        frame[ratio] = frame[ratio].fillna(derived)
    if window > 0:
        frame["rps"] = frame["rps"].fillna(frame["requests"] / window)
    frame.index = pd.Index(keys, dtype="object", name="scope")
    return frame


def merge_frames(
    primary: pd.DataFrame | None, secondary: pd.DataFrame | None
) -> pd.DataFrame | None:
    """``primary``'s cells, with its NaN cells and missing rows taken from ``secondary``."""
    if primary is None or primary.empty:
        return secondary if secondary is not None else primary
    if secondary is None or secondary.empty:
        return primary
    columns = list(primary.columns)
    merged = primary.combine_first(secondary)[columns]
    merged.index.name = "scope"
    return merged


class SampleFramesStage:
    """Pipeline stage: frame samples of ``tick.samples`` -> ``tick.frames`` (merged)."""

    name = "sample_frames"

    def __init__(self, *, prefer: Literal["records", "samples"] = "records") -> None:
        self.prefer = prefer

    def run(self, tick: Tick) -> None:
        from_samples = frames_from_samples(tick.samples, window=tick.now - tick.start)
        for level, frame in from_samples.items():
            current = tick.frames.get(level)
            if current is not None and "requests" in current:
                # The records' global frame has a row even without records: that is "no
                # records here", not "zero requests", and must not hide the samples.
                current = current[current["requests"] > 0]
            if self.prefer == "records":
                merged = merge_frames(current, frame)
            else:
                merged = merge_frames(frame, current)
            if merged is not None:
                tick.frames[level] = merged
