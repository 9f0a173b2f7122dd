"""Record rank: is a series (or a feature of it) beyond everything it did over a long window?

:class:`~gatewarden.detect.novelty.RangeNovelty` measures a break of the range in units of that
range, so a tiny break scores little and one wild value long ago hides every later excursion.
This detector asks a rank question instead: among ``size`` values remembered from the last
``size * stride`` ticks (one every ``stride``), how many are at least as extreme as this one?
Under exchangeability the two-sided tail probability is ``p = (min(#<=v, #>=v) + 1) / (n + 1)``,
and a value beyond every remembered one is divided further by ``1 + overshoot`` (overshoot in
units of the remembered span), so a bigger break still ranks higher.

The score is ``max(0, -log10(p * (record_after + 1)))``: a record counts once it breaks more
than ``record_after`` remembered values (among fewer, only if it lands far beyond them), and it
counts more the longer the history it breaks. So a young series hardly ever scores, and the
score grows as the window fills: breaking the record of a week means more than that of a day.
Watching a slow level this sees a plateau lower or higher than any in the window although
every single value is ordinary (a machine cooling down before a failure, a holiday's traffic);
watching a seasonal difference it sees a daily cycle shaped unlike any in the window.

State: ``size`` remembered values per series, so this is for a handful of univariate series,
not 100k gateway series. Every value is learnt, flagged ones included (a new record, once seen,
is part of the window).
"""

from __future__ import annotations

import numpy as np

from gatewarden.detect.contract import FloatArray, SeriesState, safe_slots
from gatewarden.detect.stream_features import StreamFeature, learn_watched, watched
from gatewarden.protocols import SeriesTick


class RecordRank:
    """Evidence that ``feature`` (or the raw value) breaks the record of a long, sampled window."""

    def __init__(
        self,
        feature: StreamFeature | None = None,
        *,
        size: int = 512,
        stride: int = 16,
        min_fill: int = 32,
        record_after: int = 256,
        min_volume: float = 0.0,
    ) -> None:
        if not 1 <= min_fill <= size or stride < 1:
            raise ValueError("need 1 <= min_fill <= size and stride >= 1")
        if not 0 <= record_after < size:
            raise ValueError("need 0 <= record_after < size: a larger bar could never be met")
        self.feature = feature
        self.size, self.stride, self.min_fill = int(size), int(stride), int(min_fill)
        self.bar = float(np.log10(record_after + 1))
        self.min_volume = float(min_volume)
        self.state = SeriesState(initial_capacity=64)
        self.state.add("ring", fill=np.nan, width=self.size)
        self.state.add("n", fill=0, dtype=np.int64)  # finite feature values learnt

    def _watched(self, x: SeriesTick) -> FloatArray:
        return watched(self.feature, x)

    def score_one(self, x: SeriesTick) -> FloatArray:
        v = self._watched(x)
        slots = self.state.lookup(x.keys)
        known = slots >= 0
        ring = self.state["ring"][safe_slots(slots)]
        filled = ~np.isnan(ring)
        count = np.where(known, filled.sum(axis=1), 0)
        with np.errstate(invalid="ignore"):  # NaN slots and NaN values compare False
            below = (ring <= v[:, None]).sum(axis=1)
            above = (ring >= v[:, None]).sum(axis=1)
        low = np.where(filled, ring, np.inf).min(axis=1)
        high = np.where(filled, ring, -np.inf).max(axis=1)
        span = high - low
        with np.errstate(invalid="ignore", divide="ignore"):
            over = np.maximum(v - high, low - v) / np.where(span > 0, span, np.inf)
        over = np.where(np.isfinite(over), np.maximum(over, 0.0), 0.0)
        # -log10 of the tail probability, a record's shrunk by how far beyond the window it is
        surprise = np.log10((count + 1) * (1.0 + over)) - np.log10(np.minimum(below, above) + 1)
        scores = np.maximum(surprise - self.bar, 0.0)
        judged = known & (count >= self.min_fill) & np.isfinite(v) & (x.volumes >= self.min_volume)
        out: FloatArray = np.where(judged, scores, np.nan)
        return out

    def learn_one(self, x: SeriesTick) -> None:
        rows, v = learn_watched(self.feature, x, self.state)
        n = self.state["n"][rows]
        # every stride-th value overwrites the oldest remembered one
        keep = n % self.stride == 0
        self.state["ring"][rows[keep], (n[keep] // self.stride) % self.size] = v[keep]
        self.state["n"][rows] = n + 1
