"""Threshold and NOfM filters."""

from __future__ import annotations

import numpy as np
import pytest

from gatewarden.detect import NOfM, Threshold
from gatewarden.protocols import Filter, SeriesTick


def x(values: list[float], volumes: list[float], keys: list[str] | None = None) -> SeriesTick:
    ks = keys if keys is not None else [f"s{i}" for i in range(len(values))]
    return SeriesTick(0.0, ks, np.array(values, dtype=float), np.array(volumes, dtype=float))


def test_threshold_requires_score_value_and_volume() -> None:
    gate = Threshold(6.0, min_value=0.05, min_volume=20)
    assert isinstance(gate, Filter)
    scores = np.array([7.0, 7.0, 7.0, 5.9, np.nan, 6.0])
    tick = x([0.5, 0.01, 0.5, 0.5, 0.5, 0.05], [100, 100, 10, 100, 100, 20])
    assert gate.fires(scores, tick).tolist() == [True, False, False, False, False, True]


def test_threshold_max_value() -> None:
    gate = Threshold(3.0, max_value=10.0)
    assert gate.fires(np.array([4.0, 4.0]), x([5.0, 50.0], [1, 1])).tolist() == [True, False]


def test_n_of_m_counts_per_series() -> None:
    gate = NOfM(Threshold(1.0), n=2, m=3)
    hi, lo = 5.0, 0.0
    sequence = [
        ([hi, hi], [False, False]),
        ([lo, hi], [False, True]),
        ([hi, hi], [True, True]),  # s0: 1,0,1 -> 2 of 3
        ([lo, lo], [False, True]),  # s0: 0,1,0; s1: hi,hi,lo -> still 2 of 3
        ([lo, lo], [False, False]),
    ]
    for scores, expected in sequence:
        fired = gate.fires(np.array(scores), x([1.0, 1.0], [1, 1], ["s0", "s1"]))
        assert fired.tolist() == expected


def test_n_of_m_absent_series_keep_window_and_nan_counts_as_miss() -> None:
    gate = NOfM(Threshold(1.0), n=2, m=2)
    gate.fires(np.array([5.0]), x([1.0], [1], ["a"]))
    gate.fires(np.array([5.0]), x([1.0], [1], ["b"]))  # "a" absent: window kept
    assert gate.fires(np.array([5.0]), x([1.0], [1], ["a"])).tolist() == [True]
    assert gate.fires(np.array([np.nan]), x([1.0], [1], ["a"])).tolist() == [False]


def test_n_of_m_validates() -> None:
    with pytest.raises(ValueError):
        NOfM(Threshold(1.0), n=4, m=3)
    with pytest.raises(ValueError):
        NOfM(Threshold(1.0), n=1, m=65)
