"""Learned prices: a model's cost explained by its tokens, so only a *price* change scores.

Per series (a provider's model) the detector fits ``cost = a * input_tokens + b * output_tokens``
on per-tick totals, with exponentially forgotten normal equations (five running sums), and
scores ``log(cost / predicted)`` in units of its own learnt noise. Why not cost per request:
a workflow that starts writing three times longer answers raises the cost per request of every
model it uses, which would blame the model for the workflow's change. Tokens priced at the
learnt rates absorb any change in volume or token mix; what is left is the price itself (a
provider repricing, a wrong model alias, a discount ending). ``values`` are the tick's cost and
the ``input_tokens`` / ``output_tokens`` columns come from the same frame.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gatewarden.detect.contract import FloatArray, IntArray, SeriesState, column, safe_slots
from gatewarden.detect.robust import _MAD_TO_SIGMA
from gatewarden.protocols import SeriesTick

_SUMS = ("s_ii", "s_io", "s_oo", "s_ci", "s_co")


class PriceIndex:
    inputs: tuple[str, ...] = ("input_tokens", "output_tokens")

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        warmup: int = 10,
        min_volume: float = 1.0,
        rel_floor: float = 0.05,
        ridge: float = 1e-3,
        learn_limit: float = 4.0,
        max_skip: int = 240,
    ) -> None:
        if not 0 < alpha <= 1 or warmup < 2 or rel_floor <= 0 or ridge < 0:
            raise ValueError("invalid PriceIndex parameters")
        self.alpha, self.warmup, self.min_volume = float(alpha), int(warmup), float(min_volume)
        self.rel_floor, self.ridge = float(rel_floor), float(ridge)
        self.learn_limit, self.max_skip = float(learn_limit), int(max_skip)
        self.state = SeriesState()
        for name in _SUMS:
            self.state.add(name, fill=0.0)
        self.state.add("dev", fill=0.0)
        self.state.add("n", fill=0, dtype=np.int64)
        self.state.add("skipped", fill=0, dtype=np.int64)

    def _tokens(self, x: SeriesTick) -> tuple[FloatArray, FloatArray]:
        nan = np.full(len(x.keys), np.nan)
        tokens_in, tokens_out = column(x, "input_tokens"), column(x, "output_tokens")
        return (
            nan if tokens_in is None else tokens_in.astype(np.float64),
            nan if tokens_out is None else tokens_out.astype(np.float64),
        )

    def _predict(self, slots: IntArray, ti: FloatArray, to: FloatArray) -> FloatArray:
        s = safe_slots(slots)
        ii, io, oo, ci, co = (self.state[name][s] for name in _SUMS)
        # a small ridge keeps the 2x2 system solvable when input and output tokens move in
        # lockstep; the prediction for that same token mix stays right either way
        ii, oo = ii * (1 + self.ridge) + 1e-30, oo * (1 + self.ridge) + 1e-30
        det = ii * oo - io * io
        with np.errstate(divide="ignore", invalid="ignore"):
            a = (ci * oo - co * io) / det
            b = (co * ii - ci * io) / det
            # prices are not negative: a noisy fit that says so falls back to one price (NNLS
            # in two variables is exactly this case split)
            a, b = (
                np.where(a < 0, 0.0, np.where(b < 0, ci / ii, a)),
                np.where(b < 0, 0.0, np.where(a < 0, co / oo, b)),
            )
        predicted: FloatArray = np.where(slots >= 0, a * ti + b * to, np.nan)
        return predicted

    def _parts(self, x: SeriesTick) -> tuple[FloatArray, FloatArray, IntArray, IntArray]:
        """(predicted cost, z, learnt ticks, slots)."""
        slots = self.state.lookup(x.keys)
        ti, to = self._tokens(x)
        predicted = self._predict(slots, ti, to)
        s = safe_slots(slots)
        dev = np.where(slots >= 0, self.state["dev"][s], 0.0)
        scale = np.maximum(_MAD_TO_SIGMA * dev, self.rel_floor)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.log(x.values / predicted) / scale
        n = np.where(slots >= 0, self.state["n"][s], 0)
        return predicted, z, n, slots

    def _usable(self, x: SeriesTick) -> npt.NDArray[np.bool_]:
        ti, to = self._tokens(x)
        return (
            (x.volumes >= self.min_volume)
            & np.isfinite(x.values)
            & (x.values > 0)
            & np.isfinite(ti)
            & np.isfinite(to)
            & (ti + to > 0)
        )

    def score_one(self, x: SeriesTick) -> FloatArray:
        _, z, n, _ = self._parts(x)
        ok = self._usable(x) & (n >= self.warmup) & np.isfinite(z)
        return np.where(ok, z, np.nan)

    def expected(self, x: SeriesTick) -> FloatArray:
        predicted, _, n, _ = self._parts(x)
        return np.where(n >= 2, predicted, np.nan)

    def learn_one(self, x: SeriesTick) -> None:
        _, z, n, _ = self._parts(x)
        slots = self.state.ensure(x.keys)
        valid = self._usable(x)
        with np.errstate(invalid="ignore"):
            flagged = valid & (n >= self.warmup) & (z > self.learn_limit)
        skipped = self.state["skipped"][slots]
        skipped = np.where(flagged, skipped + 1, np.where(valid, 0, skipped))
        reseed = flagged & (skipped > self.max_skip)
        self.state.reset(slots[reseed])
        n = np.where(reseed, 0, n)
        learn = valid & (~flagged | reseed)
        target = slots[learn]
        ti, to = self._tokens(x)
        cost = x.values
        weight = np.maximum(self.alpha, 1.0 / (n + 1.0))[learn]
        # the residual is measured before this tick enters the fit (an honest forecast error)
        residual = np.abs(np.where(np.isfinite(z), z, 0.0))[learn]
        old_dev = self.state["dev"][target]
        scale = np.maximum(_MAD_TO_SIGMA * old_dev, self.rel_floor)
        new_dev = old_dev + weight * (np.minimum(residual * scale, 1.0) - old_dev)
        self.state["dev"][target] = np.where(n[learn] >= 2, new_dev, old_dev)
        products = (ti * ti, ti * to, to * to, cost * ti, cost * to)
        for name, product in zip(_SUMS, products, strict=True):
            old = self.state[name][target]
            self.state[name][target] = old + weight * (product[learn] - old)
        self.state["n"][target] = n[learn] + 1
        self.state["skipped"][slots] = np.where(reseed, 0, skipped)
