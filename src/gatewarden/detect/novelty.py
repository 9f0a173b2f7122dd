"""Range novelty: how far a series (or a feature of it) goes beyond everything it has done.

``score = max(v - max_seen, min_seen - v, 0) / (max_seen - min_seen)``: 0 while the value stays
inside the range the series has already visited, and the overshoot in units of that range when
it breaks out. Why this shape for a univariate stream:

* **Scale-free.** The score is relative to the series' own history, so one threshold fits a CPU
  percentage, a byte counter and a tweet count alike.
* **Rare by construction.** A stationary series breaks its own record ever more rarely (about
  ``log n`` times in ``n`` points for noise), so false alarms thin out as history grows, while a
  spike, a level shift or a new regime breaks it at once.
* **Watching features widens it.** Over a smoothed level it sees sustained shifts hidden in
  noise, over a volatility it sees a series that starts to thrash or goes flat, over a seasonal
  difference it sees a daily cycle that changes shape (see :mod:`stream_features`).

Unlike the baseline detectors, every point is learnt, flagged ones included: a record, once
broken, is the new edge of normal (a level shift is reported when it happens, not for as long
as it lasts). Scores are NaN for the first ``warmup`` feature values of a series.

With ``window`` the range is that of the last ``window`` values only (kept as ``blocks`` block
extremes, so state stays small): one huge spike long ago then no longer hides every later
excursion.
"""

from __future__ import annotations

import numpy as np

from gatewarden.detect.contract import FloatArray, SeriesState, safe_slots
from gatewarden.detect.stream_features import StreamFeature, learn_watched, watched
from gatewarden.protocols import SeriesTick


class RangeNovelty:
    """Overshoot of the raw value, or of ``feature``, beyond its own running min/max."""

    def __init__(
        self,
        feature: StreamFeature | None = None,
        *,
        warmup: int = 10,
        window: int | None = None,
        blocks: int = 80,
    ) -> None:
        if warmup < 1:
            raise ValueError("warmup must be >= 1")
        if window is not None and not 2 <= blocks <= window:
            raise ValueError("a window needs 2 <= blocks <= window")
        self.feature = feature
        self.warmup = int(warmup)
        self.blocks = int(blocks) if window is not None else 0
        self.block_size = window // blocks if window is not None else 0
        self.state = SeriesState()
        # low/high: the extremes of the current block (of all history when there is no window)
        self.state.add("low", fill=np.inf)
        self.state.add("high", fill=-np.inf)
        self.state.add("n", fill=0, dtype=np.int64)
        if self.blocks:
            self.state.add("block_low", fill=np.inf, width=self.blocks)
            self.state.add("block_high", fill=-np.inf, width=self.blocks)

    def _watched(self, x: SeriesTick) -> FloatArray:
        return watched(self.feature, x)

    def score_one(self, x: SeriesTick) -> FloatArray:
        return self._score(x, self._watched(x))

    def _score(self, x: SeriesTick, v: FloatArray) -> FloatArray:
        slots = self.state.lookup(x.keys)
        s = safe_slots(slots)
        known = slots >= 0
        low = np.where(known, self.state["low"][s], np.inf)
        high = np.where(known, self.state["high"][s], -np.inf)
        if self.blocks:
            low = np.minimum(low, np.where(known, self.state["block_low"][s].min(axis=1), np.inf))
            high = np.maximum(
                high, np.where(known, self.state["block_high"][s].max(axis=1), -np.inf)
            )
        n = np.where(known, self.state["n"][s], 0)
        span = high - low
        with np.errstate(invalid="ignore"):
            over = np.maximum(v - high, low - v) / np.where(span > 0, span, np.inf)
        # a constant history (span 0) has no scale yet: judge it once it has moved
        scores = np.where(span > 0, np.maximum(over, 0.0), 0.0)
        out: FloatArray = np.where((n >= self.warmup) & np.isfinite(v), scores, np.nan)
        return out

    def learn_one(self, x: SeriesTick) -> None:
        target, v = learn_watched(self.feature, x, self.state)
        self.state["low"][target] = np.minimum(self.state["low"][target], v)
        self.state["high"][target] = np.maximum(self.state["high"][target], v)
        n = self.state["n"][target] + 1
        self.state["n"][target] = n
        if self.blocks:
            # a full block replaces the oldest one in the ring, and a new block starts
            done = target[n % self.block_size == 0]
            column = (n[n % self.block_size == 0] // self.block_size - 1) % self.blocks
            self.state["block_low"][done, column] = self.state["low"][done]
            self.state["block_high"][done, column] = self.state["high"][done]
            self.state["low"][done] = np.inf
            self.state["high"][done] = -np.inf


class NearestBlocks:
    """How unlike anything seen before the last ``dims`` block means are, together.

    Every ``block`` values a series' recent shape is summarised as the means of its last
    ``dims`` blocks (a short trajectory of the level). The score at a block end is the distance
    (mean absolute difference) from that trajectory to the nearest one remembered from earlier,
    non-overlapping blocks, in units of the range the block means have spanned; between block
    ends it is 0. A level or swing the series has never combined before - a plateau at an
    unusual height, a drop where it usually climbs - scores high although every single value
    is ordinary.

    State: up to ``memory`` remembered trajectories per series (the oldest is overwritten when
    full), so this is for a handful of univariate series, not 100k gateway series.
    """

    def __init__(self, *, block: int = 24, dims: int = 2, memory: int = 2048) -> None:
        if block < 1 or dims < 1 or memory < 1:
            raise ValueError("block, dims and memory must be >= 1")
        self.block, self.dims, self.memory = int(block), int(dims), int(memory)
        self.state = SeriesState(initial_capacity=64)
        self.state.add("sum", fill=0.0)
        self.state.add("n", fill=0, dtype=np.int64)  # values learnt
        self.state.add("low", fill=np.inf)  # range of the block means
        self.state.add("high", fill=-np.inf)
        # the last 2*dims-1 block means: the current trajectory and the one to remember next
        self.state.add("means", fill=np.nan, width=2 * self.dims - 1)
        self.state.add("stored", fill=0, dtype=np.int64)
        self.state.add("bank", fill=np.nan, width=self.memory * self.dims)

    def score_one(self, x: SeriesTick) -> FloatArray:
        slots = self.state.lookup(x.keys)
        s = safe_slots(slots)
        # nothing remembered yet: cannot judge (NaN); afterwards 0 between block ends
        judged = (slots >= 0) & np.isfinite(x.values) & (self.state["stored"][s] > 0)
        out: FloatArray = np.where(judged, 0.0, np.nan)
        n = self.state["n"][s]
        ends = np.flatnonzero(judged & ((n + 1) % self.block == 0))
        if ends.size == 0:
            return out
        rows = s[ends]
        mean = (self.state["sum"][rows] + x.values[ends]) / self.block
        # the trajectory ending with this block: the previous dims-1 block means, then this one
        recent = self.state["means"][rows][:, self.dims :]
        trajectory = np.concatenate([recent, mean[:, None]], axis=1)
        bank = self.state["bank"][rows].reshape(len(rows), self.memory, self.dims)
        with np.errstate(invalid="ignore"):
            dist = np.nanmin(
                np.where(
                    np.isnan(bank[:, :, 0]),
                    np.inf,
                    np.abs(bank - trajectory[:, None, :]).mean(axis=2),
                ),
                axis=1,
            )
        span = np.maximum(self.state["high"][rows], mean) - np.minimum(
            self.state["low"][rows], mean
        )
        # a series whose block means never moved (span 0) has nothing novel to show
        out[ends] = np.where(span > 0, dist / np.where(span > 0, span, 1.0), 0.0)
        return out

    def learn_one(self, x: SeriesTick) -> None:
        slots = self.state.ensure(x.keys)
        ok = np.isfinite(x.values)
        rows, values = slots[ok], x.values[ok]
        self.state["sum"][rows] += values
        n = self.state["n"][rows] + 1
        self.state["n"][rows] = n
        done = rows[n % self.block == 0]
        if done.size == 0:
            return
        mean = self.state["sum"][done] / self.block
        self.state["sum"][done] = 0.0
        self.state["low"][done] = np.minimum(self.state["low"][done], mean)
        self.state["high"][done] = np.maximum(self.state["high"][done], mean)
        means = np.concatenate([self.state["means"][done][:, 1:], mean[:, None]], axis=1)
        self.state["means"][done] = means
        # remember the trajectory that ended one block ago: from the next block on it no
        # longer overlaps the current one
        older = means[:, : self.dims]
        full = ~np.isnan(older).any(axis=1)
        keep, older = done[full], older[full]
        column = (self.state["stored"][keep] % self.memory) * self.dims
        for k in range(self.dims):
            self.state["bank"][keep, column + k] = older[:, k]
        self.state["stored"][keep] += 1
