"""CUSUM accumulation and the Bernoulli LLR, through the shipped provider error-rate spec:
subtle sustained shifts page, blips do not, recovery and silence drain the alarm."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gatewarden.detect import BinomialLLR, Cusum, RobustEWMA, load_detector_specs
from gatewarden.protocols import Detector, Filter, SeriesTick

DETECTORS_DIR = Path(__file__).resolve().parents[2] / "detectors"
KEY = ["provider=openai"]


def shipped(name: str = "provider-error-rate") -> tuple[Detector, Filter]:
    spec = {s.name: s for s in load_detector_specs(DETECTORS_DIR)}[name]
    return spec.build_detector(), spec.build_filter()


def errors_tick(rng: np.random.Generator, rate: float, t: int, calls: int = 70) -> SeriesTick:
    errors = rng.binomial(calls, rate)
    return SeriesTick(float(t * 15), KEY, np.array([errors / calls]), np.array([float(calls)]))


def run(
    rates: list[float], seed: int = 0, calls: int = 70, name: str = "provider-error-rate"
) -> list[bool]:
    detector, gate = shipped(name)
    rng = np.random.default_rng(seed)
    fired = []
    for t, rate in enumerate(rates):
        x = errors_tick(rng, rate, t, calls)
        fired.append(bool(gate.fires(detector.score_one(x), x)[0]))
        detector.learn_one(x)
    return fired


BASE = [0.003] * 80


def test_three_percent_errors_page_within_a_few_minutes() -> None:
    delays = []
    for seed in range(6):
        fired = run(BASE + [0.03] * 40, seed=seed, name="provider-error-rate-sustained")
        assert not any(fired[:80])
        first = fired.index(True, 80)
        delays.append(first - 80)
        assert sum(fired[first:]) >= 0.8 * len(fired[first:]), "stays firing while it lasts"
    # 2.1 errors a tick against 0.2: physics allows no much faster, noise no much slower
    assert sorted(delays)[3] <= 14, delays
    assert max(delays) <= 26, delays


@pytest.mark.parametrize("name", ["provider-error-rate", "provider-error-rate-sustained"])
@pytest.mark.parametrize("rate", [0.3, 0.9])
def test_a_one_minute_blip_never_pages_however_bad(rate: float, name: str) -> None:
    for seed in range(3):
        # four full ticks, plus a tail tick at a third of the rate (late fallbacks)
        assert not any(run(BASE + [rate] * 4 + [rate / 3] + BASE, seed=seed, name=name))


def test_a_real_outage_pages_on_its_sixth_tick() -> None:
    fired = run(BASE + [0.5] * 12)
    assert not any(fired[:85])
    assert fired[85]


def test_alarm_drains_after_recovery() -> None:
    fired = run(BASE + [0.5] * 20 + [0.003] * 60)
    assert all(fired[86:100])
    assert not any(fired[106:]), "stops within a minute or two of recovery"


@pytest.mark.parametrize("name", ["provider-error-rate", "provider-error-rate-sustained"])
@pytest.mark.parametrize("seed", range(3))
def test_baseline_noise_and_small_rises_stay_quiet(seed: int, name: str) -> None:
    # 0.3 % for ~4 hours, then 0.8 % (under the +1 point materiality) for another hour
    assert not any(run([0.003] * 1000 + [0.008] * 240, seed=seed, calls=40, name=name))


def test_low_volume_and_absent_ticks_drain_the_sum() -> None:
    detector = Cusum(RobustEWMA(warmup=3, min_volume=10), k=1.0, cap=4.0, s_max=20.0)
    for t in range(10):
        detector.learn_one(SeriesTick(t * 15.0, ["a"], np.array([1.0]), np.array([100.0])))
    for t in range(10, 20):  # a sustained shift saturates the sum
        detector.learn_one(SeriesTick(t * 15.0, ["a"], np.array([50.0]), np.array([100.0])))
    probe = SeriesTick(20 * 15.0, ["a"], np.array([1.0]), np.array([100.0]))
    assert detector.score_one(probe)[0] == pytest.approx(19.0)
    detector.learn_one(SeriesTick(20 * 15.0, ["a"], np.array([50.0]), np.array([3.0])))  # thin
    later = SeriesTick(26 * 15.0, ["a"], np.array([1.0]), np.array([100.0]))  # 5 ticks absent
    # 20 - 1 (thin tick) - 5 (missed ticks) - 1 (k, a normal point)
    assert detector.score_one(later)[0] == pytest.approx(13.0)
    assert detector.window_ticks(later)[0] >= 10


def test_a_permanent_shift_is_accepted_after_max_hold() -> None:
    detector = Cusum(RobustEWMA(warmup=3, min_volume=1), k=1.0, cap=4.0, s_max=20.0, max_hold=10)
    x = [1.0] * 10 + [50.0] * 40
    scores = []
    for t, v in enumerate(x):
        tick = SeriesTick(t * 15.0, ["a"], np.array([v + 0.01 * (t % 3)]), np.array([10.0]))
        scores.append(detector.score_one(tick)[0])
        detector.learn_one(tick)
    assert max(scores[10:20]) >= 17
    assert np.nanmax(scores[-10:]) < 4, "the new level became the baseline"


def test_binomial_llr_weighs_evidence_by_volume() -> None:
    detector = BinomialLLR(warmup=2, min_volume=1)
    for t in range(20):  # 0.3 % baseline over 2000 calls a tick
        detector.learn_one(SeriesTick(t, ["a"], np.array([0.003]), np.array([2000.0])))
    quiet = detector.score_one(SeriesTick(20, ["a"], np.array([0.0]), np.array([100.0])))
    one = detector.score_one(SeriesTick(20, ["a"], np.array([0.01]), np.array([100.0])))
    many = detector.score_one(SeriesTick(20, ["a"], np.array([0.05]), np.array([100.0])))
    assert quiet[0] < 0 < one[0] < many[0]
    assert detector.expected(SeriesTick(20, ["a"], np.array([0.0]), np.array([1.0])))[
        0
    ] == pytest.approx(0.003)
