"""Streaming per-series features that a detector can watch instead of the raw value.

A feature turns each series' stream of values into another stream (a smoothed level, a
volatility, a deviation from the same phase one period ago). Like detectors, features are
vectorised across series and split reading from learning:

* ``value(x)`` is the feature at this tick *including* the tick's own value, and changes no
  state, so ``score_one`` can call it freely;
* ``learn(x)`` folds the tick in. NaN = no feature yet (warm-up, unknown series, bad value);
  series absent from the tick keep their state.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from gatewarden.detect.contract import FloatArray, IntArray, SeriesState, safe_slots
from gatewarden.protocols import SeriesTick


@runtime_checkable
class StreamFeature(Protocol):
    def value(self, x: SeriesTick) -> FloatArray: ...

    def learn(self, x: SeriesTick) -> None: ...


def watched(feature: StreamFeature | None, x: SeriesTick) -> FloatArray:
    """What a feature-watching detector judges: the feature's value, or the raw value."""
    return x.values if feature is None else feature.value(x)


def learn_watched(
    feature: StreamFeature | None, x: SeriesTick, state: SeriesState
) -> tuple[IntArray, FloatArray]:
    """Fold ``x`` into ``feature`` (its value read first: this tick's, before learning it) and
    give the slots (assigned in ``state``) and watched values of the series with a finite
    one: the start of every feature-watching detector's ``learn_one``."""
    v = watched(feature, x)
    if feature is not None:
        feature.learn(x)
    slots = state.ensure(x.keys)
    ok = np.isfinite(v)
    return slots[ok], v[ok]


def _gather(state: SeriesState, name: str, slots: IntArray, fill: float) -> FloatArray:
    out: FloatArray = np.where(slots >= 0, state[name][safe_slots(slots)], fill)
    return out


def _ewma(prev: FloatArray, value: FloatArray, alpha: float) -> FloatArray:
    """One EWMA step; a series without history starts at the value itself."""
    out: FloatArray = np.where(np.isnan(prev), value, prev + alpha * (value - prev))
    return out


class EWMean:
    """Exponentially weighted level: a slow mean shows a sustained shift that single points,
    buried in noise, do not."""

    def __init__(self, alpha: float = 0.03) -> None:
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        self.alpha = float(alpha)
        self.state = SeriesState()
        self.state.add("mean", fill=np.nan)

    def value(self, x: SeriesTick) -> FloatArray:
        prev = _gather(self.state, "mean", self.state.lookup(x.keys), np.nan)
        out: FloatArray = np.where(np.isfinite(x.values), _ewma(prev, x.values, self.alpha), np.nan)
        return out

    def learn(self, x: SeriesTick) -> None:
        new = self.value(x)
        slots = self.state.ensure(x.keys)
        ok = np.isfinite(new)
        self.state["mean"][slots[ok]] = new[ok]


class EWVolatility:
    """Exponentially weighted mean of the absolute step ``|x_t - x_(t-1)|``: how jumpy a series
    is, which rises when it starts oscillating or spiking and falls when it goes flat."""

    def __init__(self, alpha: float = 0.03) -> None:
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        self.alpha = float(alpha)
        self.state = SeriesState()
        self.state.add("last", fill=np.nan)
        self.state.add("vol", fill=np.nan)

    def value(self, x: SeriesTick) -> FloatArray:
        slots = self.state.lookup(x.keys)
        step = np.abs(x.values - _gather(self.state, "last", slots, np.nan))
        prev = _gather(self.state, "vol", slots, np.nan)
        out: FloatArray = np.where(np.isfinite(step), _ewma(prev, step, self.alpha), np.nan)
        return out

    def learn(self, x: SeriesTick) -> None:
        new = self.value(x)
        slots = self.state.ensure(x.keys)
        ok = np.isfinite(new)
        self.state["vol"][slots[ok]] = new[ok]
        finite = np.isfinite(x.values)
        self.state["last"][slots[finite]] = x.values[finite]


class SeasonalDiff:
    """Smoothed deviation from the same phase one period ago: ``ewma(x_t - x_(t-P))``.

    ``P`` is found per series from its own first ``warmup`` values: the first autocorrelation
    peak above ``min_acf`` among lags 2..``max_lag``. A series without such a peak has no
    seasonal feature (NaN), so only clearly periodic series (a daily cycle) use it. A missing
    daily peak or a flattened cycle stays inside the value range, but not inside this one.

    State is ``warmup + max_lag + 1`` values per series: meant for a handful of univariate
    series, not for 100k gateway series.
    """

    def __init__(
        self,
        *,
        warmup: int = 600,
        max_lag: int = 300,
        min_acf: float = 0.5,
        alpha: float = 0.1,
    ) -> None:
        if not 4 <= max_lag < warmup:
            raise ValueError("need 4 <= max_lag < warmup")
        if not 0 < alpha <= 1 or not 0 < min_acf < 1:
            raise ValueError("alpha must be in (0, 1] and min_acf in (0, 1)")
        self.warmup, self.max_lag = int(warmup), int(max_lag)
        self.min_acf, self.alpha = float(min_acf), float(alpha)
        self._ring = self.max_lag + 1  # enough history to look one period back
        self.state = SeriesState(initial_capacity=64)
        self.state.add("n", fill=0, dtype=np.int64)
        self.state.add("period", fill=0, dtype=np.int64)
        self.state.add("mean", fill=np.nan)
        self.state.add("first", fill=np.nan, width=self.warmup)
        self.state.add("recent", fill=np.nan, width=self._ring)

    def value(self, x: SeriesTick) -> FloatArray:
        slots = self.state.lookup(x.keys)
        s = safe_slots(slots)
        n = np.where(slots >= 0, self.state["n"][s], 0)
        period = np.where(slots >= 0, self.state["period"][s], 0)
        back = self.state["recent"][s, (n - period) % self._ring]
        diff = np.where((period > 0) & (n >= self.warmup), x.values - back, np.nan)
        prev = _gather(self.state, "mean", slots, np.nan)
        out: FloatArray = np.where(np.isfinite(diff), _ewma(prev, diff, self.alpha), np.nan)
        return out

    def learn(self, x: SeriesTick) -> None:
        new = self.value(x)
        slots = self.state.ensure(x.keys)
        ok = np.isfinite(new)
        self.state["mean"][slots[ok]] = new[ok]
        # a non-finite value would poison the ring and the ACF: keep the series' last value
        finite = np.isfinite(x.values)
        slots, values = slots[finite], x.values[finite]
        n = self.state["n"][slots]
        self.state["recent"][slots, n % self._ring] = values
        early = n < self.warmup
        self.state["first"][slots[early], n[early]] = values[early]
        self.state["n"][slots] = n + 1
        for slot in slots[n + 1 == self.warmup]:
            self.state["period"][slot] = first_acf_peak(
                self.state["first"][slot], self.max_lag, self.min_acf
            )


def first_acf_peak(values: FloatArray, max_lag: int, min_acf: float) -> int:
    """The strongest local autocorrelation maximum above ``min_acf`` (0 = not periodic)."""
    centred = values - values.mean()
    energy = float(centred @ centred)
    if energy <= 0.0:
        return 0
    acf = np.array([centred[:-lag] @ centred[lag:] for lag in range(1, max_lag + 1)]) / energy
    # acf[i] is lag i + 1; a peak at lag L needs acf(L) >= both neighbours
    lags = np.arange(2, max_lag - 1)
    mid = acf[lags - 1]
    peaks = (mid > min_acf) & (mid >= acf[lags - 2]) & (mid >= acf[lags])
    if not peaks.any():
        return 0
    return int(lags[peaks][np.argmax(mid[peaks])])
