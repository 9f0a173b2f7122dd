"""Peer comparison: a series against the other series of its group, not against its own past.

Sessions live for minutes, so "this session's baseline" does not exist; what is abnormal is a
session whose cumulative calls (or spend) are far beyond its workflow's sessions. Each tick the
detector takes, per group, the median and MAD of ``log(value)`` over the group's series present
in the tick, folds them into a per-group EWMA (state per *group*, so unbounded session churn
costs nothing), and scores ``(log(value) - centre) / max(scale, min_scale)``. Cumulative totals
of a long but ordinary session grow slowly in log space: 120 calls against a median of 8 is
``log(15) / 0.7 ~ 3.9``; a loop making 500 calls is past 6.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from gatewarden.detect.contract import FloatArray, SeriesState, column, safe_slots
from gatewarden.detect.robust import _MEDIAN_MAD_TO_SIGMA as _TO_SIGMA
from gatewarden.protocols import SeriesTick


class PeerGroup:
    def __init__(
        self,
        *,
        group_by: str = "workflow",
        alpha: float = 0.05,
        warmup: int = 10,
        min_peers: int = 3,
        min_scale: float = 0.5,
        min_volume: float = 0.0,
    ) -> None:
        if not 0 < alpha <= 1 or warmup < 1 or min_peers < 1 or min_scale <= 0:
            raise ValueError("invalid PeerGroup parameters")
        self.group_by = group_by
        self.inputs: tuple[str, ...] = (group_by,)
        self.alpha, self.warmup, self.min_peers = float(alpha), int(warmup), int(min_peers)
        self.min_scale, self.min_volume = float(min_scale), float(min_volume)
        # keyed by group, not by series: the per-series index never grows
        self.state = SeriesState(initial_capacity=16)
        self.state.add("centre", fill=np.nan)
        self.state.add("scale", fill=np.nan)
        self.state.add("n", fill=0, dtype=np.int64)

    def _groups(self, x: SeriesTick) -> npt.NDArray[np.object_]:
        labels = column(x, self.group_by)
        if labels is None:
            return np.full(len(x.keys), "", dtype=object)
        groups = np.asarray(labels, dtype=object)
        return np.where(pd.isna(groups), "", groups)

    def _logged(self, x: SeriesTick) -> FloatArray:
        ok = (x.volumes >= self.min_volume) & np.isfinite(x.values) & (x.values > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            logged: FloatArray = np.where(ok, np.log(np.where(ok, x.values, 1.0)), np.nan)
        return logged

    def score_one(self, x: SeriesTick) -> FloatArray:
        groups = self._groups(x)
        slots = self.state.lookup(groups.tolist())
        s = safe_slots(slots)
        known = slots >= 0
        centre = np.where(known, self.state["centre"][s], np.nan)
        scale = np.maximum(np.where(known, self.state["scale"][s], np.nan), self.min_scale)
        warm = known & (np.where(known, self.state["n"][s], 0) >= self.warmup)
        scores: FloatArray = (self._logged(x) - centre) / scale
        return np.where(warm & (groups != ""), scores, np.nan)

    def expected(self, x: SeriesTick) -> FloatArray:
        slots = self.state.lookup(self._groups(x).tolist())
        centre = np.where(slots >= 0, self.state["centre"][safe_slots(slots)], np.nan)
        expected: FloatArray = np.exp(centre)
        return expected

    def learn_one(self, x: SeriesTick) -> None:
        groups = self._groups(x)
        logged = self._logged(x)
        ok = (groups != "") & np.isfinite(logged)
        if not ok.any():
            return
        codes, names = pd.factorize(groups[ok])
        values = logged[ok]
        counts = np.bincount(codes, minlength=len(names))
        median = _group_median(codes, values, len(names))
        mad = _group_median(codes, np.abs(values - median[codes]), len(names))
        enough = counts >= self.min_peers
        if not enough.any():
            return
        keys: list[str] = [str(name) for name in np.asarray(names, dtype=object)[enough].tolist()]
        slots = self.state.ensure(keys)
        n = self.state["n"][slots]
        weight = np.maximum(self.alpha, 1.0 / (n + 1.0))
        for name, fresh in (("centre", median[enough]), ("scale", mad[enough] * _TO_SIGMA)):
            old = self.state[name][slots]
            self.state[name][slots] = np.where(n == 0, fresh, old + weight * (fresh - old))
        self.state["n"][slots] = n + 1


def _group_median(codes: npt.NDArray[np.intp], values: FloatArray, groups: int) -> FloatArray:
    """Median of ``values`` per group code (every group has at least one value)."""
    order = np.lexsort((values, codes))
    ordered = values[order]
    counts = np.bincount(codes, minlength=groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    lo = ordered[starts + (counts - 1) // 2]
    hi = ordered[starts + counts // 2]
    median: FloatArray = (lo + hi) / 2.0
    return median
