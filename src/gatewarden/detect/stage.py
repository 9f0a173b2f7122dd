"""The detect stage: level frames -> scores -> alerts (and the set of healthy series)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gatewarden.aggregate import LEVELS, SeriesHistory
from gatewarden.detect.contract import Baseline, IntArray, SeriesState
from gatewarden.detect.spec import DetectorSpec
from gatewarden.models import Alert, Evidence
from gatewarden.protocols import Detector, Filter, FloatArray, SeriesTick, Tick

log = logging.getLogger(__name__)


@dataclass
class _Running:
    spec: DetectorSpec
    detector: Detector
    filter: Filter
    #: per-series alert fingerprints, hashed once per series rather than once per tick
    fingerprints: SeriesState = field(default_factory=SeriesState)

    def __post_init__(self) -> None:
        self.fingerprints.add("fp", fill="", dtype=object)

    def fingerprints_of(self, keys: list[str], positions: IntArray) -> set[str]:
        slots = self.fingerprints.ensure(keys)
        table = self.fingerprints["fp"]
        new = slots[table[slots] == ""]
        for slot in np.unique(new):
            key = self.fingerprints.index.key(int(slot))
            table[slot] = _fingerprint(self.spec.kind, key)
        return set(table[slots[positions]].tolist())


class DetectStage:
    """Runs every enabled spec over its level's frame.

    For each spec: score -> filter -> one :class:`Alert` per firing series appended to
    ``tick.alerts``; fingerprints of series that were judged (finite score) and did not fire go
    to ``tick.clear``; then the detector learns the tick. A fingerprint firing under one spec is
    never reported clear by another spec of the same kind. Frames are also pushed to
    ``history`` for playbook verification.
    """

    name = "detect"

    def __init__(self, specs: Sequence[DetectorSpec], *, history: SeriesHistory | None) -> None:
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError("detector names must be unique")
        self.history = history
        self._running = [
            _Running(spec, spec.build_detector(), spec.build_filter())
            for spec in specs
            if spec.enabled
        ]

    @property
    def specs(self) -> list[DetectorSpec]:
        return [running.spec for running in self._running]

    def run(self, tick: Tick) -> None:
        if self.history is not None:
            self.history.push(tick.now, tick.frames)
        clear: set[str] = set()
        for running in self._running:
            frame = tick.frames.get(running.spec.level)
            if frame is None:
                log.debug("%s: no %s frame this tick", running.spec.name, running.spec.level)
                continue
            clear |= self._run_one(running, frame, tick)
        firing = {alert.fingerprint for alert in tick.alerts}
        tick.clear |= clear - firing

    def _run_one(self, running: _Running, frame: pd.DataFrame, tick: Tick) -> set[str]:
        spec = running.spec
        # to_numpy(object).tolist() stays in C; iterating a pandas Index boxes every key
        keys: list[str] = frame.index.to_numpy(dtype=object).tolist()
        x = SeriesTick(
            ts=tick.now,
            keys=keys,
            values=frame[spec.metric].to_numpy(dtype=np.float64, na_value=np.nan),
            volumes=frame[spec.volume].to_numpy(dtype=np.float64, na_value=np.nan),
        )
        scores = running.detector.score_one(x)
        fires = running.filter.fires(scores, x)
        expected = _expected(running.detector, x)
        window = tick.now - tick.start
        for i in np.flatnonzero(fires):
            tick.alerts.append(_alert(spec, frame, int(i), x, scores, expected, tick.now, window))
        healthy = np.flatnonzero(np.isfinite(scores) & ~fires)
        running.detector.learn_one(x)
        return running.fingerprints_of(keys, healthy)


def _expected(detector: Detector, x: SeriesTick) -> FloatArray:
    if isinstance(detector, Baseline):
        return detector.expected(x)
    return np.full(len(x.keys), np.nan)


def _fingerprint(kind: str, key: str) -> str:
    """Same value as ``gatewarden.models.fingerprint(kind, scope)``: frame index keys are
    already the canonical ``scope_key(scope)`` (tested), so the scope dict need not be built."""
    return hashlib.sha256(f"{kind}|{key}".encode()).hexdigest()[:16]


def _alert(
    spec: DetectorSpec,
    frame: pd.DataFrame,
    i: int,
    x: SeriesTick,
    scores: FloatArray,
    expected: FloatArray,
    now: float,
    window: float,
) -> Alert:
    row = frame.iloc[i]
    scope = {label: str(row[label]) for label in LEVELS[spec.level] if pd.notna(row[label])}
    observed, volume, score = float(x.values[i]), float(x.volumes[i]), float(scores[i])
    baseline = float(expected[i])
    detail = (
        f"{spec.metric} {_fmt(spec.metric, observed)} vs baseline {_fmt(spec.metric, baseline)}"
        f" (score {score:.1f}, {spec.volume} {volume:g})"
    )
    evidence = Evidence(
        metric=spec.metric,
        observed=observed,
        expected=baseline,
        score=score,
        window_s=window,
        volume=volume,
        detail=detail,
    )
    return Alert(
        kind=spec.kind,
        scope=scope,
        detector=spec.name,
        ts=now,
        severity=spec.severity,
        evidence=evidence,
    )


def _fmt(metric: str, value: float) -> str:
    if np.isnan(value):
        return "n/a"
    if metric.endswith(("_rate", "_ratio")):
        return f"{value:.1%}"
    return f"{value:.4g}"
