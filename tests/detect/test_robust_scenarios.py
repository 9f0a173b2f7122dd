"""RobustEWMA and MedianMAD on error-rate scenarios: step change, long stable noise, a 20-tick
outage. (The shipped provider spec accumulates evidence instead: see test_change.py; here it
only has to stay quiet on noise.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gatewarden.detect import (
    Baseline,
    DetectorSpec,
    MedianMAD,
    RobustEWMA,
    Threshold,
    load_detector_specs,
)
from gatewarden.protocols import Detector, Filter, SeriesTick

DETECTORS_DIR = Path(__file__).resolve().parents[2] / "detectors"
VOLUME = 200


def shipped_spec() -> DetectorSpec:
    specs = {spec.name: spec for spec in load_detector_specs(DETECTORS_DIR)}
    return specs["provider-error-rate"]


def pair(name: str) -> tuple[Detector, Filter]:
    if name == "shipped":
        spec = shipped_spec()
        return spec.build_detector(), spec.build_filter()
    gate = Threshold(6.0, min_value=0.05, min_volume=20)
    if name == "median_mad":
        return MedianMAD(window=30, min_periods=8, min_volume=20, binomial=True), gate
    return RobustEWMA(alpha=0.1, warmup=8, min_volume=20, binomial=True, abs_floor=0.005), gate


def error_rate_tick(rng: np.random.Generator, rate: float, t: int) -> SeriesTick:
    errors = rng.binomial(VOLUME, rate)
    return SeriesTick(
        ts=float(t),
        keys=["provider=openai"],
        values=np.array([errors / VOLUME]),
        volumes=np.array([float(VOLUME)]),
    )


def run(detector: Detector, gate: Filter, rates: list[float], seed: int = 0) -> list[bool]:
    rng = np.random.default_rng(seed)
    fired = []
    for t, rate in enumerate(rates):
        x = error_rate_tick(rng, rate, t)
        fired.append(bool(gate.fires(detector.score_one(x), x)[0]))
        detector.learn_one(x)
    return fired


@pytest.mark.parametrize("name", ["robust_ewma", "median_mad"])
def test_step_change_fires_within_two_ticks(name: str) -> None:
    detector, gate = pair(name)
    fired = run(detector, gate, [0.01] * 50 + [0.40] * 5)
    assert not any(fired[:50])
    assert fired[50] or fired[51]
    assert all(fired[51:])


@pytest.mark.parametrize("name", ["robust_ewma", "shipped", "median_mad"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stable_noise_never_fires(name: str, seed: int) -> None:
    detector, gate = pair(name)
    assert not any(run(detector, gate, [0.01] * 1000, seed=seed))


@pytest.mark.parametrize("name", ["robust_ewma", "median_mad"])
def test_outage_does_not_poison_baseline(name: str) -> None:
    detector, gate = pair(name)
    rates = [0.01] * 60 + [0.40] * 20 + [0.01] * 30
    fired = run(detector, gate, rates)
    assert not any(fired[:60])
    assert all(fired[60:80]), "fires for the whole outage"
    assert not any(fired[80:]), "stops as soon as the provider recovers"
    x = SeriesTick(0.0, ["provider=openai"], np.array([0.01]), np.array([200.0]))
    assert isinstance(detector, Baseline)
    expected = detector.expected(x)[0]
    assert expected < 0.03, "the baseline stayed near 1 %"


def test_sustained_shift_is_eventually_accepted() -> None:
    detector = RobustEWMA(alpha=0.2, warmup=5, max_skip=10, min_volume=20, binomial=True)
    gate = Threshold(6.0, min_value=0.05)
    fired = run(detector, gate, [0.01] * 30 + [0.40] * 40)
    assert all(fired[30:41])
    assert not any(fired[-10:])


def test_direction_down_flags_drops() -> None:
    detector = RobustEWMA(alpha=0.1, warmup=5, direction="down")
    for t in range(20):
        detector.learn_one(SeriesTick(float(t), ["a"], np.array([100.0 + t % 3]), np.array([1.0])))
    drop = SeriesTick(99.0, ["a"], np.array([10.0]), np.array([1.0]))
    rise = SeriesTick(99.0, ["a"], np.array([190.0]), np.array([1.0]))
    assert detector.score_one(drop)[0] > 6
    assert detector.score_one(rise)[0] < 0


def test_floor_guards_constant_baseline() -> None:
    detector = RobustEWMA(warmup=5, rel_floor=0.1, abs_floor=0.01)
    for t in range(20):
        detector.learn_one(SeriesTick(float(t), ["a"], np.array([0.0]), np.array([50.0])))
    blip = SeriesTick(20.0, ["a"], np.array([0.02]), np.array([50.0]))
    assert detector.score_one(blip)[0] == pytest.approx(2.0)


def test_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        RobustEWMA(alpha=0.0)
    with pytest.raises(ValueError):
        MedianMAD(window=5, min_periods=6)
