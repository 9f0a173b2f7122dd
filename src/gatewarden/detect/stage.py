"""The detect stage: level frames -> scores -> alerts (and the set of healthy series)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from gatewarden.aggregate import SeriesHistory
from gatewarden.detect.contract import Baseline, FrameTick, IntArray
from gatewarden.detect.evidence import enrich, evidence
from gatewarden.detect.fingerprints import SeriesFingerprints
from gatewarden.detect.rollup import rollup
from gatewarden.detect.sessions import SessionFeatures
from gatewarden.detect.spec import DETECT_LEVELS, DetectorSpec
from gatewarden.models import Alert
from gatewarden.protocols import Detector, Filter, FloatArray, SeriesTick, Tick
from gatewarden.verdicts import HealthySet

log = logging.getLogger(__name__)

#: A spec's series table is rebuilt (from the tick's series) once it holds more than twice the
#: tick's series and at least this many: sessions churn without end, and a fixed 200k cap let
#: three session specs hold ~150 MB of finished sessions.
_MIN_KEPT_SERIES = 20_000
#: At most this many alerts per spec and tick (the strongest); a storm beyond is logged.
MAX_ALERTS_PER_SPEC = 1000


@dataclass
class _Running:
    spec: DetectorSpec
    detector: Detector
    filter: Filter
    #: the series this spec judged, and their alert fingerprints once someone asks for them
    series: SeriesFingerprints = field(init=False)

    def __post_init__(self) -> None:
        self.series = SeriesFingerprints(self.spec.kind)

    def judge(self, keys: list[str], healthy: IntArray, into: HealthySet) -> None:
        """Hand this tick's healthy series to ``into`` as a mask over the series table."""
        if len(self.series) > max(_MIN_KEPT_SERIES, 2 * len(keys)):
            # a new table: earlier ticks' verdicts keep the old one
            self.series = self.series.keep_only(keys)
        slots = self.series.ensure(keys)
        mask = np.zeros(len(self.series), dtype=bool)
        mask[slots[healthy]] = True
        into.add_judged(self.series, mask)


class DetectStage:
    """Runs every enabled spec over its level's frame.

    For each spec: score -> filter -> one :class:`Alert` per firing series appended to
    ``tick.alerts``; fingerprints of series that were judged (finite score) and did not fire go
    to ``tick.clear``; then the detector learns the tick. A fingerprint firing under one spec is
    never reported clear by another spec of the same kind. Frames are also pushed to
    ``history`` for playbook verification. When a spec uses the ``session`` level, the stage
    derives ``tick.frames["session"]`` from the tick's records first (:class:`SessionFeatures`).
    Alerts then get sample request ids and, for cost, the model behind the change
    (:func:`gatewarden.detect.evidence.enrich`).
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
        uses_sessions = any(r.spec.level == "session" for r in self._running)
        self.sessions = SessionFeatures() if uses_sessions else None
        #: each level's keys list of the previous tick
        self._last_keys: dict[str, list[str]] = {}

    @property
    def specs(self) -> list[DetectorSpec]:
        return [running.spec for running in self._running]

    def run(self, tick: Tick) -> None:
        if self.history is not None:
            self.history.push(tick.now, tick.frames)
        if self.sessions is not None and "session_id" in tick.records.columns:
            tick.frames["session"] = self.sessions.update(tick.records, tick.now)
        alerts: list[Alert] = []
        keys: dict[str, list[str]] = {}
        columns: dict[str, _Columns] = {}
        for running in self._running:
            level = running.spec.level
            frame = tick.frames.get(level)
            if frame is None:
                log.debug("%s: no %s frame this tick", running.spec.name, level)
                continue
            if level not in columns:
                columns[level] = _Columns(frame)
            if level not in keys:
                # one list per level and tick: to_numpy(object).tolist() stays in C, and
                # detectors on the same level then recognise it without a lookup per key
                listed = frame.index.to_numpy(dtype=object).tolist()
                last = self._last_keys.get(level)
                # the same series as last tick (the usual case): hand over last tick's list
                # itself, which every detector's index recognises by identity, instead of
                # each comparing 100k keys
                keys[level] = self._last_keys[level] = last if last == listed else listed
            self._run_one(running, columns[level], keys[level], tick, alerts)
        tick.alerts.extend(enrich(alerts, tick.records))
        # a fingerprint firing under one spec is never clear because another spec judged it
        tick.clear.exclude(alert.fingerprint for alert in tick.alerts)

    def _run_one(
        self,
        running: _Running,
        columns: _Columns,
        keys: list[str],
        tick: Tick,
        alerts: list[Alert],
    ) -> None:
        spec = running.spec
        frame = columns.frame
        x = _series_tick(running.detector, columns, spec, keys, tick.now)
        scores = running.detector.score_one(x)
        passed = running.filter.fires(scores, x)  # call once per tick: filters may count ticks
        tick_s = tick.now - tick.start
        positions = np.flatnonzero(passed)
        if positions.size > MAX_ALERTS_PER_SPEC:
            # an alert storm (every key of a broken gateway): report the strongest, count the
            # rest; they are neither alerts nor healthy this tick
            strongest = np.argsort(-scores[positions], kind="stable")[:MAX_ALERTS_PER_SPEC]
            log.warning(
                "%s: %d series fire, reporting the %d strongest",
                spec.name,
                positions.size,
                MAX_ALERTS_PER_SPEC,
            )
            positions = np.sort(positions[strongest])
        fired: list[tuple[int, Alert]] = []
        if positions.size:
            expected = _expected(running.detector, x)
            windows = _windows(running.detector, x) * tick_s
            labels = DETECT_LEVELS[spec.level]
            label_values = {label: columns.objects(label) for label in labels}
            for i in positions.tolist():
                scope = {
                    label: values[i]
                    for label, values in label_values.items()
                    if isinstance(values[i], str)
                }
                found = evidence(
                    spec.metric,
                    spec.volume,
                    observed=float(x.values[i]),
                    expected=float(expected[i]),
                    score=float(scores[i]),
                    window_s=float(windows[i]),
                    volume=float(x.volumes[i]),
                )
                alert = Alert(
                    kind=spec.kind,
                    scope=scope,
                    detector=spec.name,
                    ts=tick.now,
                    severity=spec.severity,
                    evidence=found,
                )
                fired.append((i, alert))
        healthy = np.flatnonzero(np.isfinite(scores) & ~passed)
        parents, parents_clear = rollup(spec, frame, fired, np.flatnonzero(np.isfinite(scores)))
        # parents first: the correlator then files the children under their cause at once
        alerts.extend(parents)
        alerts.extend(alert for _, alert in fired)
        running.detector.learn_one(x)
        running.judge(keys, healthy, tick.clear)
        tick.clear.update(parents_clear)


class _Columns:
    """One level frame's columns as numpy arrays, converted once per tick for every spec of
    the level (specs share their volume columns, and a pandas column access costs more than
    a detector's arithmetic on a small level)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._floats: dict[str, FloatArray] = {}
        self._objects: dict[str, npt.NDArray[np.object_]] = {}

    def floats(self, name: str) -> FloatArray:
        found = self._floats.get(name)
        if found is None:
            found = self._floats[name] = _floats(self.frame[name])
            found.setflags(write=False)  # shared by the level's specs: none may write it
        return found

    def objects(self, name: str) -> npt.NDArray[np.object_]:
        found = self._objects.get(name)
        if found is None:
            found = self._objects[name] = self.frame[name].to_numpy(dtype=object)
            found.setflags(write=False)
        return found


def _series_tick(
    detector: Detector, columns: _Columns, spec: DetectorSpec, keys: list[str], now: float
) -> SeriesTick:
    values = columns.floats(spec.metric)
    volumes = columns.floats(spec.volume)
    inputs: tuple[str, ...] = tuple(getattr(detector, "inputs", ()))
    if not inputs:
        return SeriesTick(ts=now, keys=keys, values=values, volumes=volumes)
    extra: dict[str, npt.NDArray[np.generic]] = {}
    for name in inputs:
        if name in DETECT_LEVELS[spec.level]:
            extra[name] = columns.objects(name)
        else:
            extra[name] = columns.floats(name)
    return FrameTick(ts=now, keys=keys, values=values, volumes=volumes, columns=extra)


def _floats(column: pd.Series) -> FloatArray:
    # numpy-backed numeric columns convert without pandas' missing-value scan
    if column.dtype.kind in "biuf":
        return column.to_numpy(dtype=np.float64)
    return column.to_numpy(dtype=np.float64, na_value=np.nan)


def _expected(detector: Detector, x: SeriesTick) -> FloatArray:
    if isinstance(detector, Baseline):
        return detector.expected(x)
    return np.full(len(x.keys), np.nan)


def _windows(detector: Detector, x: SeriesTick) -> FloatArray:
    """Ticks of evidence behind each score (1 unless the detector accumulates)."""
    window_ticks = getattr(detector, "window_ticks", None)
    if callable(window_ticks):
        ticks: FloatArray = np.asarray(window_ticks(x), dtype=np.float64)
        return ticks
    return np.ones(len(x.keys))
