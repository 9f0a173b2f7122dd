"""An incident's timeline, response figures and impact, derived from the store alone.

The incident's events and its playbook runs' events share ``incident_id``, so one
``store.events(incident_id=...)`` read yields every decision; the recorded series
(``series:{incident_id}``, see :mod:`gatewarden.report.series`) give the impact. Figures:

* **time to detect** — earliest anomalous tick of any member alert (``first_anomalous_ts`` on
  ``alert.fired``, else the fired time) → ``incident.opened``;
* **time to acknowledge** — ``incident.opened`` → the first human decision: ``approval.granted``
  or ``approval.denied`` (not the ``policy:auto`` grant of an auto-mode playbook), or
  ``incident.acknowledged``;
* **time to mitigate** — ``incident.opened`` → first ``incident.mitigated``;
* **time to resolve** — ``incident.opened`` → ``incident.resolved`` (the last one, if reopened).

Acknowledge/mitigate/resolve are measured from the page (``incident.opened``), as on-call tools
do; detection covers the time before it, and ``impact_duration_s`` the whole span.

Notifications are counted per notifier; the timeline lists only the deliveries that page a human
(incident opened, approval requested, resolved) and every failed attempt, so that a report says
when on-call was reached without repeating every follow-up message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gatewarden.errors import GatewardenError
from gatewarden.models import ActionRun, Event, EventType, Incident
from gatewarden.notify.redact import redact
from gatewarden.projections import incident_from_events, run_from_events
from gatewarden.protocols import Store
from gatewarden.remediate.runlog import AUTO_POLICY
from gatewarden.report.describe import alert_text, evidence_text, scope_text, summarize
from gatewarden.report.impact import Impact, compute_impact
from gatewarden.report.series import IncidentSeries, load_series

#: Bookkeeping events that say nothing about the incident itself.
_SKIPPED = frozenset(
    {EventType.NOTIFICATION_QUEUED, EventType.REPORT_WRITTEN, EventType.ALERT_UPDATED}
)
#: Deliveries of these messages reach a human who has to act (or may stop acting).
_PAGING_KINDS = frozenset({"incident.opened", "approval.requested", "incident.resolved"})
_DECISIONS = frozenset({EventType.APPROVAL_GRANTED, EventType.APPROVAL_DENIED})
#: Synthetic entry type: the earliest anomalous tick (not an event of its own).
FIRST_ANOMALY = "anomaly.first"

_CATEGORIES = {
    "alert": "detection",
    "anomaly": "detection",
    "incident": "incident",
    "playbook": "remediation",
    "approval": "approval",
    "action": "remediation",
    "verification": "remediation",
    "notification": "notification",
}


class IncidentNotFound(GatewardenError):
    """No ``incident.opened`` event exists for the requested incident id."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TimelineEntry(_Frozen):
    ts: float
    type: str
    summary: str
    actor: str
    category: str = ""
    seq: int | None = None
    run_id: str | None = None
    detail: dict[str, str] = Field(default_factory=dict)


class AlertRow(_Frozen):
    fingerprint: str
    kind: str
    scope: str
    detector: str
    severity: str
    first_anomalous_at: float
    fired_at: float
    resolved_at: float | None = None
    evidence: str = ""


class Figures(_Frozen):
    first_anomalous_at: float | None = None
    opened_at: float
    acknowledged_at: float | None = None
    acknowledged_by: str | None = None
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
    impact: Impact
    alerts: tuple[AlertRow, ...] = ()
    runs: tuple[ActionRun, ...] = ()
    #: notifier -> {"queued": n, "delivered": n, "failed": n}
    notifications: dict[str, dict[str, int]] = Field(default_factory=dict)
    last_seq: int = 0

    def notification_totals(self) -> dict[str, int]:
        totals = {"queued": 0, "delivered": 0, "failed": 0}
        for counts in self.notifications.values():
            for name, n in counts.items():
                totals[name] = totals.get(name, 0) + n
        return totals


def _since(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else max(0.0, end - start)


def _actor(event: Event, playbooks: Mapping[str, str]) -> str:
    p = event.payload
    if event.type in _DECISIONS or event.type is EventType.INCIDENT_ACKNOWLEDGED:
        return redact(str(p.get("by") or "unknown"))
    if event.type.value.startswith("alert.") and p.get("detector"):
        return redact(f"detector:{p['detector']}")
    if event.type.value.startswith("notification.") and p.get("notifier"):
        return redact(f"notifier:{p['notifier']}")
    run_id = event.run_id or (
        p.get("run_id") if event.type is EventType.INCIDENT_MITIGATED else None
    )
    if run_id:
        return redact(f"playbook:{playbooks.get(str(run_id), run_id)}")
    return "gatewarden"


def _acknowledged(ordered: list[Event]) -> tuple[float | None, str | None]:
    for event in ordered:
        human = event.type in _DECISIONS and event.payload.get("by") != AUTO_POLICY
        if human or event.type is EventType.INCIDENT_ACKNOWLEDGED:
            return event.ts, redact(str(event.payload.get("by") or "unknown"))
    return None, None


def _accounted(ordered: list[Event]) -> Mapping[str, Any] | None:
    """The correlator's running impact tally: the latest one recorded on the incident."""
    tallies = [
        e.payload["impact"]
        for e in ordered
        if e.type in (EventType.INCIDENT_RESOLVED, EventType.INCIDENT_SEVERITY)
        and isinstance(e.payload.get("impact"), Mapping)
    ]
    return tallies[-1] if tallies else None


def _alert_rows(fired: list[Event], ordered: list[Event]) -> tuple[AlertRow, ...]:
    rows: dict[str, AlertRow] = {}
    for event in fired:
        p = event.payload
        fp = str(p.get("fingerprint"))
        if fp in rows:
            continue
        resolved = next(
            (
                e.ts
                for e in ordered
                if e.type is EventType.ALERT_RESOLVED
                and e.payload.get("fingerprint") == fp
                and e.ts >= event.ts
            ),
            None,
        )
        rows[fp] = AlertRow(
            fingerprint=fp,
            kind=str(p.get("kind", "?")),
            scope=scope_text(p.get("scope")),
            detector=redact(str(p.get("detector", "?"))),
            severity=str(p.get("severity", "?")),
            first_anomalous_at=float(p.get("first_anomalous_ts") or event.ts),
            fired_at=event.ts,
            resolved_at=resolved,
            evidence=redact(evidence_text(p.get("evidence"))),
        )
    return tuple(rows.values())


def _notifications(ordered: list[Event]) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
    counts: dict[str, dict[str, int]] = {}
    kinds: dict[str, str] = {}
    names = {
        EventType.NOTIFICATION_QUEUED: "queued",
        EventType.NOTIFICATION_DELIVERED: "delivered",
        EventType.NOTIFICATION_FAILED: "failed",
    }
    for event in ordered:
        if event.type not in names:
            continue
        notifier = redact(str(event.payload.get("notifier", "?")))
        bucket = counts.setdefault(notifier, {"queued": 0, "delivered": 0, "failed": 0})
        bucket[names[event.type]] += 1
        message = event.payload.get("message")
        if event.type is EventType.NOTIFICATION_QUEUED and isinstance(message, Mapping):
            kinds[str(message.get("id"))] = str(message.get("kind", ""))
    return counts, kinds


def _notification_entry(event: Event, kinds: Mapping[str, str]) -> tuple[str, bool]:
    p = event.payload
    kind = kinds.get(str(p.get("message_id")), "")
    what = kind.replace(".", " ") or "a message"
    if event.type is EventType.NOTIFICATION_DELIVERED:
        return f"notified via {p.get('notifier', '?')}: {what}", kind in _PAGING_KINDS
    retry = "will retry" if p.get("retryable") else "gave up"
    text = f"notification via {p.get('notifier', '?')} failed ({what}, attempt "
    return text + f"{p.get('attempt', '?')}, {retry}): {p.get('error', '?')}", True


def _entries(
    ordered: list[Event], fired: list[Event], playbooks: Mapping[str, str], kinds: Mapping[str, str]
) -> list[TimelineEntry]:
    entries: list[TimelineEntry] = []
    if fired:
        first = min(fired, key=lambda e: float(e.payload.get("first_anomalous_ts") or e.ts))
        entries.append(
            TimelineEntry(
                ts=float(first.payload.get("first_anomalous_ts") or first.ts),
                type=FIRST_ANOMALY,
                summary=redact(f"first anomalous tick: {alert_text(first.payload)}"),
                actor=_actor(first, playbooks),
                category="detection",
            )
        )
    for event in ordered:
        if event.type in _SKIPPED:
            continue
        if event.type.value.startswith("notification."):
            summary, keep = _notification_entry(event, kinds)
            if not keep:
                continue
            detail: dict[str, str] = {}
        else:
            playbook = playbooks.get(str(event.run_id), "") if event.run_id else ""
            summary, detail = summarize(event, playbook=playbook)
        entries.append(
            TimelineEntry(
                ts=event.ts,
                type=event.type.value,
                summary=redact(summary),
                actor=_actor(event, playbooks),
                category=_CATEGORIES.get(event.type.value.split(".")[0], "other"),
                seq=event.seq,
                run_id=event.run_id,
                detail=detail,
            )
        )
    # Stable: the synthetic first-anomaly entry stays ahead of events of the same instant.
    entries.sort(key=lambda e: (e.ts, e.seq or 0))
    return entries


def timeline_from_events(events: Iterable[Event], series: IncidentSeries | None = None) -> Timeline:
    """Build the timeline from one incident's events (any order; sorted by ts, then seq)."""
    by_seq = sorted(events, key=lambda e: e.seq or 0)
    ordered = sorted(by_seq, key=lambda e: e.ts)
    incident = incident_from_events(by_seq)
    if incident is None:
        raise IncidentNotFound("no incident.opened event in the given events")
    members = set(incident.alerts)
    fired = [
        e
        for e in ordered
        if e.type is EventType.ALERT_FIRED and e.payload.get("fingerprint") in members
    ]
    first_anomalous = min(
        (float(e.payload.get("first_anomalous_ts") or e.ts) for e in fired), default=None
    )
    acknowledged, acknowledged_by = _acknowledged(ordered)
    figures = Figures(
        first_anomalous_at=first_anomalous,
        opened_at=incident.opened_at,
        acknowledged_at=acknowledged,
        acknowledged_by=acknowledged_by,
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
    runs = [run_from_events(e for e in by_seq if e.run_id == run_id) for run_id in playbooks]
    counts, kinds = _notifications(ordered)
    root: Mapping[str, Any] | None = next(
        (e.payload for e in fired if e.payload.get("fingerprint") == incident.root_cause), None
    )
    evidence = root.get("evidence") if root is not None else None
    impact = compute_impact(
        series,
        scope=incident.scope,
        start=first_anomalous if first_anomalous is not None else incident.opened_at,
        end=incident.resolved_at,
        root_evidence=evidence if isinstance(evidence, Mapping) else None,
        alert_scopes=[e.payload.get("scope") or {} for e in fired],
        accounted=_accounted(ordered),
    )
    return Timeline(
        incident=incident,
        entries=tuple(_entries(ordered, fired, playbooks, kinds)),
        figures=figures,
        impact=impact,
        alerts=_alert_rows(fired, ordered),
        runs=tuple(r for r in runs if r is not None),
        notifications=counts,
        # Our own report.written records must not make the same state look new.
        last_seq=max(
            (e.seq or 0 for e in by_seq if e.type is not EventType.REPORT_WRITTEN), default=0
        ),
    )


def member_fired(store: Store, events: Iterable[Event]) -> list[Event]:
    """The ``alert.fired`` events of an incident's members that are not filed under it.

    The correlator appends ``alert.fired`` before routing the alert, so the event carries no
    incident id; it is found by fingerprint: the last firing at or before the alert joined the
    incident, and any re-firing after that while the incident was open.
    """
    joined: dict[str, float] = {}
    have: set[int | None] = set()
    end = float("inf")
    for event in sorted(events, key=lambda e: e.seq or 0):
        have.add(event.seq)
        p = event.payload
        if event.type is EventType.INCIDENT_OPENED:
            for fp in [p.get("root_cause"), *(p.get("alerts") or [])]:
                if fp:
                    joined.setdefault(str(fp), event.ts)
        elif event.type in (EventType.ALERT_GROUPED, EventType.ALERT_INHIBITED):
            joined.setdefault(str(p.get("fingerprint")), event.ts)
        elif event.type is EventType.INCIDENT_RESOLVED:
            end = event.ts
        elif event.type is EventType.INCIDENT_REOPENED:
            end = float("inf")
    if not joined:
        return []
    found: dict[str, list[Event]] = {}
    for event in store.events(types=[EventType.ALERT_FIRED]):
        fp = str(event.payload.get("fingerprint"))
        elsewhere = event.incident_id is not None  # filed under another incident
        if fp in joined and event.seq not in have and event.ts <= end and not elsewhere:
            found.setdefault(fp, []).append(event)
    out: list[Event] = []
    for fp, fired in found.items():
        before = [e for e in fired if e.ts <= joined[fp]]
        out.extend(before[-1:])
        out.extend(e for e in fired if e.ts > joined[fp])
    return out


def build_timeline(store: Store, incident_id: str) -> Timeline:
    """The timeline of one incident as stored now."""
    events = store.events(incident_id=incident_id)
    if not any(e.type is EventType.INCIDENT_OPENED for e in events):
        raise IncidentNotFound(f"incident {incident_id!r} not found in the event store")
    events.extend(member_fired(store, events))
    return timeline_from_events(events, load_series(store, incident_id))
