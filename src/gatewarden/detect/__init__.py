"""Anomaly detection: the detector contract, robust detectors, filters, specs and the stage."""

from __future__ import annotations

from gatewarden.detect.contract import Baseline, SeriesIndex, SeriesState
from gatewarden.detect.filters import NOfM, Threshold
from gatewarden.detect.robust import MedianMAD, RobustEWMA
from gatewarden.detect.spec import (
    ALGORITHMS,
    DetectorSpec,
    FilterSpec,
    NOfMSpec,
    load_detector_specs,
    parse_detector_specs,
)
from gatewarden.detect.stage import DetectStage
from gatewarden.detect.yaml_lines import locate

__all__ = [
    "ALGORITHMS",
    "Baseline",
    "DetectStage",
    "DetectorSpec",
    "FilterSpec",
    "MedianMAD",
    "NOfM",
    "NOfMSpec",
    "RobustEWMA",
    "SeriesIndex",
    "SeriesState",
    "Threshold",
    "load_detector_specs",
    "locate",
    "parse_detector_specs",
]
