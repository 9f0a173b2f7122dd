"""Algorithm parameters of detector specs: one pydantic model per algorithm, looked up by name.

Algorithms are looked up in an explicit dict (:data:`ALGORITHMS`), never by building import
paths from config text. Each model's ``build`` constructs the detector; ``inputs`` names the
extra frame columns it reads (checked against the spec's level when the spec loads).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gatewarden.detect.basic import Static
from gatewarden.detect.binomial import BinomialLLR
from gatewarden.detect.hst import HalfSpaceTreesAdapter
from gatewarden.detect.peer import PeerGroup
from gatewarden.detect.price import PriceIndex
from gatewarden.detect.rates import DEFAULT_BURN_RULES, BurnRate, ShareSurge
from gatewarden.detect.robust import MedianMAD, RobustEWMA
from gatewarden.detect.seasonal import SeasonalEWMA
from gatewarden.protocols import Detector

Direction = Literal["up", "down", "both"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AlgorithmParams(_Frozen):
    """Parameters of one algorithm; ``min_volume`` defaults to the filter's ``min_volume`` so
    the baseline never learns from ticks too thin to be judged."""

    min_volume: float | None = Field(default=None, ge=0)

    def build(self, default_min_volume: float) -> Detector:
        raise NotImplementedError

    def inputs(self) -> tuple[str, ...]:
        """Frame columns besides the spec's metric and volume this algorithm reads."""
        return ()

    def _kwargs(self, default_min_volume: float) -> dict[str, Any]:
        kwargs = self.model_dump(exclude={"min_volume"})
        kwargs["min_volume"] = default_min_volume if self.min_volume is None else self.min_volume
        return kwargs


class RobustEWMAParams(AlgorithmParams):
    alpha: float = Field(default=0.1, gt=0, le=1)
    warmup: int = Field(default=10, ge=1)
    rel_floor: float = Field(default=0.1, ge=0)
    abs_floor: float = Field(default=1e-9, ge=0)
    binomial: bool = False
    clip: float = Field(default=3.0, gt=0)
    learn_limit: float = Field(default=4.0, gt=0)
    max_skip: int = Field(default=240, ge=1)
    direction: Direction = "up"

    def build(self, default_min_volume: float) -> Detector:
        return RobustEWMA(**self._kwargs(default_min_volume))


class MedianMADParams(AlgorithmParams):
    window: int = Field(default=30, ge=3)
    min_periods: int = Field(default=10, ge=1)
    rel_floor: float = Field(default=0.1, ge=0)
    abs_floor: float = Field(default=1e-9, ge=0)
    binomial: bool = False
    learn_limit: float = Field(default=4.0, gt=0)
    max_skip: int = Field(default=240, ge=1)
    direction: Direction = "up"

    @model_validator(mode="after")
    def _periods_fit_window(self) -> MedianMADParams:
        if self.min_periods > self.window:
            raise ValueError("min_periods must not exceed window")
        return self

    def build(self, default_min_volume: float) -> Detector:
        return MedianMAD(**self._kwargs(default_min_volume))


class BinomialLLRParams(AlgorithmParams):
    ratio: float = Field(default=3.0, gt=1, description="shift to detect: p0 x ratio ...")
    delta: float = Field(default=0.01, ge=0, description="... or p0 + delta, the larger")
    alpha: float = Field(default=0.02, gt=0, le=1)
    floor: float = Field(default=0.001, gt=0, lt=1)
    warmup: int = Field(default=8, ge=1)
    learn_limit: float = Field(default=8.0, gt=0)
    max_skip: int = Field(default=240, ge=1)

    def build(self, default_min_volume: float) -> Detector:
        return BinomialLLR(**self._kwargs(default_min_volume))


class SeasonalEWMAParams(AlgorithmParams):
    alpha: float = Field(default=0.1, gt=0, le=1)
    season_alpha: float = Field(default=0.3, gt=0, le=1, description="per day")
    period_s: float = Field(default=86_400.0, gt=0)
    slots: int = Field(default=24, ge=1, le=168)
    blend: float = Field(default=0.5, ge=0, le=1)
    min_days: int = Field(default=2, ge=1)
    warmup: int = Field(default=10, ge=1)
    rel_floor: float = Field(default=0.1, ge=0)
    abs_floor: float = Field(default=1e-9, ge=0)
    clip: float = Field(default=3.0, gt=0)
    learn_limit: float = Field(default=4.0, gt=0)
    max_skip: int = Field(default=240, ge=1)
    direction: Direction = "up"

    def build(self, default_min_volume: float) -> Detector:
        return SeasonalEWMA(**self._kwargs(default_min_volume))


class StaticParams(AlgorithmParams):
    direction: Direction = "up"

    def build(self, default_min_volume: float) -> Detector:
        return Static(**self._kwargs(default_min_volume))


class ShareSurgeParams(AlgorithmParams):
    alpha: float = Field(default=0.05, gt=0, le=1)
    warmup: int = Field(default=20, ge=1)
    min_ratio: float = Field(default=2.0, ge=1)
    learn_limit: float = Field(default=4.0, gt=0)
    max_skip: int = Field(default=240, ge=1)

    def build(self, default_min_volume: float) -> Detector:
        return ShareSurge(**self._kwargs(default_min_volume))


class BurnRule(_Frozen):
    long_s: float = Field(gt=0)
    short_s: float = Field(gt=0)
    factor: float = Field(gt=0)


class BurnRateParams(AlgorithmParams):
    slo: float = Field(default=0.999, gt=0, lt=1, description="e.g. 0.999 = 99.9 % succeed")
    rules: tuple[BurnRule, ...] = tuple(
        BurnRule(long_s=lo, short_s=sh, factor=f) for lo, sh, f in DEFAULT_BURN_RULES
    )
    min_requests: float = Field(default=20.0, ge=0, description="in the short window")

    def build(self, default_min_volume: float) -> Detector:
        rules = [(r.long_s, r.short_s, r.factor) for r in self.rules]
        return BurnRate(slo=self.slo, rules=rules, min_requests=self.min_requests)


class PriceIndexParams(AlgorithmParams):
    alpha: float = Field(default=0.05, gt=0, le=1)
    warmup: int = Field(default=10, ge=2)
    rel_floor: float = Field(default=0.05, gt=0)
    ridge: float = Field(default=1e-3, ge=0)
    learn_limit: float = Field(default=4.0, gt=0)
    max_skip: int = Field(default=240, ge=1)

    def build(self, default_min_volume: float) -> Detector:
        return PriceIndex(**self._kwargs(default_min_volume))

    def inputs(self) -> tuple[str, ...]:
        return PriceIndex.inputs


class PeerGroupParams(AlgorithmParams):
    group_by: str = "workflow"
    alpha: float = Field(default=0.05, gt=0, le=1)
    warmup: int = Field(default=10, ge=1)
    min_peers: int = Field(default=3, ge=1)
    min_scale: float = Field(default=0.5, gt=0)

    def build(self, default_min_volume: float) -> Detector:
        return PeerGroup(**self._kwargs(default_min_volume))

    def inputs(self) -> tuple[str, ...]:
        return (self.group_by,)


class HalfSpaceTreesParams(AlgorithmParams):
    features: tuple[str, ...] = Field(min_length=1)
    n_trees: int = Field(default=10, ge=1, le=100)
    height: int = Field(default=6, ge=1, le=16)
    window_size: int = Field(default=100, ge=2)
    max_series: int = Field(default=500, ge=1, le=10_000)
    seed: int = 42

    def build(self, default_min_volume: float) -> Detector:
        return HalfSpaceTreesAdapter(**self._kwargs(default_min_volume))

    def inputs(self) -> tuple[str, ...]:
        return self.features


#: Algorithm name -> its parameter model (whose ``build`` constructs the detector).
ALGORITHMS: dict[str, type[AlgorithmParams]] = {
    "robust_ewma": RobustEWMAParams,
    "median_mad": MedianMADParams,
    "binomial_llr": BinomialLLRParams,
    "seasonal_ewma": SeasonalEWMAParams,
    "static": StaticParams,
    "share_surge": ShareSurgeParams,
    "burn_rate": BurnRateParams,
    "price_index": PriceIndexParams,
    "peer_group": PeerGroupParams,
    "half_space_trees": HalfSpaceTreesParams,
}

Algorithm = Literal[
    "robust_ewma",
    "median_mad",
    "binomial_llr",
    "seasonal_ewma",
    "static",
    "share_surge",
    "burn_rate",
    "price_index",
    "peer_group",
    "half_space_trees",
]


class CusumSpec(_Frozen):
    """Accumulate the algorithm's z-scores with a one-sided CUSUM (see
    :mod:`gatewarden.detect.change`); the filter's threshold then applies to the sum."""

    k: float = Field(default=1.0, ge=0, description="allowance subtracted every tick")
    cap: float = Field(default=4.0, gt=0, description="largest step one tick can add")
    hold: float = Field(default=6.0, gt=0, description="sum above which the baseline freezes")
    s_max: float = Field(default=40.0, gt=0, description="ceiling of the sum")
    max_hold: int = Field(default=240, ge=1, description="frozen ticks before accepting")
    drain: float = Field(default=1.0, ge=0, description="drop per tick without a judgement")
    recent: float = Field(
        default=0.5, ge=0, lt=1, description="decay of the still-happening evidence gate"
    )

    @model_validator(mode="after")
    def _ordered(self) -> CusumSpec:
        if self.cap <= self.k:
            raise ValueError("cap must exceed k")
        if self.s_max < self.hold:
            raise ValueError("s_max must be at least hold")
        return self
