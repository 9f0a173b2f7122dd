"""The default univariate stack: several detectors' evidence folded into one score in [0, 1].

Each component's score ``s`` (a range overshoot, a z-score, ...) is squashed by its own scale
``c`` to ``1 - exp(-s / c)``, so components on different scales become comparable evidence in
[0, 1]; the stack takes the strongest. An :class:`EventMask` then reports an event once: a score
only passes while it beats the recent maximum (decaying with ``half_life`` ticks), so the long
tail of one incident does not page again and again, while a clearly stronger one still does.

:func:`default_univariate_stack` is the one configuration used for every univariate stream
(``benchmarks/nab.py`` runs it on all 58 NAB series).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gatewarden.detect.contract import FloatArray, SeriesState, safe_slots
from gatewarden.detect.novelty import NearestBlocks, RangeNovelty
from gatewarden.detect.stream_features import EWMean, EWVolatility, SeasonalDiff
from gatewarden.protocols import Detector, SeriesTick


class EventMask:
    """Passes a score only when it beats the series' decayed recent maximum (else 0).

    The level decays by half every ``half_life`` ticks in which the series is present and is
    raised to every score seen, reported or not. Call :meth:`mask` (pure) to filter a tick and
    :meth:`learn` once per tick with the same scores.
    """

    def __init__(self, half_life: float = 400.0) -> None:
        if half_life <= 0:
            raise ValueError("half_life must be > 0")
        self.decay = 0.5 ** (1.0 / float(half_life))
        self.state = SeriesState()
        self.state.add("level", fill=0.0)

    def _level(self, x: SeriesTick) -> FloatArray:
        slots = self.state.lookup(x.keys)
        level: FloatArray = np.where(slots >= 0, self.state["level"][safe_slots(slots)], 0.0)
        decayed: FloatArray = level * self.decay
        return decayed

    def mask(self, scores: FloatArray, x: SeriesTick) -> FloatArray:
        with np.errstate(invalid="ignore"):
            out: FloatArray = np.where(scores > self._level(x), scores, 0.0)
        return np.where(np.isnan(scores), np.nan, out)

    def learn(self, scores: FloatArray, x: SeriesTick) -> None:
        level = np.fmax(self._level(x), scores)  # fmax: a NaN score leaves the level decaying
        self.state["level"][self.state.ensure(x.keys)] = level


class UnivariateStack:
    """Max of squashed component scores, event-masked; NaN only when no component can judge."""

    def __init__(self, components: Sequence[tuple[Detector, float]], *, half_life: float) -> None:
        if not components:
            raise ValueError("a stack needs at least one component")
        if any(scale <= 0 for _, scale in components):
            raise ValueError("every component scale must be > 0")
        self.components = list(components)
        self.mask = EventMask(half_life)
        # score_one and learn_one of one tick see the same SeriesTick: combine once
        self._cached: tuple[SeriesTick, FloatArray] | None = None

    def _combined(self, x: SeriesTick) -> FloatArray:
        if self._cached is not None and self._cached[0] is x:
            return self._cached[1]
        evidence = np.full(len(x.keys), np.nan)
        for detector, scale in self.components:
            squashed = -np.expm1(-detector.score_one(x) / scale)
            evidence = np.fmax(evidence, squashed)  # fmax ignores a component's NaN
        self._cached = (x, evidence)
        return evidence

    def score_one(self, x: SeriesTick) -> FloatArray:
        return self.mask.mask(self._combined(x), x)

    def learn_one(self, x: SeriesTick) -> None:
        self.mask.learn(self._combined(x), x)
        self._cached = None
        for detector, _ in self.components:
            detector.learn_one(x)


def default_univariate_stack() -> UnivariateStack:
    """Range novelty of the value (over its last 8000 points), of its slow level, of its
    volatility and of its deviation from one period ago, plus the novelty of its recent
    trajectory of block means; masked per event.

    The scales weigh the components against each other: a 2 % break of the value's range is as
    strong as a 5 % break of the level's or volatility's, a 50 % break of the seasonal
    difference's (which moves far more from cycle to cycle) or a trajectory 20 % of the range
    away from any seen before.
    """
    return UnivariateStack(
        [
            (RangeNovelty(window=8000), 0.02),
            (RangeNovelty(EWMean(alpha=0.03)), 0.05),
            (RangeNovelty(EWVolatility(alpha=0.03)), 0.05),
            (RangeNovelty(SeasonalDiff(warmup=600, max_lag=300, alpha=0.1)), 0.5),
            (NearestBlocks(block=24, dims=2), 0.2),
        ],
        half_life=400.0,
    )
