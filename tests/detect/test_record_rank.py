"""RecordRank: records of a long, sampled window, counted only beyond ``record_after`` samples."""

from __future__ import annotations

import numpy as np
import pytest

from gatewarden.detect.rank import RecordRank
from gatewarden.protocols import Detector
from tests.detect.streams import feed, tick


def test_scores_minus_log10_of_the_tail_probability_above_the_bar() -> None:
    detector = RecordRank(size=8, stride=1, min_fill=4, record_after=3)
    assert isinstance(detector, Detector)
    scores = feed(detector, [float(v) for v in range(8)])
    assert np.isnan(scores[:4]).all()  # fewer than min_fill remembered values
    # 4 after 0..3: a record among 4 (p = 1/5), a third of the span beyond it; bar p = 1/4
    assert scores[4] == pytest.approx(np.log10(5 * (1 + 1 / 3) / 4))
    assert scores[7] == pytest.approx(np.log10(8 * (1 + 1 / 6) / 4))  # 7 after 0..6
    # inside the window: 3.5 has 4 values on either side, far from a tail
    assert feed(detector, [3.5])[0] == 0.0
    # 3.5 took the oldest value's place (0): a record among 8, 7 / 6 of the span 1..7 beyond it
    assert feed(detector, [14.0])[0] == pytest.approx(np.log10(9 * (1 + 7 / 6) / 4))


def test_a_bigger_break_ranks_higher_and_lows_count_like_highs() -> None:
    detector = RecordRank(size=16, stride=1, min_fill=8, record_after=7)
    feed(detector, [float(v % 5) for v in range(16)])
    assert float(detector.score_one(tick(4.0, keys=("a",)))[0]) == 0.0  # ties the record
    high, higher, low = (float(detector.score_one(tick(v, keys=("a",)))[0]) for v in (5, 9, -1))
    assert 0.0 < high < higher
    assert low == pytest.approx(high)  # both one fifth of the span (0..4) outside it


def test_the_window_forgets_and_samples_every_stride() -> None:
    detector = RecordRank(size=4, stride=2, min_fill=2, record_after=1)
    # remembered: every second value, the last 4 of them: 100 is pushed out by later values
    feed(detector, [100.0, 0.0, 1.0, 0.0, 2.0, 0.0, 3.0, 0.0, 4.0, 0.0])
    assert sorted(detector.state["ring"][0].tolist()) == [1.0, 2.0, 3.0, 4.0]
    assert float(detector.score_one(tick(50.0, keys=("a",)))[0]) > 0.0


def test_a_young_window_breaks_no_record() -> None:
    # the same break (a tenth of the span beyond the top) counts only with a long history
    young, old = (RecordRank(size=64, stride=1, min_fill=4, record_after=32) for _ in "ab")
    assert feed(young, [*np.linspace(0.0, 1.0, 20), 1.1])[-1] == 0.0  # p = 1 / (21 * 1.1)
    assert feed(old, [*np.linspace(0.0, 1.0, 60), 1.1])[-1] == pytest.approx(
        np.log10(61 * 1.1 / 33)
    )


def test_score_one_is_pure_and_series_are_kept_apart() -> None:
    detector = RecordRank(size=8, stride=1, min_fill=2, record_after=1)
    for a, b in [(0.0, 100.0), (1.0, 200.0), (2.0, 300.0)]:
        detector.learn_one(tick(a, b))
    x = tick(5.0, 250.0)
    before = detector.state.snapshot()
    scores = detector.score_one(x)
    assert scores[0] > 0.0 and scores[1] == 0.0
    after = detector.state.snapshot()
    assert all(np.array_equal(before[k], after[k], equal_nan=True) for k in before)
    assert np.isnan(detector.score_one(tick(np.nan, 250.0))[0])
    assert np.isnan(detector.score_one(tick(1.0, keys=("new",)))[0])


@pytest.mark.parametrize(
    "kwargs",
    [{"size": 8, "min_fill": 9}, {"stride": 0}, {"size": 8, "record_after": 8}],
)
def test_rejects_settings_that_could_never_judge(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        RecordRank(**kwargs)
