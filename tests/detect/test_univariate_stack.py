"""Range novelty, the streaming features it watches, the event mask and the univariate stack."""

from __future__ import annotations

import numpy as np
import pytest

from gatewarden.detect.novelty import NearestBlocks, RangeNovelty
from gatewarden.detect.stream_features import (
    EWMean,
    EWVolatility,
    SeasonalDiff,
    first_acf_peak,
)
from gatewarden.detect.univariate import EventMask, UnivariateStack, default_univariate_stack
from gatewarden.protocols import Detector
from tests.detect.streams import feed, tick


def test_range_novelty_scores_the_overshoot_in_units_of_the_range() -> None:
    detector = RangeNovelty(warmup=3)
    assert isinstance(detector, Detector)
    scores = feed(detector, [0.0, 10.0, 5.0, 8.0, 12.0, -5.0])
    assert np.isnan(scores[:3]).all()  # warm-up
    assert scores[3] == 0.0  # inside [0, 10]
    assert scores[4] == pytest.approx(0.2)  # 2 beyond a range of 10
    assert scores[5] == pytest.approx(5.0 / 12.0)  # below, range now [0, 12]


def test_range_novelty_learns_records_and_keeps_series_apart() -> None:
    detector = RangeNovelty(warmup=1)
    for a, b in [(0.0, 100.0), (1.0, 200.0)]:
        detector.learn_one(tick(a, b))
    x = tick(3.0, 150.0)
    before = detector.state.snapshot()
    assert detector.score_one(x).tolist() == pytest.approx([2.0, 0.0])
    after = detector.state.snapshot()
    assert all(np.array_equal(before[k], after[k]) for k in before)  # score_one is pure
    detector.learn_one(x)
    assert detector.score_one(tick(3.0, 150.0)).tolist() == [0.0, 0.0]  # the record is normal now


def test_range_novelty_over_a_level_sees_a_shift_the_raw_range_hides() -> None:
    rng = np.random.default_rng(1)
    noise = rng.uniform(0.0, 10.0, 600)
    shifted = rng.uniform(3.0, 10.0, 200)  # every value stays inside the old [0, 10]
    raw = feed(RangeNovelty(), [*noise, *shifted])
    level = feed(RangeNovelty(EWMean(alpha=0.03)), [*noise, *shifted])
    assert np.nanmax(raw[600:]) == 0.0
    assert np.nanmax(level[600:]) > 0.05


def test_windowed_range_forgets_an_old_spike() -> None:
    calm = [float(v) for v in np.tile([0.0, 1.0], 150)]
    stream = [*calm[:50], 100.0, *calm, 5.0]  # the spike is 301 values before the excursion
    forever = feed(RangeNovelty(), stream)
    windowed = feed(RangeNovelty(window=200, blocks=10), stream)
    assert forever[50] == pytest.approx(99.0) and windowed[50] == pytest.approx(99.0)
    assert forever[-1] == 0.0  # 5 is inside [0, 100]
    assert windowed[-1] == pytest.approx(4.0)  # but 4 above the [0, 1] of the last 200 values
    state = RangeNovelty(window=200, blocks=10).state
    assert state["block_high"].shape[1] == 10  # state is blocks, not the window's values


def test_nearest_blocks_scores_new_trajectories_at_block_ends_only() -> None:
    detector = NearestBlocks(block=4, dims=2, memory=8)
    assert isinstance(detector, Detector)
    cycle = [0.0] * 4 + [10.0] * 4  # block means alternate 0, 10
    scores = feed(detector, cycle * 6)
    assert np.isnan(scores[:12]).all()  # nothing remembered before the third block ends
    assert all(s == 0.0 for i, s in enumerate(scores[12:], 12) if (i + 1) % 4)
    assert max(scores[24:]) == 0.0  # (0, 10) and (10, 0) were both seen before
    assert feed(detector, [5.0] * 3) == [0.0, 0.0, 0.0]  # not a block end
    x = tick(5.0, keys=("a",))
    before = detector.state.snapshot()
    # block mean 5 after 10: (10, 5) is 2.5 from (10, 0), in units of the range 10
    assert detector.score_one(x)[0] == pytest.approx(0.25)
    for name, array in detector.state.snapshot().items():  # score_one is pure
        np.testing.assert_array_equal(array, before[name])
    assert detector.state["bank"].shape[1] == 8 * 2  # memory is capped, oldest overwritten


def test_ew_features() -> None:
    mean, vol = EWMean(alpha=0.5), EWVolatility(alpha=0.5)
    for v in [2.0, 4.0]:
        x = tick(v, keys=("a",))
        mean.learn(x)
        vol.learn(x)
    x = tick(8.0, keys=("a",))
    assert mean.value(x)[0] == pytest.approx(3.0 + 0.5 * (8.0 - 3.0))
    assert vol.value(x)[0] == pytest.approx(2.0 + 0.5 * (4.0 - 2.0))
    assert mean.value(tick(1.0, keys=("new",)))[0] == 1.0  # a new series starts at its value
    assert np.isnan(vol.value(tick(1.0, keys=("new",)))[0])  # but has no step yet
    assert np.isnan(mean.value(tick(np.nan, keys=("a",)))[0])


def test_first_acf_peak_finds_a_cycle_and_rejects_noise() -> None:
    t = np.arange(600)
    assert first_acf_peak(np.sin(2 * np.pi * t / 48), 300, 0.5) == 48
    assert first_acf_peak(np.random.default_rng(2).normal(size=600), 300, 0.5) == 0


def test_seasonal_diff_is_flat_on_a_repeating_cycle_and_moves_when_it_breaks() -> None:
    feature = SeasonalDiff(warmup=200, max_lag=100, alpha=1.0)
    cycle = np.where(np.arange(24) < 12, 10.0, 0.0)
    stream = np.tile(cycle, 20)
    values = []
    for v in stream:
        x = tick(float(v), keys=("a",))
        values.append(float(feature.value(x)[0]))
        feature.learn(x)
    assert np.isnan(values[:200]).all()
    assert np.allclose(values[200:], 0.0)
    # the high half of the next cycle does not come: 10 below what one period ago was
    assert feature.value(tick(0.0, keys=("a",)))[0] == pytest.approx(-10.0)


def test_event_mask_reports_an_event_once_and_a_stronger_one_again() -> None:
    mask = EventMask(half_life=100.0)
    x = tick(0.0, keys=("a",))
    reported = []
    for score in [0.0, 0.6, 0.59, 0.5, 0.9, 0.0]:
        s = np.array([score])
        reported.append(float(mask.mask(s, x)[0]))
        mask.learn(s, x)
    assert reported == [0.0, 0.6, 0.0, 0.0, 0.9, 0.0]
    assert np.isnan(mask.mask(np.array([np.nan]), x)[0])


def mask_stream(mask: EventMask, scores: list[float]) -> list[float]:
    x = tick(0.0, keys=("a",))
    reported = []
    for score in scores:
        s = np.array([score])
        reported.append(float(mask.mask(s, x)[0]))
        mask.learn(s, x)
    return reported


def test_event_mask_hold_reports_a_climbing_incident_once() -> None:
    # half-life of 1e9 ticks: the level does not decay within the test
    climb = [0.0, 0.6, 0.62, 0.0, 0.65, 0.7]
    assert mask_stream(EventMask(1e9), climb) == [0.0, 0.6, 0.62, 0.0, 0.65, 0.7]
    # held for 3 ticks after the 0.6: a score must beat 0.6 / 0.9 = 0.667 to be reported; once
    # the hold ends, beating the level (0.65) is enough again
    held = mask_stream(EventMask(1e9, hold=3, hold_ratio=0.9), climb)
    assert held == [0.0, 0.6, 0.0, 0.0, 0.0, 0.7]
    # a clearly stronger incident gets through the hold at once, and sets a new hold
    assert mask_stream(EventMask(1e9, hold=3, hold_ratio=0.9), [0.6, 0.7, 0.75, 0.8]) == [
        0.6,
        0.7,
        0.0,
        0.8,
    ]


def test_event_mask_hold_is_per_series_and_mask_is_pure() -> None:
    mask = EventMask(1e9, hold=5, hold_ratio=0.5)
    x = tick(0.0, 0.0)
    mask.learn(np.array([0.4, 0.0]), x)  # reported for "a" only
    before = mask.state.snapshot()
    scores = np.array([0.7, 0.3])
    assert mask.mask(scores, x).tolist() == [0.0, 0.3]  # "a" must beat 0.8, "b" is not held
    assert mask.mask(scores, x).tolist() == [0.0, 0.3]
    after = mask.state.snapshot()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert np.isnan(mask.mask(np.array([np.nan, 0.9]), x)[0])


def test_event_mask_validates_hold() -> None:
    with pytest.raises(ValueError, match="hold"):
        EventMask(100.0, hold=-1)
    with pytest.raises(ValueError, match="hold_ratio"):
        EventMask(100.0, hold=3, hold_ratio=0.0)


def test_stack_scores_in_unit_interval_and_flags_a_level_shift_once() -> None:
    rng = np.random.default_rng(3)
    values = [*rng.normal(50.0, 2.0, 800), *rng.normal(80.0, 2.0, 400)]
    stack = default_univariate_stack()
    assert isinstance(stack, Detector)
    scores = np.array(feed(stack, values))
    assert np.isnan(scores[:10]).all()
    judged = scores[~np.isnan(scores)]
    assert ((judged >= 0.0) & (judged <= 1.0)).all()
    assert scores[800] > 0.9  # the first shifted row breaks the record at once
    assert scores[800] >= np.nanmax(scores[300:])  # and is the strongest event of all
    # masked: the shift is one event (its new trajectory may add a report or two at the next
    # block ends), not 400 alerts
    assert np.count_nonzero(scores[801:]) <= 2
    assert (scores[900:] == 0.0).all()


def test_stack_validates_components() -> None:
    with pytest.raises(ValueError, match="at least one"):
        UnivariateStack([], half_life=10.0)
    with pytest.raises(ValueError, match="scale"):
        UnivariateStack([(RangeNovelty(), 0.0)], half_life=10.0)
