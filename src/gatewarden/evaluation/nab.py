"""The NAB scoring rules (Numenta Anomaly Benchmark v1.1), implemented from their documentation.

A detector reports one anomaly score per row; a row *detects* when its score reaches the
threshold. Each row carries a weight, fixed by the labels alone:

* inside a labelled window ``[L, R]`` (width ``w``) the row at ``i`` earns
  ``tp * s(-(R - i + 1) / w) / s(-1)``: the window start earns the full ``tp``, the window end
  almost nothing, so earlier detection is better. Only the best (= first) detection in a window
  counts; a window without one costs ``-fn``.
* after a window the row earns ``fp * s((i - R) / (w - 1))``, which is ~0 just after the window
  (a late detection of the same event) and falls to ``-fp`` three window-widths later; before
  the first window every detection costs the full ``-fp``.
* the first 15 % of each file (at most 750 rows) is the probationary period: it is never scored,
  and a window's probationary rows belong to no window.

``s(x) = 2 * sigmoid(-5x) - 1`` for ``x < 3``, else ``-1``. The threshold is optimised once per
profile over the whole corpus (every distinct score is a candidate), and the corpus total is
normalised so that the null detector (which never fires at its best threshold) scores 0 and a
detector earning the full ``tp`` for every labelled window scores 100.

Everything is vectorised: one sort of all scored rows of the corpus gives the total at every
candidate threshold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from gatewarden.evaluation.nab_corpus import CostMatrix, FloatArray, NABCorpus, NABDataError

IntArray = npt.NDArray[np.int64]

PROBATION_PERCENT = 0.15
#: the probationary period never exceeds this share of 5000 rows (750 rows at 15 %)
PROBATION_CAP_ROWS = 5000
#: window label of a scored row outside every window, and of a probationary row
OUTSIDE = -1
PROBATION = -2


def probation_length(n_rows: int, percent: float = PROBATION_PERCENT) -> int:
    """Rows at the start of a file that are learnt from but never scored."""
    return int(min(math.floor(percent * n_rows), percent * PROBATION_CAP_ROWS))


def scaled_sigmoid(position: FloatArray) -> FloatArray:
    """NAB's reward curve: ~+1 at relative position -1 (a window start), 0 at the window end,
    ~-1 from three widths past it (where it is clamped to exactly -1)."""
    with np.errstate(over="ignore"):  # exp overflow -> inf -> a clean -1.0
        curve = 2.0 / (1.0 + np.exp(5.0 * position)) - 1.0
    out: FloatArray = np.where(position >= 3.0, -1.0, curve)
    return out


_MAX_TP = float(scaled_sigmoid(np.array([-1.0]))[0])


@dataclass(frozen=True)
class RowWeights:
    """What a detection at each row of one file would earn, and which window it falls in."""

    value: FloatArray
    #: window ordinal within the file (0, 1, ...), ``OUTSIDE`` or ``PROBATION``
    window: IntArray


def row_weights(
    n_rows: int,
    windows: Sequence[tuple[int, int]],
    cost: CostMatrix,
    probation_percent: float = PROBATION_PERCENT,
) -> RowWeights:
    value = np.full(n_rows, -cost.fp, dtype=np.float64)  # before the first window: a full FP
    label = np.full(n_rows, OUTSIDE, dtype=np.int64)
    ordered = sorted(windows)
    for k, (lo, hi) in enumerate(ordered):
        width = hi - lo + 1
        rows = np.arange(lo, hi + 1, dtype=np.float64)
        # rescaled so that detecting at the window start earns exactly tp
        value[lo : hi + 1] = cost.tp * scaled_sigmoid(-(hi - rows + 1.0) / width) / _MAX_TP
        label[lo : hi + 1] = k
        stop = ordered[k + 1][0] if k + 1 < len(ordered) else n_rows
        if stop > hi + 1:
            after = np.arange(hi + 1, stop, dtype=np.float64)
            # a one-row window would divide by zero; NAB's labels have none, clamp to be safe
            value[hi + 1 : stop] = cost.fp * scaled_sigmoid((after - hi) / max(width - 1, 1))
    label[: probation_length(n_rows, probation_percent)] = PROBATION
    return RowWeights(value=value, window=label)


@dataclass(frozen=True)
class Sweep:
    """The corpus total at every candidate threshold, highest threshold first.

    ``thresholds[0]`` is ``+inf`` (detect nothing); ``thresholds[k]`` for ``k > 0`` is a distinct
    score, and row ``k`` counts every scored row whose score is ``>= thresholds[k]``.
    """

    thresholds: FloatArray
    totals: FloatArray
    tp: IntArray
    fp: IntArray
    fn: IntArray

    def best(self) -> int:
        """Index of the best threshold; ties go to the highest threshold."""
        return int(np.argmax(self.totals))


def sweep(scores: Sequence[FloatArray], weights: Sequence[RowWeights], cost: CostMatrix) -> Sweep:
    """Totals at every threshold over several files at once (NaN scores never detect)."""
    if len(scores) != len(weights):
        raise ValueError("one score array per file is needed")
    parts_s, parts_v, parts_w = [], [], []
    offset = 0
    for s, rw in zip(scores, weights, strict=True):
        if s.shape != rw.value.shape:
            raise NABDataError(f"{s.shape[0]} scores for a file of {rw.value.shape[0]} rows")
        keep = rw.window != PROBATION
        parts_s.append(np.nan_to_num(s[keep], nan=-np.inf))
        parts_v.append(rw.value[keep])
        # window ids made unique across files; OUTSIDE stays negative
        parts_w.append(np.where(rw.window[keep] >= 0, rw.window[keep] + offset, OUTSIDE))
        offset += int(rw.window.max(initial=-1)) + 1
    all_s = np.concatenate(parts_s) if parts_s else np.empty(0)
    order = np.argsort(-all_s, kind="stable")
    s = all_s[order]
    v = np.concatenate(parts_v)[order] if parts_v else np.empty(0)
    w = np.concatenate(parts_w)[order] if parts_w else np.empty(0, np.int64)

    inside = w >= 0
    n_windows = int(np.unique(w[inside]).size)
    delta = np.where(inside, 0.0, v)  # each detection outside a window adds its (negative) value
    first = np.zeros(s.shape[0], dtype=bool)
    if inside.any():
        # a window's contribution is -fn until detected, then its best detection so far
        frame = pd.DataFrame({"w": w[inside], "v": v[inside]})
        best = np.maximum(frame.groupby("w")["v"].cummax().to_numpy(), -cost.fn)
        previous = pd.Series(best).groupby(frame["w"].to_numpy()).shift(1, fill_value=-cost.fn)
        delta[inside] = best - previous.to_numpy()
        first[np.flatnonzero(inside)] = ~frame["w"].duplicated().to_numpy()

    base = -cost.fn * n_windows
    if s.shape[0] == 0:
        ends = np.empty(0, dtype=np.int64)
    else:
        ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # last row of each distinct score
        ends = ends[np.isfinite(s[ends])]  # a NaN score is never a usable threshold
    tp = np.r_[0, np.cumsum(first)[ends]].astype(np.int64)
    return Sweep(
        thresholds=np.r_[np.inf, s[ends]],
        totals=base + np.r_[0.0, np.cumsum(delta)[ends]],
        tp=tp,
        fp=np.r_[0, np.cumsum(~inside)[ends]].astype(np.int64),
        fn=(n_windows - tp).astype(np.int64),
    )


@dataclass(frozen=True)
class ProfileScore:
    """One profile's result at its corpus-optimised threshold."""

    profile: str
    threshold: float
    raw: float
    null: float
    perfect: float
    tp: int
    fp: int
    fn: int

    @property
    def normalised(self) -> float:
        """0 = the null detector, 100 = every window detected at its very start."""
        return 100.0 * (self.raw - self.null) / (self.perfect - self.null)


def _weights(corpus: NABCorpus, cost: CostMatrix, probation_percent: float) -> list[RowWeights]:
    return [
        row_weights(len(series), series.windows, cost, probation_percent)
        for series in corpus.series.values()
    ]


def _ordered_scores(corpus: NABCorpus, detections: Mapping[str, FloatArray]) -> list[FloatArray]:
    missing = sorted(set(corpus.series) - set(detections))
    if missing:
        raise NABDataError(f"no detections for {len(missing)} files, e.g. {missing[0]}")
    return [np.asarray(detections[name], dtype=np.float64) for name in corpus.series]


def score_profile(
    corpus: NABCorpus,
    detections: Mapping[str, FloatArray],
    profile: str,
    *,
    probation_percent: float = PROBATION_PERCENT,
) -> ProfileScore:
    """Optimise the threshold over the whole corpus for ``profile`` and normalise the total."""
    cost = corpus.profiles[profile]
    weights = _weights(corpus, cost, probation_percent)
    result = sweep(_ordered_scores(corpus, detections), weights, cost)
    k = result.best()
    # the null detector: a constant score, so its only choices are "all rows" or "none"
    constant = [np.full(rw.value.shape, 0.5) for rw in weights]
    null = sweep(constant, weights, cost)
    return ProfileScore(
        profile=profile,
        threshold=float(result.thresholds[k]),
        raw=float(result.totals[k]),
        null=float(null.totals[null.best()]),
        perfect=corpus.n_windows * cost.tp,
        tp=int(result.tp[k]),
        fp=int(result.fp[k]),
        fn=int(result.fn[k]),
    )


def score_corpus(
    corpus: NABCorpus,
    detections: Mapping[str, FloatArray],
    *,
    probation_percent: float = PROBATION_PERCENT,
) -> dict[str, ProfileScore]:
    """Every profile of ``config/profiles.json``, each with its own optimised threshold."""
    return {
        name: score_profile(corpus, detections, name, probation_percent=probation_percent)
        for name in corpus.profiles
    }


@dataclass(frozen=True)
class FileScore:
    name: str
    raw: float
    tp: int
    fp: int
    fn: int


def file_scores(
    corpus: NABCorpus,
    detections: Mapping[str, FloatArray],
    profile: str,
    threshold: float,
    *,
    probation_percent: float = PROBATION_PERCENT,
) -> list[FileScore]:
    """Per-file breakdown at a fixed threshold (diagnostics: where a detector wins or loses)."""
    cost = corpus.profiles[profile]
    out: list[FileScore] = []
    weights = _weights(corpus, cost, probation_percent)
    scores = _ordered_scores(corpus, detections)
    for name, s, rw in zip(corpus.series, scores, weights, strict=True):
        one = sweep([s], [rw], cost)
        # the sweep's rows are distinct thresholds, descending: take the last one still >= t
        k = int(np.searchsorted(-one.thresholds, -threshold, side="right")) - 1
        out.append(
            FileScore(
                name=name,
                raw=float(one.totals[k]),
                tp=int(one.tp[k]),
                fp=int(one.fp[k]),
                fn=int(one.fn[k]),
            )
        )
    return out
