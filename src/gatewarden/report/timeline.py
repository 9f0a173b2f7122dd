"""An incident's timeline and response figures, derived from the event store alone.

The incident's events and its playbook runs' events share ``incident_id``, so one
``store.events(incident_id=...)`` read yields everything; the figures are computed from it:

* **time to detect** — earliest anomalous tick of any member alert (``first_anomalous_ts`` on
  ``alert.fired``, else the fired time) → ``incident.opened``;
* **time to acknowledge** — ``incident.opened`` → first ``approval.granted`` or
  ``incident.acknowledged`` (a human taking it on, either way);
* **time to mitigate** — ``incident.opened`` → first ``incident.mitigated``;
* **time to resolve** — ``incident.opened`` → ``incident.resolved`` (the last one, if reopened).

Acknowledge/mitigate/resolve are measured from the page (``incident.opened``), as on-call tools
do; detection covers the time before it, and ``impact_duration_s`` the whole span.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gatewarden.errors import GatewardenError
from gatewarden.models import ActionRun, Event, EventType, Incident
from gatewarden.notify.messages import (
    AlertLookup,
    build_message,
    describe_scope,
    evidence_fields,
    fmt_duration,
)
from gatewarden.notify.redact import redact
from gatewarden.projections import incident_from_events, run_from_events
from gatewarden.protocols import Store

#: Bookkeeping events that say nothing about the incident itself.
_SKIPPED = frozenset(
    {
        EventType.NOTIFICATION_QUEUED,
        EventType.NOTIFICATION_DELIVERED,
        EventType.NOTIFICATION_FAILED,
        EventType.REPORT_WRITTEN,
        EventType.ALERT_UPDATED,
    }
)
_DECIDERS = frozenset(
    {EventType.APPROVAL_GRANTED, EventType.APPROVAL_DENIED, EventType.INCIDENT_ACKNOWLEDGED}
)


class IncidentNotFound(GatewardenError):
    """No ``incident.opened`` event exists for the requested incident id."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TimelineEntry(_Frozen):
    ts: float
    type: str
    summary: str
    actor: str
    seq: int | None = None


class Figures(_Frozen):
    first_anomalous_at: float | None = None
    opened_at: float
    acknowledged_at: float | None = None
    mitigated_at: float | None = None
    resolved_at: float | None = None
    time_to_detect_s: float | None = Field(default=None, description="first anomaly → opened")
    time_to_acknowledge_s: float | None = Field(default=None, description="opened → first ack")
    time_to_mitigate_s: float | None = Field(default=None, description="opened → mitigated")
    time_to_resolve_s: float | None = Field(default=None, description="opened → resolved")
    impact_duration_s: float | None = Field(default=None, description="first anomaly → resolved")


class Timeline(_Frozen):
    incident: Incident
    entries: tuple[TimelineEntry, ...]
    figures: Figures
    impact: dict[str, str] = Field(default_factory=dict)
    runs: tuple[ActionRun, ...] = ()
    notifications: dict[str, int] = Field(default_factory=dict)
    last_seq: int = 0


def _alert_text(p: Mapping[str, Any]) -> str:
    return f"{p.get('kind', '?')} on {describe_scope(p.get('scope'))}"


def summarize(event: Event, *, alert_lookup: AlertLookup | None = None) -> str:
    """One human line per event (reusing the notification wording where there is one)."""
    p = event.payload
    t = event.type
    if t is EventType.ALERT_FIRED:
        fields = evidence_fields(p.get("evidence"))
        line = f"alert fired: {_alert_text(p)}"
        if "Observed" in fields and "Expected" in fields:
            line += f" (observed {fields['Observed']} vs expected {fields['Expected']}"
            line += f" over {fields['Window']})" if "Window" in fields else ")"
        return redact(line)
    if t is EventType.ALERT_RESOLVED:
        reason = f" ({p['reason']})" if p.get("reason") else ""
        return redact(f"alert resolved: {_alert_text(p)}{reason}")
    if t is EventType.ALERT_INHIBITED:
        return redact(f"alert inhibited: {_alert_text(p)} by {p.get('by', '?')}")
    message = build_message(event, alert_lookup=alert_lookup)
    if message is None:
        return redact(t.value)
    first_line = message.text.strip().splitlines()[0] if message.text.strip() else ""
    return f"{message.title} — {first_line}" if first_line else message.title


def _actor(event: Event, playbooks: Mapping[str, str]) -> str:
    p = event.payload
    if event.type in _DECIDERS:
        return redact(str(p.get("by") or "unknown"))
    if event.type.value.startswith("alert.") and p.get("detector"):
        return f"detector:{p['detector']}"
    run_id = event.run_id or (
        p.get("run_id") if event.type is EventType.INCIDENT_MITIGATED else None
    )
    if run_id:
        return f"playbook:{playbooks.get(str(run_id), run_id)}"
    return "gatewarden"


def _first(events: Iterable[Event], types: frozenset[EventType]) -> float | None:
    return min((e.ts for e in events if e.type in types), default=None)


def _since(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else max(0.0, end - start)


def _impact(incident: Incident, fired: list[Event], events: list[Event]) -> dict[str, str]:
    impact: dict[str, str] = {}
    root = next(
        (e.payload for e in fired if e.payload.get("fingerprint") == incident.root_cause), None
    )
    if root is not None:
        impact["Root cause"] = _alert_text(root)
        impact.update(evidence_fields(root.get("evidence")))
    scopes = sorted({describe_scope(e.payload.get("scope")) for e in fired})
    if scopes:
        impact["Affected scopes"] = "; ".join(scopes)
    for event in events:  # writers may attach an explicit impact mapping to any event
        extra = event.payload.get("impact")
        if isinstance(extra, Mapping):
            impact.update({str(k): redact(str(v)) for k, v in extra.items()})
    return impact


def timeline_from_events(events: Iterable[Event]) -> Timeline:
    """Build the timeline from one incident's events (any order; sorted by ts, then seq)."""
    ordered = sorted(events, key=lambda e: (e.ts, e.seq or 0))
    incident = incident_from_events(sorted(ordered, key=lambda e: e.seq or 0))
    if incident is None:
        raise IncidentNotFound("no incident.opened event in the given events")
    members = set(incident.alerts)
    fired = [
        e
        for e in ordered
        if e.type is EventType.ALERT_FIRED and e.payload.get("fingerprint") in members
    ]
    anomalous = [float(e.payload.get("first_anomalous_ts") or e.ts) for e in fired]
    first_anomalous = min(anomalous, default=None)
    acknowledged = _first(ordered, frozenset({EventType.APPROVAL_GRANTED}))
    if incident.acknowledged_at is not None:
        acknowledged = min(x for x in (acknowledged, incident.acknowledged_at) if x is not None)
    figures = Figures(
        first_anomalous_at=first_anomalous,
        opened_at=incident.opened_at,
        acknowledged_at=acknowledged,
        mitigated_at=incident.mitigated_at,
        resolved_at=incident.resolved_at,
        time_to_detect_s=_since(first_anomalous, incident.opened_at),
        time_to_acknowledge_s=_since(incident.opened_at, acknowledged),
        time_to_mitigate_s=_since(incident.opened_at, incident.mitigated_at),
        time_to_resolve_s=_since(incident.opened_at, incident.resolved_at),
        impact_duration_s=_since(first_anomalous or incident.opened_at, incident.resolved_at),
    )
    playbooks = {
        str(e.run_id): str(e.payload.get("playbook", "?"))
        for e in ordered
        if e.type is EventType.PLAYBOOK_STARTED and e.run_id
    }
    runs = []
    for run_id in playbooks:
        run = run_from_events(e for e in ordered if e.run_id == run_id)
        if run is not None:
            runs.append(run)
    notifications = {
        kind: sum(1 for e in ordered if e.type is type_)
        for kind, type_ in (
            ("queued", EventType.NOTIFICATION_QUEUED),
            ("delivered", EventType.NOTIFICATION_DELIVERED),
            ("failed", EventType.NOTIFICATION_FAILED),
        )
    }

    def lookup(fingerprint: str) -> Mapping[str, Any] | None:
        return next((e.payload for e in fired if e.payload.get("fingerprint") == fingerprint), None)

    entries = tuple(
        TimelineEntry(
            ts=e.ts,
            type=e.type.value,
            summary=summarize(e, alert_lookup=lookup),
            actor=_actor(e, playbooks),
            seq=e.seq,
        )
        for e in ordered
        if e.type not in _SKIPPED
    )
    return Timeline(
        incident=incident,
        entries=entries,
        figures=figures,
        impact=_impact(incident, fired, ordered),
        runs=tuple(runs),
        notifications=notifications,
        # Our own report.written records must not make the same state look new.
        last_seq=max(
            (e.seq or 0 for e in ordered if e.type is not EventType.REPORT_WRITTEN), default=0
        ),
    )


def build_timeline(store: Store, incident_id: str) -> Timeline:
    """The timeline of one incident as stored now."""
    events = store.events(incident_id=incident_id)
    if not any(e.type is EventType.INCIDENT_OPENED for e in events):
        raise IncidentNotFound(f"incident {incident_id!r} not found in the event store")
    return timeline_from_events(events)


def describe_figure(seconds: float | None) -> str:
    """Human form of a figure: ``2m``, ``—`` when the milestone was never reached."""
    return "—" if seconds is None else fmt_duration(seconds)
