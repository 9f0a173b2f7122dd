"""Anomaly detection: the detector contract, detectors, filters, YAML specs and the stage."""

from __future__ import annotations

from gatewarden.detect.basic import Log, Static
from gatewarden.detect.binomial import BinomialLLR
from gatewarden.detect.change import Cusum
from gatewarden.detect.contract import Baseline, FrameTick, SeriesIndex, SeriesState
from gatewarden.detect.filters import NOfM, Threshold
from gatewarden.detect.hst import HalfSpaceTreesAdapter
from gatewarden.detect.peer import PeerGroup
from gatewarden.detect.price import PriceIndex
from gatewarden.detect.rates import BurnRate, ShareSurge
from gatewarden.detect.robust import MedianMAD, RobustEWMA
from gatewarden.detect.seasonal import SeasonalEWMA
from gatewarden.detect.sessions import SESSION_LABELS, SESSION_METRICS, SessionFeatures
from gatewarden.detect.spec import (
    ALGORITHMS,
    DETECT_LEVELS,
    CusumSpec,
    DetectorSpec,
    FilterSpec,
    NOfMSpec,
    level_metrics,
    load_detector_specs,
    parse_detector_specs,
)
from gatewarden.detect.stage import DetectStage
from gatewarden.detect.yaml_lines import locate

__all__ = [
    "ALGORITHMS",
    "DETECT_LEVELS",
    "SESSION_LABELS",
    "SESSION_METRICS",
    "Baseline",
    "BinomialLLR",
    "BurnRate",
    "Cusum",
    "CusumSpec",
    "DetectStage",
    "DetectorSpec",
    "FilterSpec",
    "FrameTick",
    "HalfSpaceTreesAdapter",
    "Log",
    "MedianMAD",
    "NOfM",
    "NOfMSpec",
    "PeerGroup",
    "PriceIndex",
    "RobustEWMA",
    "SeasonalEWMA",
    "SeriesIndex",
    "SeriesState",
    "SessionFeatures",
    "ShareSurge",
    "Static",
    "Threshold",
    "level_metrics",
    "load_detector_specs",
    "locate",
    "parse_detector_specs",
]
