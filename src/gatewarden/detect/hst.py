"""river's HalfSpaceTrees behind the vectorised detector contract, for multivariate cases.

Several metrics of one series together (a provider's error rate, TTFT p95 and fallback ratio)
can be jointly unusual while each looks fine alone. HalfSpaceTrees scores that, but it is one
Python object per series updated point by point, so this adapter is for small cardinalities
(providers, model groups): beyond ``max_series`` new series are not modelled (NaN) and a warning
is logged once. The trees split a fixed [0, 1] box, so each feature is standardised per series
(river's running ``StandardScaler``) and squashed with a logistic: a value far outside what
the series has seen lands near 0 or 1 instead of being clipped into the edge of a learnt min-max
range (where it would share a leaf with the largest normal values and look ordinary). The score
is river's (0..1, higher = more anomalous); NaN until a series has seen ``window_size`` points,
because the trees' reference mass is only complete from then on.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from gatewarden.detect.contract import FloatArray, SeriesState, column, safe_slots
from gatewarden.protocols import SeriesTick

log = logging.getLogger(__name__)

#: z-score scale of the logistic squash: z = +-3 maps to 0.27 / 0.73, z = +-10 to 0.03 / 0.97
_SQUASH = 3.0


class _Model:
    """One series: a running standardiser feeding the trees."""

    def __init__(self, trees: Any, scaler: Any) -> None:
        self.trees, self.scaler = trees, scaler

    def _squashed(self, row: dict[str, float]) -> dict[str, float]:
        z = self.scaler.transform_one(row)
        return {
            k: 1.0 / (1.0 + math.exp(-max(min(v / _SQUASH, 50.0), -50.0))) for k, v in z.items()
        }

    def score_one(self, row: dict[str, float]) -> float:
        return float(self.trees.score_one(self._squashed(row)))

    def learn_one(self, row: dict[str, float]) -> None:
        self.scaler.learn_one(row)
        self.trees.learn_one(self._squashed(row))


class HalfSpaceTreesAdapter:
    def __init__(
        self,
        *,
        features: tuple[str, ...],
        n_trees: int = 10,
        height: int = 6,
        window_size: int = 100,
        min_volume: float = 1.0,
        max_series: int = 500,
        seed: int = 42,
    ) -> None:
        if not features or n_trees < 1 or height < 1 or window_size < 2 or max_series < 1:
            raise ValueError("invalid HalfSpaceTrees parameters")
        self.features = tuple(features)
        self.inputs: tuple[str, ...] = self.features
        self.n_trees, self.height, self.window_size = n_trees, height, window_size
        self.min_volume, self.max_series, self.seed = float(min_volume), max_series, seed
        self.state = SeriesState(initial_capacity=16)
        self.state.add("n", fill=0, dtype=np.int64)
        self._models: list[_Model] = []
        self._warned = False

    def _rows(self, x: SeriesTick) -> list[dict[str, float] | None]:
        columns = [column(x, name) for name in self.features]
        if any(c is None for c in columns):
            return [None] * len(x.keys)
        matrix = np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])
        usable = (x.volumes >= self.min_volume) & np.isfinite(matrix).all(axis=1)
        rows = matrix.tolist()
        return [
            dict(zip(self.features, row, strict=True)) if ok else None
            for row, ok in zip(rows, usable.tolist(), strict=True)
        ]

    def _model(self) -> _Model:
        # river takes seconds to import: only pay for it when a spec actually uses it
        from river import anomaly, preprocessing

        trees = anomaly.HalfSpaceTrees(
            n_trees=self.n_trees,
            height=self.height,
            window_size=self.window_size,
            limits=dict.fromkeys(self.features, (0.0, 1.0)),
            seed=self.seed,
        )
        return _Model(trees, preprocessing.StandardScaler())

    def score_one(self, x: SeriesTick) -> FloatArray:
        slots = self.state.lookup(x.keys)
        n = np.where(slots >= 0, self.state["n"][safe_slots(slots)], 0)
        scores = np.full(len(x.keys), np.nan)
        for i, row in enumerate(self._rows(x)):
            if row is not None and slots[i] >= 0 and n[i] >= self.window_size:
                scores[i] = self._models[int(slots[i])].score_one(row)
        return scores

    def learn_one(self, x: SeriesTick) -> None:
        rows = self._rows(x)
        wanted = [key for key, row in zip(x.keys, rows, strict=True) if row is not None]
        room = self.max_series - len(self.state)
        new = [key for key in dict.fromkeys(wanted) if key not in self.state.index]
        if len(new) > room:
            if not self._warned:
                log.warning(
                    "HalfSpaceTrees: more than %d series, the rest are not modelled",
                    self.max_series,
                )
                self._warned = True
            new = new[: max(room, 0)]
        if new:
            self.state.ensure(new)
            self._models.extend(self._model() for _ in new)
        slots = self.state.lookup(x.keys)
        for i, row in enumerate(rows):
            if row is not None and slots[i] >= 0:
                self._models[int(slots[i])].learn_one(row)
                self.state["n"][slots[i]] += 1
