"""A ring buffer of the last N ticks' level frames, queried by playbook verification.

``query("error_rate", {"provider": "openai"})`` answers over every series matching the labels,
combining them the way the metric combines: additive metrics sum, ratios are recomputed from
their summed numerator and denominator (never averaged), percentiles take the maximum.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gatewarden.aggregate.frames import ADDITIVE, LEVELS, METRICS, PERCENTILES, RATIOS


@dataclass(frozen=True)
class HistoryEntry:
    ts: float
    frames: Mapping[str, pd.DataFrame]


def level_for(where: Mapping[str, str]) -> str:
    """The coarsest level whose labels cover every label of ``where``.

    Raises ValueError when no level has them all (e.g. provider together with team): config
    loaders can call this to reject such a condition up front.
    """
    wanted = set(where)
    candidates = [level for level, labels in LEVELS.items() if wanted <= set(labels)]
    if not candidates:
        raise ValueError(f"no aggregation level has all of the labels {sorted(wanted)}")
    return min(candidates, key=lambda level: len(LEVELS[level]))


class SeriesHistory:
    """The frames of the last ``maxlen`` ticks, newest last."""

    def __init__(self, maxlen: int = 240) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        self._entries: deque[HistoryEntry] = deque(maxlen=maxlen)

    def __len__(self) -> int:
        return len(self._entries)

    def push(self, ts: float, frames: Mapping[str, pd.DataFrame]) -> None:
        # A shallow copy of the mapping: later stages may add levels to tick.frames, but the
        # frames themselves are not mutated after aggregation.
        self._entries.append(HistoryEntry(ts=ts, frames=dict(frames)))

    def entry(self, ago: int = 0) -> HistoryEntry | None:
        """The entry ``ago`` ticks before the newest one (0 = newest), if kept."""
        if ago < 0 or ago >= len(self._entries):
            return None
        return self._entries[-1 - ago]

    def query(
        self,
        metric: str,
        where: Mapping[str, str],
        level: str | None = None,
        *,
        ago: int = 0,
    ) -> float | None:
        """``metric`` over the series matching ``where`` at the tick ``ago`` ticks back.

        ``level`` defaults to :func:`level_for` ``(where)``. Returns None when that tick is not
        kept, the level is missing, no series matches, or a ratio has no volume. A percentile
        over several series returns their maximum, which bounds the pooled percentile from above
        (conservative for "below X" checks).
        """
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
        chosen = level_for(where) if level is None else level
        labels = LEVELS.get(chosen)
        if labels is None:
            raise ValueError(f"unknown level {chosen!r}")
        if not set(where) <= set(labels):
            raise ValueError(f"level {chosen!r} has no label(s) {sorted(set(where) - set(labels))}")
        entry = self.entry(ago)
        if entry is None or chosen not in entry.frames:
            return None
        frame = entry.frames[chosen]
        mask = np.ones(len(frame), dtype=bool)
        for label, value in where.items():
            mask &= (frame[label] == value).to_numpy(dtype=bool)
        rows = frame[mask]
        if rows.empty:
            return None
        return _combine(rows, metric)

    def values(
        self,
        metric: str,
        where: Mapping[str, str],
        level: str | None = None,
        *,
        ticks: int,
    ) -> list[float | None]:
        """:meth:`query` for each of the last ``ticks`` ticks, newest first."""
        return [self.query(metric, where, level, ago=ago) for ago in range(ticks)]


def _combine(rows: pd.DataFrame, metric: str) -> float | None:
    if metric in ADDITIVE:
        return float(rows[metric].sum())
    if metric in RATIOS:
        numerator, denominator = RATIOS[metric]
        volume = float(rows[denominator].sum())
        if volume <= 0:
            return None
        return float(rows[numerator].sum()) / volume
    if metric in PERCENTILES:
        value = rows[metric].max()  # NaN-skipping; NaN when no series had a value
        return None if pd.isna(value) else float(value)
    raise ValueError(f"metric {metric!r} has no combination rule")
