"""Every detector honours the contract of gatewarden.detect.contract.

Each entry of ``CASES`` says how to build the detector and how to make a tick of normal data
(and an outlier) for it, since a share detector needs counts with shares, a price detector cost
with tokens, a peer detector a group label. The same properties then hold for all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pytest

from gatewarden.detect import (
    Baseline,
    BinomialLLR,
    BurnRate,
    Cusum,
    FrameTick,
    HalfSpaceTreesAdapter,
    Log,
    MedianMAD,
    PeerGroup,
    PriceIndex,
    RobustEWMA,
    SeasonalEWMA,
    SeriesState,
    ShareSurge,
    Static,
)
from gatewarden.detect.rank import RecordRank
from gatewarden.protocols import Detector, SeriesTick

Floats = npt.NDArray[np.float64]


@dataclass
class Case:
    make: Callable[[], Detector]
    #: learnt ticks before scores are finite (0: judged from the first tick)
    warmup: int
    #: the normal value of series i (before noise) and how an outlier is made from it
    outlier: Callable[[Floats], Floats] = field(default=lambda v: v * 3.0 + 20.0)
    #: state grows per series (False: per group, or none at all)
    per_series: bool = True
    baseline: bool = True
    max_series: int = 10_000


def _tick(
    case_name: str,
    values: Floats,
    keys: list[str],
    volumes: float | Floats,
    ts: float,
    rng: np.random.Generator,
) -> SeriesTick:
    vols = np.broadcast_to(np.asarray(volumes, dtype=np.float64), values.shape).copy()
    n = len(values)
    if case_name == "share_surge":
        total = max(float(np.sum(values)), 1.0)
        return FrameTick(ts, keys, values, vols, columns={"share": values / total})
    if case_name == "price_index":
        tokens_in = rng.uniform(1000, 5000, n)
        tokens_out = rng.uniform(100, 800, n)
        # values are price multipliers here (1 +- 1 %): cost = multiplier * list price of tokens
        cost = (1.0 + (values - 10.0) / 100.0) * (tokens_in * 2.5e-6 + tokens_out * 1e-5)
        columns = {"input_tokens": tokens_in, "output_tokens": tokens_out}
        return FrameTick(ts, keys, cost, vols, columns=columns)
    if case_name == "peer_group":
        groups = np.array([f"w{i % 3}" for i in range(n)], dtype=object)
        return FrameTick(ts, keys, values, vols, columns={"workflow": groups})
    if case_name == "half_space_trees":
        columns = {"a": values, "b": values * 0.5 + rng.normal(0, 0.2, n)}
        return FrameTick(ts, keys, values, vols, columns=columns)
    if case_name in ("burn_rate", "binomial_llr"):
        return SeriesTick(ts, keys, np.clip(values / 1000.0, 0, 1), vols)
    return SeriesTick(ts, keys, values, vols)


CASES: dict[str, Case] = {
    "robust_ewma": Case(lambda: RobustEWMA(alpha=0.1, warmup=5, min_volume=10), 5),
    "median_mad": Case(lambda: MedianMAD(window=20, min_periods=5, min_volume=10), 5),
    "seasonal_ewma": Case(lambda: SeasonalEWMA(alpha=0.1, warmup=5, min_volume=10), 5),
    "log_robust_ewma": Case(
        lambda: Log(RobustEWMA(alpha=0.1, warmup=5, min_volume=10, rel_floor=0.0)), 5
    ),
    "cusum": Case(lambda: Cusum(RobustEWMA(alpha=0.1, warmup=5, min_volume=10), k=0.5, cap=8.0), 5),
    "static": Case(lambda: Static(min_volume=10), 0, per_series=False, baseline=False),
    "share_surge": Case(
        lambda: ShareSurge(warmup=5, min_volume=10, min_ratio=1.5), 5, lambda v: v * 5.0
    ),
    "price_index": Case(lambda: PriceIndex(warmup=5, min_volume=10), 5, lambda v: v * 0 + 110),
    "peer_group": Case(
        lambda: PeerGroup(warmup=5, min_peers=2, min_volume=10), 5, lambda v: v * 50.0, False
    ),
    "binomial_llr": Case(lambda: BinomialLLR(warmup=5, min_volume=10), 5, lambda v: v * 0 + 600.0),
    "burn_rate": Case(
        lambda: BurnRate(slo=0.99, rules=[(120, 60, 2.0)], min_requests=10),
        1,
        lambda v: v * 0 + 600.0,
        True,
        True,
    ),
    # a record among the last 32 values beyond 8 of them; the outlier breaks it by a wide margin
    "record_rank": Case(
        lambda: RecordRank(size=32, stride=1, min_fill=5, record_after=8, min_volume=10),
        5,
        baseline=False,
    ),
    "half_space_trees": Case(
        lambda: HalfSpaceTreesAdapter(features=("a", "b"), window_size=20, min_volume=10),
        20,
        lambda v: v * 0 + 60.0,
        True,
        False,
        max_series=200,
    ),
}


@pytest.fixture(params=sorted(CASES))
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def state_of(detector: Detector) -> SeriesState:
    state = getattr(detector, "state", None)
    assert isinstance(state, SeriesState)
    return state


def normal(rng: np.random.Generator, n: int) -> Floats:
    return 10.0 + rng.normal(0.0, 1.0, n)


def feed(name: str, detector: Detector, rng: np.random.Generator, n: int, ticks: int) -> None:
    keys = [f"s{i}" for i in range(n)]
    for t in range(ticks):
        detector.learn_one(_tick(name, normal(rng, n), keys, 100.0, float(t * 15), rng))


def test_implements_protocol(name: str) -> None:
    detector = CASES[name].make()
    assert isinstance(detector, Detector)
    assert isinstance(detector, Baseline) is CASES[name].baseline


def test_score_one_does_not_mutate(name: str) -> None:
    rng = np.random.default_rng(0)
    detector = CASES[name].make()
    feed(name, detector, rng, 3, 30)
    state = state_of(detector)
    before = state.snapshot()
    keys = ["s0", "s1", "s2", "new"]
    x = _tick(name, np.array([10.0, 50.0, 9.0, 11.0]), keys, 100.0, 450.0, rng)
    first = detector.score_one(x)
    np.testing.assert_array_equal(first, detector.score_one(x))
    after = state.snapshot()
    for key, array in before.items():
        np.testing.assert_array_equal(array, after[key])
    assert "new" not in state.index


def test_nan_during_warmup_and_without_data(name: str) -> None:
    case = CASES[name]
    rng = np.random.default_rng(1)
    detector = case.make()
    keys = [f"s{i}" for i in range(6)]

    def x(values: Floats, volumes: float | Floats = 100.0) -> SeriesTick:
        return _tick(name, values, keys, volumes, 10_000.0, rng)

    for t in range(case.warmup):
        assert np.isnan(detector.score_one(x(normal(rng, 6)))).all(), f"tick {t}"
        detector.learn_one(_tick(name, normal(rng, 6), keys, 100.0, float(t * 15), rng))
    assert np.isfinite(detector.score_one(x(normal(rng, 6)))).all()
    low = np.full(6, 100.0)
    low[0] = 5.0
    assert np.isnan(detector.score_one(x(normal(rng, 6), low))[0])
    values = normal(rng, 6)
    values[0] = np.nan
    assert np.isnan(detector.score_one(x(values))[0])


def test_outlier_scores_higher_than_normal_points(name: str) -> None:
    case = CASES[name]
    rng = np.random.default_rng(2)
    detector = case.make()
    n = 30
    feed(name, detector, rng, n, max(30, case.warmup + 10))
    values = normal(rng, n)
    values[7] = case.outlier(values[7:8])[0]
    scores = detector.score_one(_tick(name, values, [f"s{i}" for i in range(n)], 100.0, 9e3, rng))
    others = np.delete(scores, 7)
    assert scores[7] > np.nanmax(others)
    assert np.isfinite(scores[7])


def test_absent_series_keep_state(name: str) -> None:
    rng = np.random.default_rng(3)
    detector = CASES[name].make()
    feed(name, detector, rng, 4, 30)
    probe = _tick(name, np.array([10.0, 10.0, 10.0]), ["s1", "s2", "s3"], 100.0, 450.0, rng)
    before = detector.score_one(probe)
    state = state_of(detector)
    rows = state.snapshot()
    slots = state.lookup(["s1", "s2", "s3"]) if CASES[name].per_series else None
    for t in range(5):
        detector.learn_one(_tick(name, normal(rng, 1) + t, ["s0"], 100.0, 450.0 + t, rng))
    if slots is not None:
        for key, array in rows.items():
            if array.ndim and array.shape[0] >= len(state) and key not in ("fine_errors",):
                np.testing.assert_array_equal(array[slots], state.snapshot()[key][slots])
    if name not in ("burn_rate", "peer_group", "share_surge", "static"):
        np.testing.assert_allclose(before, detector.score_one(probe))


def test_state_grows_with_series_count_only(name: str) -> None:
    case = CASES[name]
    rng = np.random.default_rng(4)
    detector = case.make()
    state = state_of(detector)
    feed(name, detector, rng, 10, 5)
    size = state.nbytes()
    feed(name, detector, rng, 10, 60)
    assert state.nbytes() == size
    many = min(case.max_series, 5000)
    feed(name, detector, rng, many, 1)
    if case.per_series:
        assert len(state) == many
        assert state.capacity <= 2 * many
    else:
        assert len(state) <= 3  # groups (or nothing), never series


def test_vectorised_over_many_series(name: str) -> None:
    case = CASES[name]
    if name == "half_space_trees":
        pytest.skip("one river model per series: small cardinality only (max_series)")
    rng = np.random.default_rng(5)
    detector = case.make()
    n = case.max_series
    keys = [f"provider=p{i}" for i in range(n)]
    for t in range(max(10, case.warmup + 3)):
        detector.learn_one(_tick(name, normal(rng, n), keys, 100.0, float(t * 15), rng))
    values = normal(rng, n)
    values[1234] = case.outlier(values[1234:1235])[0]
    scores = detector.score_one(_tick(name, values, keys, 100.0, 9e3, rng))
    assert int(np.nanargmax(scores)) == 1234


def test_half_space_trees_caps_its_series() -> None:
    rng = np.random.default_rng(6)
    detector = HalfSpaceTreesAdapter(features=("a", "b"), window_size=5, max_series=3)
    feed("half_space_trees", detector, rng, 5, 6)
    assert len(state_of(detector)) == 3
    x = _tick("half_space_trees", normal(rng, 5), [f"s{i}" for i in range(5)], 100.0, 99.0, rng)
    scores = detector.score_one(x)
    assert np.isfinite(scores[:3]).all() and np.isnan(scores[3:]).all()
