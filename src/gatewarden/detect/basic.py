"""Small building blocks: a static threshold "detector" and a log transform.

``Static`` scores the value itself (thresholds stay in the :class:`~gatewarden.detect.Threshold`
filter, like every other detector's), for metrics whose meaning is absolute: "a session repeated
the same prompt 4 times" needs no baseline. ``Log`` wraps a detector to work in log space, where
multiplicative changes (TTFT x1.8, cost x2) are additive and heavy-tailed metrics look normal.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import numpy as np

from gatewarden.detect.contract import Baseline, FloatArray, SeriesState
from gatewarden.protocols import Detector, SeriesTick

Direction = Literal["up", "down", "both"]


class Static:
    """Score = the value (negated for ``direction="down"``, absolute for ``"both"``); NaN when
    the volume is below ``min_volume`` or the value is not finite. Keeps no per-series state."""

    def __init__(self, *, direction: Direction = "up", min_volume: float = 0.0) -> None:
        if direction not in ("up", "down", "both"):
            raise ValueError(f"direction must be up, down or both, got {direction!r}")
        self.direction: Direction = direction
        self.min_volume = float(min_volume)
        self.state = SeriesState(initial_capacity=1)  # stateless: stays empty

    def score_one(self, x: SeriesTick) -> FloatArray:
        values = x.values
        if self.direction == "down":
            values = -values
        elif self.direction == "both":
            values = np.abs(values)
        ok = (x.volumes >= self.min_volume) & np.isfinite(values)
        scores: FloatArray = np.where(ok, values, np.nan)
        return scores

    def learn_one(self, x: SeriesTick) -> None:
        return None


class Log:
    """Runs ``inner`` on ``log(max(value, floor))``; ``expected`` is mapped back."""

    def __init__(self, inner: Detector, *, floor: float = 1e-9) -> None:
        if floor <= 0:
            raise ValueError("floor must be > 0")
        self.inner = inner
        self.floor = float(floor)
        self.inputs: tuple[str, ...] = tuple(getattr(inner, "inputs", ()))

    @property
    def state(self) -> SeriesState:
        state = getattr(self.inner, "state", None)
        if not isinstance(state, SeriesState):
            raise AttributeError("inner detector keeps no SeriesState")
        return state

    def _logged(self, x: SeriesTick) -> SeriesTick:
        with np.errstate(invalid="ignore"):
            values = np.log(np.maximum(x.values, self.floor))
        return replace(x, values=np.where(np.isfinite(x.values), values, np.nan))

    def score_one(self, x: SeriesTick) -> FloatArray:
        return self.inner.score_one(self._logged(x))

    def learn_one(self, x: SeriesTick) -> None:
        self.inner.learn_one(self._logged(x))

    def expected(self, x: SeriesTick) -> FloatArray:
        if not isinstance(self.inner, Baseline):
            return np.full(len(x.keys), np.nan)
        expected: FloatArray = np.exp(self.inner.expected(self._logged(x)))
        return expected
