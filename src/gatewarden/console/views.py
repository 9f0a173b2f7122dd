"""What the console shows, read from the store: incidents, pending approvals, page versions.

Everything here is a projection of the event log (plus the recorded series for charts), so the
console never disagrees with Slack, the CLI or the report.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from gatewarden.models import Event, EventType, Incident, IncidentStatus
from gatewarden.projections import INCIDENT_TYPES, incidents_from_events
from gatewarden.protocols import Store
from gatewarden.remediate.runlog import AUTO_POLICY, DEMO_APPROVER, counts_toward_quorum
from gatewarden.report.charts import ChartPlan, chart_plans, draw
from gatewarden.report.series import load_series, state_name
from gatewarden.report.timeline import Timeline, build_timeline

_APPROVAL_TYPES = [
    EventType.PLAYBOOK_STARTED,
    EventType.PLAYBOOK_FINISHED,
    EventType.APPROVAL_REQUESTED,
    EventType.APPROVAL_GRANTED,
    EventType.APPROVAL_DENIED,
    EventType.APPROVAL_EXPIRED,
]


@dataclass
class PendingApproval:
    """An approval step still waiting for decisions."""

    run_id: str
    incident_id: str
    playbook: str
    step: int
    approvers: list[str]
    quorum: int
    requested_at: float
    expires_at: float | None
    granted_by: list[str] = field(default_factory=list)
    #: what granting lets happen, when the request carries it (impact preview)
    preview: str = ""


@dataclass
class _Run:
    incident_id: str
    playbook: str
    finished: bool = False
    steps: dict[int, PendingApproval] = field(default_factory=dict)
    closed: set[int] = field(default_factory=set)


def _closes(event: Event) -> bool:
    """A denial or a final expiry; an escalated expiry re-asks, so someone may still decide."""
    if event.type is EventType.APPROVAL_DENIED:
        return True
    return event.type is EventType.APPROVAL_EXPIRED and event.payload.get("outcome") != "escalate"


def _fold_approvals(events: Iterable[Event]) -> list[PendingApproval]:
    runs: dict[str, _Run] = {}
    for event in events:
        p, run_id = event.payload, str(event.run_id)
        if event.type is EventType.PLAYBOOK_STARTED:
            runs[run_id] = _Run(str(event.incident_id), str(p.get("playbook", "?")))
            continue
        run = runs.get(run_id)
        step = p.get("step")
        if run is None:
            continue
        if event.type is EventType.PLAYBOOK_FINISHED:
            run.finished = True
        elif not isinstance(step, int):
            continue
        elif event.type is EventType.APPROVAL_REQUESTED:
            approvers = p.get("approvers") or []
            run.steps[step] = PendingApproval(
                run_id=run_id,
                incident_id=run.incident_id,
                playbook=run.playbook,
                step=step,
                approvers=[str(a) for a in approvers] if isinstance(approvers, list) else [],
                quorum=int(p.get("quorum", 1)),
                requested_at=event.ts,
                expires_at=float(p["expires_at"]) if p.get("expires_at") is not None else None,
                preview=str(p.get("preview") or ""),
            )
        elif event.type is EventType.APPROVAL_GRANTED and step in run.steps:
            pending = run.steps[step]
            by = str(p.get("by", ""))
            if by in (AUTO_POLICY, DEMO_APPROVER):
                run.closed.add(step)
            # The engine's rule: a grant it would not count neither shows nor closes the step.
            elif by not in pending.granted_by and counts_toward_quorum(p, pending.approvers):
                pending.granted_by.append(by)
                if len(pending.granted_by) >= pending.quorum:
                    run.closed.add(step)
        elif _closes(event):
            run.closed.add(step)
        elif event.type is EventType.APPROVAL_EXPIRED and step in run.steps:
            # An escalation adds deciders (``remediate.runlog.step_approvers``).
            extra = p.get("escalated_to")
            approvers = run.steps[step].approvers
            for entry in extra if isinstance(extra, list) else []:
                if str(entry) not in approvers:
                    approvers.append(str(entry))
    return [
        pending
        for run in runs.values()
        if not run.finished
        for step, pending in sorted(run.steps.items())
        if step not in run.closed
    ]


def pending_approvals(store: Store, incident_id: str | None = None) -> list[PendingApproval]:
    """Approval steps that still wait for a decision (of one incident, or all)."""
    return _fold_approvals(store.events(incident_id=incident_id, types=_APPROVAL_TYPES))


@dataclass(frozen=True)
class IncidentRow:
    incident: Incident
    pending: int

    @property
    def open(self) -> bool:
        return self.incident.status is IncidentStatus.OPEN


def incident_rows(store: Store, *, recent: int) -> tuple[list[IncidentRow], list[IncidentRow]]:
    """(open incidents, the ``recent`` most recently opened resolved ones), newest first."""
    incidents = incidents_from_events(store.events(types=list(INCIDENT_TYPES)))
    waiting: dict[str, int] = {}
    for pending in pending_approvals(store):
        waiting[pending.incident_id] = waiting.get(pending.incident_id, 0) + 1
    rows = [IncidentRow(i, waiting.get(i.id, 0)) for i in reversed(incidents)]
    return [r for r in rows if r.open], [r for r in rows if not r.open][:recent]


def incident_version(store: Store, incident_id: str) -> str:
    """Changes whenever the incident's page would: a new event or new recorded points."""
    events = store.events(incident_id=incident_id)
    last = max((e.seq or 0 for e in events), default=0)
    raw = store.get_state(state_name(incident_id))
    return f"{last}.{0 if raw is None else len(raw)}"


def overview_version(store: Store) -> str:
    events = store.events(types=[*INCIDENT_TYPES, *_APPROVAL_TYPES])
    return str(max((e.seq or 0 for e in events), default=0))


class ChartCache:
    """PNG charts for the console, drawn one per image request and kept for a few versions.

    Pages only list the charts (cheap); each ``<img>`` asks for one. Drawing is serialised:
    on two cores, six charts drawn at once by six requests would starve the tick thread, and a
    chart that a parallel request has just drawn is then found in the cache.
    """

    def __init__(self, size: int = 48) -> None:
        self._size = size
        self._items: OrderedDict[tuple[str, str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._drawing = threading.Lock()

    def _cached(self, key: tuple[str, str, int]) -> bytes | None:
        with self._lock:
            png = self._items.get(key)
            if png is not None:
                self._items.move_to_end(key)
            return png

    def png(self, store: Store, incident_id: str, version: str, index: int) -> bytes | None:
        """Chart ``index`` (1-based) of the incident as it is now; None if there is none."""
        key = (incident_id, version, index)
        png = self._cached(key)
        if png is not None:
            return png
        with self._drawing:
            png = self._cached(key)
            if png is not None:
                return png
            timeline = build_timeline(store, incident_id)
            plans = chart_plans(timeline, load_series(store, incident_id))
            if not 1 <= index <= len(plans):
                return None
            png = draw(plans[index - 1], timeline)
        with self._lock:
            self._items[key] = png
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return png


def plans_of(store: Store, timeline: Timeline) -> list[ChartPlan]:
    return chart_plans(timeline, load_series(store, timeline.incident.id))


def timeline_of(store: Store, incident_id: str) -> Timeline:
    return build_timeline(store, incident_id)
