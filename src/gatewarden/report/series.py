"""The series behind an incident, recorded while it is open, for report charts and impact.

The event log holds decisions, not observations, and :class:`SeriesHistory` forgets after an
hour; so :class:`SeriesRecorder` (a pipeline stage placed after ``correlate``) copies, for each
open incident, the values it will need later: each member alert's metric on the alert's scope,
and the impact metrics (requests, errors, cost, p95 latency and TTFT) on the incident's scope,
plus a lookback of the ticks before each series joined, taken from ``SeriesHistory``.

Storage is the store's keyed state ``series:{incident_id}`` (one compact JSON document per
incident), not events, because:

* these are observations, one per tick per series: as events they would outnumber every
  decision of the incident and every projection, report and console read of
  ``store.events(incident_id=...)`` would wade through them;
* events are immutable, so they cannot be bounded; the document keeps at most ``max_points``
  per series and ``max_series`` series (oldest points are dropped and counted);
* they are re-derivable evidence, not decisions: a lost document costs charts, and the report
  then says the impact is not known instead of inventing it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gatewarden.aggregate import (
    ADDITIVE,
    GATEWAY_PROVIDER,
    LEVELS,
    METRICS,
    SeriesHistory,
    level_for,
)
from gatewarden.errors import StoreError
from gatewarden.models import Event, EventType, scope_key
from gatewarden.protocols import Store, Tick
from gatewarden.report.seriesdoc import (
    IncidentSeries,
    Series,
    alert_series_id,
    impact_id,
    load_series,
    state_name,
)

__all__ = [
    "AFFECTED_LABELS",
    "IncidentSeries",
    "Series",
    "SeriesRecorder",
    "alert_series_id",
    "impact_id",
    "load_series",
    "state_name",
]

log = logging.getLogger(__name__)

#: The metric an alert kind watches when its evidence names none that the frames carry.
KIND_METRICS: dict[str, str] = {
    "error_rate": "error_rate",
    "ttft": "ttft_p95",
    "cost": "cost",
    "agent_loop": "requests",
    "fallback_storm": "fallback_ratio",
    "traffic": "requests",
}
#: Recorded on the incident's scope for the impact figures.
IMPACT_METRICS: tuple[str, ...] = ("requests", "errors", "cost", "latency_p95", "ttft_p95")
#: Recorded on all traffic too: a failover or a retry storm spends money outside the scope.
GLOBAL_METRICS: tuple[str, ...] = ("requests", "errors", "cost")
#: Scope labels whose distinct values are counted as "affected".
AFFECTED_LABELS: tuple[str, ...] = ("api_key", "team", "workflow")
#: Alert kinds whose affected requests are the failed ones (others: every request in scope).
_FAILURE_KINDS = frozenset({"error_rate"})


def alert_metric(kind: str, evidence: object) -> str | None:
    """The frame metric behind an alert: its evidence's metric if the frames have it."""
    metric = evidence.get("metric") if isinstance(evidence, Mapping) else None
    if isinstance(metric, str) and metric in METRICS:
        return metric
    return KIND_METRICS.get(kind)


@dataclass
class _Member:
    fingerprint: str
    kind: str
    scope: dict[str, str]
    metric: str | None


@dataclass
class _Open:
    incident_id: str
    scope: dict[str, str]
    members: dict[str, _Member] = field(default_factory=dict)
    doc: IncidentSeries | None = None


#: Ticks of history an incident's charts start with (their baseline before it opened).
LOOKBACK_TICKS = 40


class SeriesRecorder:
    """Pipeline stage (after ``correlate``): records the series of every open incident."""

    name = "series"

    def __init__(
        self,
        store: Store,
        history: SeriesHistory | None = None,
        *,
        lookback_ticks: int = LOOKBACK_TICKS,
        max_points: int = 960,
        max_series: int = 16,
        max_names: int = 200,
    ) -> None:
        if lookback_ticks < 0 or max_points < 1 or max_series < 1 or max_names < 1:
            raise ValueError("lookback_ticks >= 0 and positive bounds are required")
        self._store = store
        self._history = history
        self.lookback_ticks = lookback_ticks
        self.max_points = max_points
        self.max_series = max_series
        self.max_names = max_names
        self._open: dict[str, _Open] = {}
        #: fingerprint -> metric of alerts fired and not yet resolved
        self._metrics: dict[str, str] = {}
        self._restore()

    def open_incidents(self) -> list[str]:
        return list(self._open)

    # -- tick ---------------------------------------------------------------------------------
    def run(self, tick: Tick) -> None:
        closing = self._observe(tick.events)
        if not self._open:
            return
        probe = SeriesHistory(maxlen=1)
        probe.push(tick.now, tick.frames)
        for incident in self._open.values():
            doc = self._doc(incident)
            for series_id, role, metric, scope, kind in self._specs(incident):
                series = doc.get(series_id)
                if series is None:
                    if len(doc.series) >= self.max_series:
                        doc.skipped_series += 1
                        continue
                    series = Series(id=series_id, role=role, metric=metric, scope=scope, kind=kind)
                    self._backfill(series)
                    doc.series.append(series)
                elif self._gap(series):
                    self._backfill(series)  # reopened, or restarted: fill the missed ticks
                series.add(tick.now, _value(probe, metric, scope), self.max_points)
            self._count_affected(incident, doc, tick.records)
            try:
                self._store.put_state(state_name(incident.incident_id), doc.model_dump_json())
            except StoreError as exc:
                # Charts are evidence, not decisions: a lost write must not stop the tick (the
                # points stay in memory and go out with the next write).
                log.warning("cannot record the series of %s: %s", incident.incident_id, exc)
        for incident_id in closing:
            self._open.pop(incident_id, None)

    def _doc(self, incident: _Open) -> IncidentSeries:
        if incident.doc is None:
            incident.doc = load_series(self._store, incident.incident_id) or IncidentSeries(
                incident_id=incident.incident_id
            )
        return incident.doc

    def _specs(self, incident: _Open) -> Iterable[tuple[str, str, str, dict[str, str], str]]:
        for member in incident.members.values():
            if member.metric is not None and _has_level(member.scope):
                yield (
                    alert_series_id(member.fingerprint, member.metric),
                    "alert",
                    member.metric,
                    member.scope,
                    member.kind,
                )
        if _has_level(incident.scope):
            for metric in IMPACT_METRICS:
                yield impact_id(metric, incident.scope), "impact", metric, incident.scope, ""
        if incident.scope:
            for metric in GLOBAL_METRICS:
                yield impact_id(metric, {}), "impact", metric, {}, ""

    def _gap(self, series: Series) -> bool:
        previous = self._history.entry(1) if self._history is not None else None
        return previous is not None and bool(series.t) and series.t[-1] < previous.ts

    def _backfill(self, series: Series) -> None:
        """The kept ticks the series lacks, oldest first: before it joined (the baseline of the
        figures), or while its incident was resolved before reopening."""
        if self._history is None:
            return
        for ago in range(min(self.lookback_ticks, len(self._history)) - 1, -1, -1):
            entry = self._history.entry(ago)
            if entry is None:
                continue
            value = _value(self._history, series.metric, series.scope, ago=ago)
            series.add(entry.ts, value, self.max_points)

    def _count_affected(self, incident: _Open, doc: IncidentSeries, records: pd.DataFrame) -> None:
        if records.empty:
            return
        hit = np.zeros(len(records), dtype=bool)
        failed = ((records["status"] >= 500) | (records["status"] == 429)) & (
            records["provider"] != GATEWAY_PROVIDER
        )
        for member in incident.members.values():
            if not member.scope or any(label not in records for label in member.scope):
                continue
            mask = np.ones(len(records), dtype=bool)
            for label, value in member.scope.items():
                mask &= (records[label] == value).to_numpy(dtype=bool)
            if member.kind in _FAILURE_KINDS:
                mask &= failed.to_numpy(dtype=bool)
            hit |= mask
        if not hit.any():
            return
        rows = records[hit]
        for label in AFFECTED_LABELS:
            if label not in rows:
                continue
            counts = doc.affected.setdefault(label, {})
            for name, count in rows[label].dropna().astype(str).value_counts().items():
                key = str(name)
                if key in counts or len(counts) < self.max_names:
                    counts[key] = counts.get(key, 0) + int(count)
                else:
                    doc.affected_overflow[label] = doc.affected_overflow.get(label, 0) + int(count)

    # -- which incidents are open, and their members --------------------------------------------
    def _observe(self, events: Sequence[Event]) -> list[str]:
        """Fold this tick's events; returns incidents resolved this tick (recorded once more)."""
        closing: list[str] = []
        for event in events:
            if self._apply(event):
                closing.append(str(event.incident_id))
        return closing

    def _apply(self, event: Event) -> bool:
        p, iid = event.payload, event.incident_id
        fp = str(p.get("fingerprint", ""))
        if event.type is EventType.ALERT_FIRED and fp:
            # Fired before it is routed (no incident id yet): remember what it measures.
            metric = alert_metric(str(p.get("kind", "")), p.get("evidence"))
            if metric is not None:
                self._metrics[fp] = metric
            return False
        if event.type is EventType.ALERT_RESOLVED:
            self._metrics.pop(fp, None)
        if iid is None:
            return False
        if event.type is EventType.INCIDENT_OPENED:
            scope = _labels(p.get("scope"))
            self._open[iid] = _Open(iid, scope)
            kinds = p.get("kinds") or [""]
            self._join(self._open[iid], str(p.get("root_cause", "")), str(kinds[0]), scope)
        elif event.type is EventType.INCIDENT_REOPENED and iid not in self._open:
            self._rebuild(iid)
        incident = self._open.get(iid)
        if incident is None:
            return False
        if event.type in (EventType.ALERT_GROUPED, EventType.ALERT_INHIBITED):
            self._join(incident, fp, str(p.get("kind", "")), _labels(p.get("scope")))
            if p.get("root_cause"):
                incident.scope = _labels(p.get("incident_scope")) or incident.scope
        return event.type is EventType.INCIDENT_RESOLVED

    def _join(self, incident: _Open, fp: str, kind: str, scope: dict[str, str]) -> None:
        if fp and fp not in incident.members:
            metric = self._metrics.get(fp) or KIND_METRICS.get(kind)
            incident.members[fp] = _Member(fp, kind, scope, metric)

    def _rebuild(self, incident_id: str) -> None:
        """Members and scope of an incident from the log (restart, or reopened after close)."""
        for event in self._store.events(incident_id=incident_id, types=_MEMBER_TYPES):
            self._apply(event)

    def _restore(self) -> None:
        """After a restart, keep recording the incidents that are still open."""
        for event in self._store.events(types=[EventType.ALERT_FIRED, EventType.ALERT_RESOLVED]):
            self._apply(event)
        status: dict[str, bool] = {}
        for event in self._store.events(types=_LIFECYCLE_TYPES):
            if event.incident_id is not None:
                status[event.incident_id] = event.type is not EventType.INCIDENT_RESOLVED
        for incident_id, is_open in status.items():
            if is_open:
                self._rebuild(incident_id)


_LIFECYCLE_TYPES = [
    EventType.INCIDENT_OPENED,
    EventType.INCIDENT_REOPENED,
    EventType.INCIDENT_RESOLVED,
]
_MEMBER_TYPES = [EventType.INCIDENT_OPENED, EventType.ALERT_GROUPED, EventType.ALERT_INHIBITED]


def _labels(scope: object) -> dict[str, str]:
    if not isinstance(scope, Mapping):
        return {}
    return {str(k): str(v) for k, v in scope.items()}


def _value(
    history: SeriesHistory, metric: str, scope: Mapping[str, str], *, ago: int = 0
) -> float | None:
    """The metric at that tick; an additive metric of a scope without rows in a tick that has
    its level is 0 (no requests), not unknown: after a failover the provider gets no traffic."""
    entry = history.entry(ago)
    if entry is None:
        return None
    level = level_for(scope)
    frame = entry.frames.get(level)
    if frame is None:
        return None
    if set(scope) == set(LEVELS[level]):
        # The scope names one series of its level: read its row by the canonical key, which is
        # the frame's index (measured ~30x faster than the label-mask query on every tick).
        try:
            row = frame.index.get_loc(scope_key(scope))
        except KeyError:
            return 0.0 if metric in ADDITIVE else None
        if not isinstance(row, int):
            return history.query(metric, scope, level, ago=ago)  # a duplicated key: combine
        found = float(frame[metric].to_numpy(dtype=np.float64)[row])
        return None if math.isnan(found) else found
    value = history.query(metric, scope, level, ago=ago)
    if value is None and metric in ADDITIVE:
        return 0.0
    return value


def _has_level(scope: Mapping[str, str]) -> bool:
    try:
        level_for(scope)
    except ValueError:
        return False  # e.g. {"source": ...} of a gateway_unreachable alert: no frame has it
    return True
