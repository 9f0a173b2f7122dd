"""The project's NAB scorer: the scoring rules on small hand-made files, then the proof that it
reproduces the published scoreboard from the two published detectors' raw scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gatewarden.evaluation.nab import (
    PROBATION,
    file_scores,
    probation_length,
    row_weights,
    score_corpus,
    score_profile,
    sweep,
)
from gatewarden.evaluation.nab_corpus import (
    CostMatrix,
    FloatArray,
    NABCorpus,
    NABSeries,
    load_corpus,
    load_detections,
)

NAB_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "nab"
STANDARD = CostMatrix(tpWeight=1.0, fpWeight=0.11, fnWeight=1.0)
LOW_FN = CostMatrix(tpWeight=1.0, fpWeight=0.11, fnWeight=2.0)


def series(name: str, n: int, windows: tuple[tuple[int, int], ...]) -> NABSeries:
    stamps = np.datetime64("2020-01-01T00:00") + np.arange(n) * np.timedelta64(5, "m")
    return NABSeries(name=name, timestamps=stamps, values=np.zeros(n), windows=windows)


def tiny_corpus() -> NABCorpus:
    # 100 rows -> 15 probationary rows; windows of width 10
    files = {
        "a/one.csv": series("a/one.csv", 100, ((30, 39), (70, 79))),
        "a/two.csv": series("a/two.csv", 100, ((50, 59),)),
    }
    return NABCorpus(root=Path("."), series=files, profiles={"standard": STANDARD})


def detect_at(n: int, rows: list[int], level: float = 1.0) -> FloatArray:
    out = np.zeros(n)
    out[rows] = level
    return out


def one_file_total(n: int, windows: tuple[tuple[int, int], ...], rows: list[int]) -> float:
    rw = row_weights(n, windows, STANDARD)
    result = sweep([detect_at(n, rows)], [rw], STANDARD)
    # the marked rows detect at threshold 1.0; if none of them is scored, nothing detects
    at_one = np.flatnonzero(result.thresholds == 1.0)
    return float(result.totals[at_one[0] if at_one.size else 0])


def test_probation_is_fifteen_percent_capped_at_750_rows() -> None:
    assert probation_length(100) == 15
    assert probation_length(4032) == 604
    assert probation_length(22695) == 750
    rw = row_weights(100, ((30, 39),), STANDARD)
    assert (rw.window[:15] == PROBATION).all() and (rw.window[15:] != PROBATION).all()


def test_window_start_earns_full_tp_and_earlier_is_better() -> None:
    rw = row_weights(100, ((30, 39),), STANDARD)
    assert rw.value[30] == pytest.approx(1.0)
    inside = rw.value[30:40]
    assert (np.diff(inside) < 0).all() and inside[-1] > 0
    assert one_file_total(100, ((30, 39),), [30]) == pytest.approx(1.0)


def test_only_the_first_detection_in_a_window_counts() -> None:
    first = one_file_total(100, ((30, 39),), [33])
    assert one_file_total(100, ((30, 39),), [33, 34, 35, 38, 39]) == pytest.approx(first)


def test_missed_window_costs_fn_and_probation_detections_are_free() -> None:
    assert one_file_total(100, ((30, 39),), [5, 10, 14]) == pytest.approx(-1.0)
    assert one_file_total(100, ((10, 19),), [10]) == pytest.approx(-1.0)  # its start is unscored


def test_false_positives_are_discounted_just_after_a_window() -> None:
    windows = ((30, 39),)
    miss = -1.0
    right_after = one_file_total(100, windows, [40]) - miss
    later = one_file_total(100, windows, [50]) - miss
    far = one_file_total(100, windows, [90]) - miss  # > 3 widths past the window
    before = one_file_total(100, windows, [20]) - miss
    assert -0.11 < later < right_after < 0
    assert far == pytest.approx(-0.11) and before == pytest.approx(-0.11)


def test_threshold_is_optimised_once_over_the_whole_corpus() -> None:
    corpus = tiny_corpus()
    # file one: 0.9 at both window starts, 0.85 at a false positive before them; file two: 0.8
    # at its window start, 0.95 at a false positive before it. Alone, file one would pick 0.9
    # (2.0) and file two 0.8 (0.89); one corpus threshold must take 0.8 and both FPs.
    one = detect_at(100, [30, 70], 0.9)
    one[20] = 0.85
    two = detect_at(100, [50], 0.8)
    two[20] = 0.95
    detections = {"a/one.csv": one, "a/two.csv": two}
    result = score_profile(corpus, detections, "standard")
    assert result.threshold == pytest.approx(0.8)
    assert (result.tp, result.fp, result.fn) == (3, 2, 0)
    assert result.raw == pytest.approx(3.0 - 2 * 0.11)
    assert result.null == pytest.approx(-3.0) and result.perfect == pytest.approx(3.0)
    per_file = file_scores(corpus, detections, "standard", 0.8)
    assert [f.raw for f in per_file] == pytest.approx([2.0 - 0.11, 1.0 - 0.11])
    assert [(f.tp, f.fp, f.fn) for f in per_file] == [(2, 1, 0), (1, 1, 0)]


def test_normalisation_puts_null_at_0_and_perfect_at_100() -> None:
    corpus = tiny_corpus()
    null = {name: np.full(len(s), 0.5) for name, s in corpus.series.items()}
    assert score_profile(corpus, null, "standard").normalised == pytest.approx(0.0)
    perfect = {
        name: detect_at(len(s), [lo for lo, _ in s.windows]) for name, s in corpus.series.items()
    }
    assert score_profile(corpus, perfect, "standard").normalised == pytest.approx(100.0)


def test_fn_weight_of_a_profile_scales_misses() -> None:
    rw = row_weights(100, ((30, 39),), LOW_FN)
    nothing = sweep([np.zeros(100)], [rw], LOW_FN)
    assert nothing.totals[0] == pytest.approx(-2.0)


needs_nab = pytest.mark.skipif(
    not NAB_ROOT.is_dir(), reason=f"NAB corpus not found at {NAB_ROOT} (../shared/nab)"
)


@pytest.fixture(scope="session")
def nab_corpus() -> NABCorpus:
    return load_corpus(NAB_ROOT)


@needs_nab
@pytest.mark.parametrize(
    ("detector", "published"),
    [("numenta", 70.10105611943965), ("windowedGaussian", 39.649523496060326)],
)
def test_reproduces_published_standard_scores(
    nab_corpus: NABCorpus, detector: str, published: float
) -> None:
    assert len(nab_corpus.series) == 58 and nab_corpus.n_windows == 116
    detections = load_detections(nab_corpus, detector)
    result = score_profile(nab_corpus, detections, "standard")
    assert result.normalised == pytest.approx(published, abs=0.2)


@needs_nab
def test_reproduces_every_published_profile_of_windowed_gaussian(nab_corpus: NABCorpus) -> None:
    published = {
        "standard": 39.649523496060326,
        "reward_low_FP_rate": 20.86798582476082,
        "reward_low_FN_rate": 47.41002715829308,
    }
    scores = score_corpus(nab_corpus, load_detections(nab_corpus, "windowedGaussian"))
    assert {p: round(s.normalised, 1) for p, s in scores.items()} == {
        p: round(v, 1) for p, v in published.items()
    }
