"""Ratio metrics (error rate, fallback ratio) scored as Bernoulli log-likelihood ratios.

For a tick with ``n`` calls of which ``e`` failed, baseline failure probability ``p0`` and the
smallest shift worth a page ``p1 = max(p0 * ratio, p0 + delta)``::

    llr = e * log(p1 / p0) + (n - e) * log((1 - p1) / (1 - p0))

This is the optimal CUSUM increment for a shift from ``p0`` to ``p1`` (Page; Reynolds &
Stoumbos for the Bernoulli case). Why not a z-score: at 20 calls a tick and a 0.3 % baseline a
single error is already "3 sigma", so z-scores either page on noise or, floored, let a sustained
3 % error rate through as a string of unremarkable 1-error ticks that the baseline then learns.
The LLR weighs every tick by what it says about *the shift we care about*: a tick without
errors is evidence against it (negative), each error evidence for it, in exact proportion to
volume. Wrap it in :class:`~gatewarden.detect.change.Cusum` with ``k=0`` (the LLR already
drifts down under the baseline) and a per-tick ``cap`` (blips cannot page).

The baseline ``p0`` is a volume-weighted, exponentially forgotten ratio
``(errors + prior) / (calls + prior_calls)``, floored at ``floor``: ticks with more calls count
more, and a series that never failed still has a small, finite ``p0``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gatewarden.detect.contract import FloatArray, IntArray, SeriesState, safe_slots
from gatewarden.protocols import SeriesTick


class BinomialLLR:
    def __init__(
        self,
        *,
        ratio: float = 3.0,
        delta: float = 0.01,
        alpha: float = 0.02,
        floor: float = 0.001,
        warmup: int = 8,
        min_volume: float = 1.0,
        learn_limit: float = 8.0,
        max_skip: int = 240,
    ) -> None:
        if ratio <= 1 or delta < 0 or not 0 < alpha <= 1 or not 0 < floor < 1:
            raise ValueError("need ratio > 1, delta >= 0, alpha in (0, 1], floor in (0, 1)")
        if warmup < 1 or learn_limit <= 0 or max_skip < 1:
            raise ValueError("warmup, learn_limit and max_skip must be positive")
        self.ratio, self.delta, self.alpha, self.floor = ratio, delta, alpha, floor
        self.warmup, self.min_volume = int(warmup), float(min_volume)
        self.learn_limit, self.max_skip = float(learn_limit), int(max_skip)
        self.state = SeriesState()
        self.state.add("errors", fill=0.0)  # forgotten sums of errors and calls
        self.state.add("calls", fill=0.0)
        self.state.add("n", fill=0, dtype=np.int64)
        self.state.add("skipped", fill=0, dtype=np.int64)

    def _baseline(self, slots: IntArray) -> tuple[FloatArray, IntArray]:
        s = safe_slots(slots)
        known = slots >= 0
        errors = np.where(known, self.state["errors"][s], 0.0)
        calls = np.where(known, self.state["calls"][s], 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            p0 = np.where(calls > 0, errors / calls, np.nan)
        return np.maximum(p0, self.floor), np.where(known, self.state["n"][s], 0)

    def _llr(self, x: SeriesTick, p0: FloatArray) -> FloatArray:
        p1 = np.minimum(np.maximum(p0 * self.ratio, p0 + self.delta), 0.999)
        calls = x.volumes
        errors = np.clip(np.rint(x.values * calls), 0, calls)
        with np.errstate(invalid="ignore", divide="ignore"):
            llr: FloatArray = errors * np.log(p1 / p0) + (calls - errors) * np.log(
                (1 - p1) / (1 - p0)
            )
        return llr

    def _usable(self, x: SeriesTick) -> npt.NDArray[np.bool_]:
        return (x.volumes >= self.min_volume) & np.isfinite(x.values) & np.isfinite(x.volumes)

    def score_one(self, x: SeriesTick) -> FloatArray:
        p0, n = self._baseline(self.state.lookup(x.keys))
        llr = self._llr(x, p0)
        return np.where(self._usable(x) & (n >= self.warmup), llr, np.nan)

    def expected(self, x: SeriesTick) -> FloatArray:
        p0, n = self._baseline(self.state.lookup(x.keys))
        return np.where(n > 0, p0, np.nan)

    def learn_one(self, x: SeriesTick) -> None:
        p0, n = self._baseline(self.state.lookup(x.keys))
        llr = self._llr(x, p0)
        slots = self.state.ensure(x.keys)
        valid = self._usable(x)
        with np.errstate(invalid="ignore"):
            flagged = valid & (n >= self.warmup) & (llr > self.learn_limit)
        skipped = self.state["skipped"][slots]
        skipped = np.where(flagged, skipped + 1, np.where(valid, 0, skipped))
        reseed = flagged & (skipped > self.max_skip)
        self.state.reset(slots[reseed])
        learn = valid & (~flagged | reseed)
        target = slots[learn]
        keep = 1.0 - self.alpha
        calls = x.volumes[learn]
        errors = np.clip(np.rint(x.values[learn] * calls), 0, calls)
        self.state["errors"][target] = keep * self.state["errors"][target] + errors
        self.state["calls"][target] = keep * self.state["calls"][target] + calls
        self.state["n"][target] += 1
        self.state["skipped"][slots] = np.where(reseed, 0, skipped)
