"""Helpers shared by the detector tests: one-value-per-series ticks, and counting hashes."""

from __future__ import annotations

import numpy as np
import pytest

from gatewarden.detect import fingerprints as fingerprints_module
from gatewarden.protocols import Detector, SeriesTick


def tick(*values: float, keys: tuple[str, ...] = ("a", "b")) -> SeriesTick:
    vals = np.array(values, dtype=np.float64)
    return SeriesTick(ts=0.0, keys=keys[: len(vals)], values=vals, volumes=np.ones(len(vals)))


def feed(detector: Detector, values: list[float], key: str = "a") -> list[float]:
    """Score then learn each value of one series; the scores."""
    out = []
    for v in values:
        x = tick(v, keys=(key,))
        out.append(float(detector.score_one(x)[0]))
        detector.learn_one(x)
    return out


def count_hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The scope keys whose alert fingerprint gets hashed from now on, in order."""
    hashed: list[str] = []
    real = fingerprints_module.alert_fingerprint

    def counting(kind: str, key: str) -> str:
        hashed.append(key)
        return real(kind, key)

    monkeypatch.setattr(fingerprints_module, "alert_fingerprint", counting)
    return hashed
