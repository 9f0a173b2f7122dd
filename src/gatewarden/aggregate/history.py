"""A ring buffer of the last N ticks' level frames, queried by playbook verification.

Its consumers need minutes, not hours: traffic previews sum the last 20 ticks and incident
charts backfill the last 40 (their baseline before the incident opened); after that the
series recorder keeps an incident's own series in the store. So the daemon keeps what they ask
for (:func:`ticks_needed`), and a byte budget bounds the frames whatever the series count: at
100k API keys one tick of frames is ~34 MB, and a fixed hour of ticks would have been ~7 GB.

``query("error_rate", {"provider": "openai"})`` answers over every series matching the labels,
combining them the way the metric combines: additive metrics sum, ratios are recomputed from
their summed numerator and denominator (never averaged), percentiles take the maximum.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gatewarden.aggregate.frames import ADDITIVE, LEVELS, METRICS, PERCENTILES, RATIOS

log = logging.getLogger(__name__)

#: Default bound on the frames kept, whatever the number of series.
DEFAULT_MAX_BYTES = 1 << 30


@dataclass(frozen=True)
class HistoryEntry:
    ts: float
    frames: Mapping[str, pd.DataFrame]
    #: memory the frames hold (shallow: label strings are shared with the tick's records)
    nbytes: int = 0


def ticks_needed(*lookbacks: int) -> int:
    """History length that serves every consumer's look-back (at least one tick)."""
    return max(1, *lookbacks)


def _frames_bytes(frames: Mapping[str, pd.DataFrame]) -> int:
    """8 bytes per cell and index entry: every frame column is int64, float64 or an object
    pointer. (``DataFrame.memory_usage`` gives the same and cost ~20 ms a tick in backtests.)"""
    return sum(8 * len(frame) * (frame.shape[1] + 1) for frame in frames.values())


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
    """The frames of the last ``maxlen`` ticks, newest last, within ``max_bytes``.

    When the kept frames exceed ``max_bytes`` the oldest ticks go first, but never the newest
    ``min_len`` (what a traffic preview needs); a trimmed history is logged once, since charts
    then backfill fewer ticks than asked.
    """

    def __init__(
        self, maxlen: int = 240, *, max_bytes: int = DEFAULT_MAX_BYTES, min_len: int = 1
    ) -> None:
        if maxlen < 1 or min_len < 1:
            raise ValueError("maxlen and min_len must be at least 1")
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self._entries: deque[HistoryEntry] = deque(maxlen=maxlen)
        self.max_bytes = max_bytes
        self.min_len = min(min_len, maxlen)
        self._bytes = 0
        self._trimmed = False

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        """Memory the kept frames hold (shallow)."""
        return self._bytes

    def push(self, ts: float, frames: Mapping[str, pd.DataFrame]) -> None:
        # A shallow copy of the mapping: later stages may add levels to tick.frames, but the
        # frames themselves are not mutated after aggregation.
        entry = HistoryEntry(ts=ts, frames=dict(frames), nbytes=_frames_bytes(frames))
        if len(self._entries) == self._entries.maxlen:
            self._bytes -= self._entries[0].nbytes
        self._entries.append(entry)
        self._bytes += entry.nbytes
        while self._bytes > self.max_bytes and len(self._entries) > self.min_len:
            self._bytes -= self._entries.popleft().nbytes
            if not self._trimmed:
                self._trimmed = True
                log.warning(
                    "series history trimmed to %d ticks to stay within %d MB "
                    "(one tick of frames is %.1f MB)",
                    len(self._entries),
                    self.max_bytes >> 20,
                    entry.nbytes / 1e6,
                )

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
