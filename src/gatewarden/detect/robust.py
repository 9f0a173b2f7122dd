"""Robust streaming detectors, vectorised over every series of one metric.

Both detectors share the same scoring shape::

    score = oriented(x - baseline) / max(scale, rel_floor * |baseline|, abs_floor, binomial_se)

The floors stop a near-constant baseline (an error rate of exactly 0 for hours) from turning
the first tiny blip into a huge score; ``binomial_se`` (opt-in, for ratio metrics such as an
error rate) is the sampling noise of a proportion at this tick's volume, so a 1-in-20 error on a
quiet series is not mistaken for an outage. ``direction`` orients the score so that "higher =
more anomalous" holds for metrics where a drop is the problem (traffic).

Neither detector learns from a point more than ``learn_limit`` scales from the baseline, in
either direction: an outage is reported for as long as it lasts instead of becoming the
baseline, and a dip (cost per call falling while a fallback storm keeps the pricier model's
calls failing) does not pull the baseline down, which would make the return to normal look
like a rise. If a series stays flagged for
more than ``max_skip`` consecutive ticks the shift is accepted as the new normal: the series'
state is reset and it warms up again.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from gatewarden.detect.contract import FloatArray, IntArray, SeriesState, safe_slots
from gatewarden.protocols import BoolArray, SeriesTick

Direction = Literal["up", "down", "both"]

#: mean absolute deviation -> standard deviation, for normally distributed noise
_MAD_TO_SIGMA = float(np.sqrt(np.pi / 2.0))
#: median absolute deviation -> standard deviation, for normally distributed noise
_MEDIAN_MAD_TO_SIGMA = 1.4826


class _Scoring:
    """Validation and the score formula shared by both detectors."""

    def __init__(
        self,
        *,
        min_volume: float,
        rel_floor: float,
        abs_floor: float,
        binomial: bool,
        learn_limit: float,
        max_skip: int,
        direction: Direction,
    ) -> None:
        if min_volume < 0 or rel_floor < 0 or abs_floor < 0:
            raise ValueError("min_volume, rel_floor and abs_floor must be >= 0")
        if learn_limit <= 0 or max_skip < 1:
            raise ValueError("learn_limit must be > 0 and max_skip >= 1")
        if direction not in ("up", "down", "both"):
            raise ValueError(f"direction must be up, down or both, got {direction!r}")
        self.min_volume = float(min_volume)
        self.rel_floor = float(rel_floor)
        # a strictly positive floor keeps every division defined, even for all-zero series
        self.abs_floor = max(float(abs_floor), 1e-12)
        self.binomial = binomial
        self.learn_limit = float(learn_limit)
        self.max_skip = int(max_skip)
        self.direction: Direction = direction

    def denominator(self, base: FloatArray, scale: FloatArray, volumes: FloatArray) -> FloatArray:
        denom = np.maximum(scale, self.rel_floor * np.abs(base))
        denom = np.maximum(denom, self.abs_floor)
        if self.binomial:
            with np.errstate(divide="ignore", invalid="ignore"):
                vol = np.maximum(volumes, 1.0)
                p = np.clip(np.maximum(base, 1.0 / vol), 0.0, 1.0)
                se = np.sqrt(p * (1.0 - np.clip(base, 0.0, 1.0)) / vol)
            denom = np.fmax(denom, se)  # fmax: a NaN se (no baseline yet) leaves denom as is
        return denom

    def orient(self, diff: FloatArray, denom: FloatArray) -> FloatArray:
        z = diff / denom
        if self.direction == "up":
            return z
        if self.direction == "down":
            return -z
        return np.abs(z)

    def usable(self, x: SeriesTick) -> BoolArray:
        return (x.volumes >= self.min_volume) & np.isfinite(x.values)


class RobustEWMA(_Scoring):
    """Per-series EWMA of the value and EWMA of the absolute deviation (robust scale).

    During warm-up (fewer than ``warmup`` learnt points) the averages use ``1/(n+1)`` weights so
    they start as plain means; after it, learnt points are winsorised to ``±clip`` scales first
    so a single spike below ``learn_limit`` cannot drag the baseline far.
    """

    def __init__(
        self,
        *,
        alpha: float = 0.1,
        warmup: int = 10,
        min_volume: float = 1.0,
        rel_floor: float = 0.1,
        abs_floor: float = 1e-9,
        binomial: bool = False,
        clip: float = 3.0,
        learn_limit: float = 4.0,
        max_skip: int = 240,
        direction: Direction = "up",
    ) -> None:
        super().__init__(
            min_volume=min_volume,
            rel_floor=rel_floor,
            abs_floor=abs_floor,
            binomial=binomial,
            learn_limit=learn_limit,
            max_skip=max_skip,
            direction=direction,
        )
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        if warmup < 1 or clip <= 0:
            raise ValueError("warmup must be >= 1 and clip > 0")
        self.alpha = float(alpha)
        self.warmup = int(warmup)
        self.clip = float(clip)
        self.state = SeriesState()
        self.state.add("mean", fill=np.nan)
        self.state.add("dev", fill=0.0)
        self.state.add("n", fill=0, dtype=np.int64)
        self.state.add("skipped", fill=0, dtype=np.int64)

    def _gather(self, slots: IntArray) -> tuple[FloatArray, FloatArray, IntArray, IntArray]:
        s = safe_slots(slots)
        unknown = slots < 0
        mean = np.where(unknown, np.nan, self.state["mean"][s])
        dev = np.where(unknown, 0.0, self.state["dev"][s])
        n = np.where(unknown, 0, self.state["n"][s])
        skipped = np.where(unknown, 0, self.state["skipped"][s])
        return mean, dev, n, skipped

    def _scores(
        self, x: SeriesTick, mean: FloatArray, dev: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        denom = self.denominator(mean, _MAD_TO_SIGMA * dev, x.volumes)
        return self.orient(x.values - mean, denom), denom

    def score_one(self, x: SeriesTick) -> FloatArray:
        mean, dev, n, _ = self._gather(self.state.lookup(x.keys))
        scores, _ = self._scores(x, mean, dev)
        ok = self.usable(x) & (n >= self.warmup)
        return np.where(ok, scores, np.nan)

    def expected(self, x: SeriesTick) -> FloatArray:
        mean, _, _, _ = self._gather(self.state.lookup(x.keys))
        return mean

    def learn_one(self, x: SeriesTick) -> None:
        slots = self.state.ensure(x.keys)
        mean, dev, n, skipped = self._gather(slots)
        values = x.values
        valid = self.usable(x)
        warm = n >= self.warmup
        with np.errstate(invalid="ignore"):
            _, denom = self._scores(x, mean, dev)
            flagged = valid & warm & (np.abs(x.values - mean) / denom > self.learn_limit)
        skipped = np.where(flagged, skipped + 1, np.where(valid, 0, skipped))
        reseed = flagged & (skipped > self.max_skip)
        n = np.where(reseed, 0, n)
        skipped = np.where(reseed, 0, skipped)
        learn = valid & (~flagged | reseed)

        winsorise = warm & ~reseed
        clipped = np.clip(values, mean - self.clip * denom, mean + self.clip * denom)
        xs = np.where(winsorise, clipped, values)
        # first point of a series: the baseline starts at the point itself, deviation at 0
        prev = np.where(n == 0, xs, mean)
        weight = np.maximum(self.alpha, 1.0 / (n + 1.0))
        new_dev = dev + weight * (np.abs(xs - prev) - dev)
        new_mean = prev + weight * (xs - prev)

        target = slots[learn]
        self.state["mean"][target] = new_mean[learn]
        self.state["dev"][target] = new_dev[learn]
        self.state["n"][target] = n[learn] + 1
        self.state["skipped"][slots] = skipped


class MedianMAD(_Scoring):
    """Rolling robust z-score: distance from the median of the last ``window`` learnt points in
    units of their median absolute deviation.

    State is a ``(series, window)`` ring buffer; the median is taken by sorting each row (NaN
    sorts last) and indexing at the row's fill count, so it stays vectorised across series.
    """

    def __init__(
        self,
        *,
        window: int = 30,
        min_periods: int = 10,
        min_volume: float = 1.0,
        rel_floor: float = 0.1,
        abs_floor: float = 1e-9,
        binomial: bool = False,
        learn_limit: float = 4.0,
        max_skip: int = 240,
        direction: Direction = "up",
    ) -> None:
        super().__init__(
            min_volume=min_volume,
            rel_floor=rel_floor,
            abs_floor=abs_floor,
            binomial=binomial,
            learn_limit=learn_limit,
            max_skip=max_skip,
            direction=direction,
        )
        if window < 3 or not 1 <= min_periods <= window:
            raise ValueError("window must be >= 3 and 1 <= min_periods <= window")
        self.window = int(window)
        self.min_periods = int(min_periods)
        self.state = SeriesState()
        self.state.add("buf", fill=np.nan, width=self.window)
        self.state.add("pos", fill=0, dtype=np.int64)
        self.state.add("n", fill=0, dtype=np.int64)
        self.state.add("skipped", fill=0, dtype=np.int64)
        # (keys object, version) -> baseline; score_one and learn_one of one tick share it
        self._version = 0
        self._cache_key: tuple[object, int] | None = None
        self._cache: tuple[FloatArray, FloatArray, IntArray] | None = None

    def _baseline(self, x: SeriesTick, slots: IntArray) -> tuple[FloatArray, FloatArray, IntArray]:
        cache_key = (x.keys, self._version)
        if self._cache is not None and self._same_tick(cache_key):
            return self._cache
        s = safe_slots(slots)
        n = np.where(slots < 0, 0, self.state["n"][s])
        rows = self.state["buf"][s]
        median = _row_median(rows, n)
        mad = _row_median(np.abs(rows - median[:, None]), n)
        self._cache_key, self._cache = cache_key, (median, _MEDIAN_MAD_TO_SIGMA * mad, n)
        return self._cache

    def _same_tick(self, cache_key: tuple[object, int]) -> bool:
        cached = self._cache_key
        return cached is not None and cached[0] is cache_key[0] and cached[1] == cache_key[1]

    def score_one(self, x: SeriesTick) -> FloatArray:
        median, scale, n = self._baseline(x, self.state.lookup(x.keys))
        scores = self.orient(x.values - median, self.denominator(median, scale, x.volumes))
        return np.where(self.usable(x) & (n >= self.min_periods), scores, np.nan)

    def expected(self, x: SeriesTick) -> FloatArray:
        median, _, _ = self._baseline(x, self.state.lookup(x.keys))
        return median

    def learn_one(self, x: SeriesTick) -> None:
        slots = self.state.ensure(x.keys)
        median, scale, n = self._baseline(x, slots)
        valid = self.usable(x)
        with np.errstate(invalid="ignore"):
            denom = self.denominator(median, scale, x.volumes)
            outlying = np.abs(x.values - median) / denom > self.learn_limit
            flagged = valid & (n >= self.min_periods) & outlying
        skipped = self.state["skipped"][slots]
        skipped = np.where(flagged, skipped + 1, np.where(valid, 0, skipped))
        reseed = flagged & (skipped > self.max_skip)
        skipped = np.where(reseed, 0, skipped)
        learn = valid & (~flagged | reseed)

        buf, pos, count = self.state["buf"], self.state["pos"], self.state["n"]
        cleared = slots[reseed]
        buf[cleared] = np.nan
        pos[cleared] = 0
        count[cleared] = 0
        target = slots[learn]
        buf[target, pos[target]] = x.values[learn]
        pos[target] = (pos[target] + 1) % self.window
        count[target] = np.minimum(count[target] + 1, self.window)
        self.state["skipped"][slots] = skipped
        self._version += 1


def _row_median(rows: FloatArray, counts: IntArray) -> FloatArray:
    """Median of the first ``counts[i]`` non-NaN values of each row (NaN where counts is 0)."""
    ordered = np.sort(rows, axis=1)  # NaN sorts last, so the filled values come first
    c = np.maximum(counts, 1)
    lo = np.take_along_axis(ordered, ((c - 1) // 2)[:, None], axis=1)[:, 0]
    hi = np.take_along_axis(ordered, (c // 2)[:, None], axis=1)[:, 0]
    return np.where(counts > 0, (lo + hi) / 2.0, np.nan)
