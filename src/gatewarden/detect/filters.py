"""Filters: scores -> firing mask. Thresholds live here so detectors only score."""

from __future__ import annotations

import math

import numpy as np

from gatewarden.detect.contract import SeriesState
from gatewarden.protocols import BoolArray, Filter, FloatArray, SeriesTick


class Threshold:
    """Fires where ``score >= threshold`` and ``min_value <= value <= max_value`` and
    ``volume >= min_volume``. NaN scores or values never fire.

    ``min_value`` is the "does it matter" gate: a jump from 0.1 % to 0.8 % errors is a large
    z-score but not worth a page.
    """

    def __init__(
        self,
        threshold: float,
        *,
        min_value: float = -math.inf,
        max_value: float = math.inf,
        min_volume: float = 0.0,
    ) -> None:
        self.threshold = float(threshold)
        self.min_value = float(min_value)
        self.max_value = float(max_value)
        self.min_volume = float(min_volume)

    def fires(self, scores: FloatArray, x: SeriesTick) -> BoolArray:
        # comparisons with NaN are False, which is exactly "cannot judge -> do not fire"
        return (
            (scores >= self.threshold)
            & (x.values >= self.min_value)
            & (x.values <= self.max_value)
            & (x.volumes >= self.min_volume)
        )


class NOfM:
    """Fires while at least ``n`` of a series' last ``m`` evaluated ticks passed ``inner``.

    Each call to :meth:`fires` is one tick: call it exactly once per tick. A series that is
    absent from a tick keeps its window (absence is not evidence of health); a series present
    with a NaN score counts as a tick that did not pass. Because the window is counted, a series
    keeps firing until fewer than ``n`` of the last ``m`` ticks passed: that is hysteresis.
    """

    def __init__(self, inner: Filter, *, n: int, m: int) -> None:
        if not 1 <= n <= m <= 64:
            raise ValueError(f"need 1 <= n <= m <= 64, got n={n} m={m}")
        self.inner = inner
        self.n = n
        self.m = m
        # bit i of a series' word = passed i ticks ago; 64 bits bound m
        self._mask = np.uint64((1 << m) - 1)
        self.state = SeriesState()
        self.state.add("bits", fill=0, dtype=np.uint64)

    def fires(self, scores: FloatArray, x: SeriesTick) -> BoolArray:
        passed = self.inner.fires(scores, x)
        slots = self.state.ensure(x.keys)
        bits = self.state["bits"]
        words = ((bits[slots] << np.uint64(1)) | passed.astype(np.uint64)) & self._mask
        bits[slots] = words
        fired: BoolArray = np.bitwise_count(words) >= self.n
        return fired
