"""Which events the notify stage turns into messages, and which messages they become.

**Intake reads the store, not just the tick.** Decisions recorded from Slack, the CLI or the
web console are appended outside any tick; a persisted cursor (``notify.intake.seq``) makes the
stage see every event appended since its last run, whoever wrote it. Re-reading is harmless:
message ids are deterministic and outbox keys idempotent.

Per batch, besides one message per event (:func:`gatewarden.notify.messages.build_message`):

* ``incident.opened`` → the composed root (:mod:`gatewarden.notify.incident`) and a chart;
* ``approval.requested`` → the approval message with its quorum and buttons;
* anything else about an incident → one rewrite of the root (the last state wins);
* grants, denials, expiries, end of run → one rewrite of the approval message;
* ``incident.resolved`` → the report summary on the resolution message and a closing chart;
* ``report.written`` → a thread message with the report path.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gatewarden.models import Event, EventType, Message
from gatewarden.notify.approval_view import (
    CLOSED,
    ApprovalView,
    approval_message,
    approval_target,
    approval_views,
    as_update,
)
from gatewarden.notify.incident import (
    IncidentView,
    SeriesSource,
    chart_message,
    compose_incident,
    fold_incident,
    summary_fields,
)
from gatewarden.notify.messages import (
    AlertLookup,
    build_message,
    message_id,
    root_message_id,
)
from gatewarden.notify.redact import redact
from gatewarden.protocols import Store

log = logging.getLogger(__name__)

CURSOR_STATE = "notify.intake.seq"


#: The events worth reading (notification bookkeeping, the bulk of the log, is left out).
INTAKE_TYPES: tuple[str, ...] = tuple(
    t.value
    for t in EventType
    if not t.value.startswith("notification.") and t.value not in ("alert.resolved",)
)
_TRIGGERS = (
    EventType.APPROVAL_GRANTED,
    EventType.APPROVAL_DENIED,
    EventType.APPROVAL_EXPIRED,
    EventType.PLAYBOOK_FINISHED,
)


class Intake:
    def __init__(
        self,
        store: Store,
        *,
        series: SeriesSource | None = None,
        tick_seconds: float = 15.0,
        chart_ticks: int = 60,
        max_chart_ticks: int = 240,
    ) -> None:
        self._store = store
        self.series = series
        self.tick_seconds = tick_seconds
        self.chart_ticks = chart_ticks
        self.max_chart_ticks = max_chart_ticks
        #: bad input survived, by kind (for self-metrics and tests)
        self.problems: Counter[str] = Counter()

    # -- what to read -----------------------------------------------------------------------
    def collect(
        self, tick_events: Sequence[Event], *, first_cursor: Callable[[], int]
    ) -> list[Event]:
        """Events appended since the last run (store order), plus unstored tick events.

        ``first_cursor()`` applies when no cursor was ever saved (an upgrade from a version
        without one): history below it was handled by that version and is not re-announced.
        """
        saved = self._store.get_state(CURSOR_STATE) or ""
        if saved.isdigit():
            cursor = int(saved)
        else:
            seqs = [e.seq for e in tick_events if e.seq is not None]
            cursor = min([first_cursor(), *(s - 1 for s in seqs)])
        batch = self._store.events(types=list(INTAKE_TYPES), after_seq=cursor)
        batch.extend(e for e in tick_events if e.seq is None)
        return batch

    def commit(self, batch: Sequence[Event]) -> None:
        """Move the cursor past ``batch`` (after its messages were queued)."""
        seqs = [e.seq for e in batch if e.seq is not None]
        if seqs:
            saved = self._store.get_state(CURSOR_STATE) or ""
            done = int(saved) if saved.isdigit() else 0
            self._store.put_state(CURSOR_STATE, str(max(done, *seqs)))

    # -- what to say ------------------------------------------------------------------------
    def messages(self, batch: Sequence[Event], *, now: float) -> list[Message]:
        """Messages for ``batch`` in order: per-event messages first, then rewrites.

        Each message shows its subject *as of the event that caused it* (events up to that
        seq), so the same events give the same content however ticks cut them into batches.
        """
        snap = _Snapshots(self._store, self._lookup(batch), self.problems)
        out: list[Message] = []
        roots: dict[str, Event] = {}
        approvals: dict[str, list[Event]] = {}
        for event in batch:
            iid, run = event.incident_id, event.run_id
            if event.type is EventType.INCIDENT_OPENED and iid:
                view = snap.incident(iid, event)
                if view is not None:
                    out.extend(self._opened(view, event, now))
                else:  # an unreadable incident still gets its plain opening message
                    out.extend(m for m in [build_message(event, alert_lookup=snap.lookup)] if m)
                continue
            if run and event.type in _TRIGGERS:
                approvals.setdefault(run, []).append(event)
            message = self._message(event, snap, now)
            out.extend(message or [])
            if iid and message is not None:
                roots[iid] = event
        out.extend(self._approvals(approvals, snap))
        for iid, trigger in roots.items():
            view = snap.incident(iid, trigger)
            if view is not None:
                root = self._compose(view, root_message_id(iid), trigger.ts, now)
                out.append(as_update(root, target=root_message_id(iid), trigger=trigger))
        return out

    def _compose(self, view: IncidentView, mid: str, ts: float, now: float) -> Message:
        return compose_incident(
            view, message_id=mid, ts=ts, series=self.series, tick_seconds=self.tick_seconds, now=now
        )

    def _opened(self, view: IncidentView, event: Event, now: float) -> list[Message]:
        iid = view.incident.id
        out = [self._compose(view, root_message_id(iid), event.ts, now)]
        if self.series is not None:
            chart = chart_message(
                view,
                message_id=f"msg:chart:{iid}:opened",
                ts=event.ts,
                series=self.series,
                tick_seconds=self.tick_seconds,
                ticks=self.chart_ticks,
                now=now,
            )
            out.extend([chart] if chart is not None else [])
        return out

    def _message(self, event: Event, snap: _Snapshots, now: float) -> list[Message] | None:
        step = event.payload.get("step")
        if event.type is EventType.APPROVAL_REQUESTED and event.run_id and isinstance(step, int):
            gate = snap.approvals(event.run_id, event).get(step)
            return [approval_message(gate)] if gate is not None else None
        if event.type is EventType.REPORT_WRITTEN and event.incident_id:
            return [self._report(event, snap.incident(event.incident_id, event))]
        message = build_message(event, alert_lookup=snap.lookup)
        if message is None:
            return None
        if event.type is not EventType.INCIDENT_RESOLVED or not event.incident_id:
            return [message]
        view = snap.incident(event.incident_id, event)
        if view is None:
            return [message]
        fields = {**message.fields, **{k: redact(v) for k, v in summary_fields(view).items()}}
        out = [message.model_copy(update={"fields": fields})]
        if self.series is not None and view.incident.resolved_at is not None:
            span = view.incident.resolved_at - view.since
            ticks = int(span // max(self.tick_seconds, 1e-9)) + self.chart_ticks // 4 + 1
            chart = chart_message(
                view,
                message_id=f"msg:chart:{event.incident_id}:resolved:{message_id(event)}",
                ts=event.ts,
                series=self.series,
                tick_seconds=self.tick_seconds,
                ticks=min(self.max_chart_ticks, max(self.chart_ticks, ticks)),
                now=now,
            )
            out.extend([chart] if chart is not None else [])
        return out

    @staticmethod
    def _report(event: Event, view: IncidentView | None) -> Message:
        path = str(event.payload.get("path", "?"))
        fields = {"Format": str(event.payload.get("format", "markdown")), "Path": path}
        if view is not None:
            fields.update(summary_fields(view))
        message = Message(
            id=message_id(event),
            incident_id=event.incident_id,
            ts=event.ts,
            kind=event.type.value,
            title=redact(f"report written: {path}"),
            fields={k: redact(v) for k, v in fields.items()},
            thread_of=root_message_id(str(event.incident_id)),
        )
        return message

    @staticmethod
    def _approvals(triggers: Mapping[str, list[Event]], snap: _Snapshots) -> list[Message]:
        """One rewrite per approval step decided (or closed) in this batch."""
        out: list[Message] = []
        for run, events in triggers.items():
            last: dict[int, Event] = {}
            for event in events:
                step = event.payload.get("step")
                if isinstance(step, int):
                    last[step] = event
                elif event.type is EventType.PLAYBOOK_FINISHED:
                    # The end of a run closes the steps still waiting on it.
                    views = snap.approvals(run, event)
                    last.update({i: event for i, v in views.items() if v.state == CLOSED})
            for step, trigger in sorted(last.items()):
                view = snap.approvals(run, trigger).get(step)
                if view is not None:
                    content = approval_message(view)
                    out.append(as_update(content, target=approval_target(view), trigger=trigger))
        return out

    def _lookup(self, batch: Sequence[Event]) -> AlertLookup:
        """The latest ``alert.fired`` payload of a fingerprint: this batch first, then stored
        alerts of the incidents opened in it (the root alert may have fired a tick earlier)."""
        opened = sorted(
            {e.incident_id for e in batch if e.type is EventType.INCIDENT_OPENED and e.incident_id}
        )

        def lookup(fingerprint: str) -> Mapping[str, Any] | None:
            for event in reversed(batch):
                fired = event.type is EventType.ALERT_FIRED
                if fired and event.payload.get("fingerprint") == fingerprint:
                    return event.payload
            for incident_id in opened:
                stored = self._store.events(
                    incident_id=incident_id, types=[EventType.ALERT_FIRED.value]
                )
                for event in reversed(stored):
                    if event.payload.get("fingerprint") == fingerprint:
                        return event.payload
            return None

        return lookup


def _upto(events: Sequence[Event], last: Event) -> list[Event]:
    if last.seq is None:
        return list(events)
    return [e for e in events if e.seq is not None and e.seq <= last.seq]


class _Snapshots:
    """Incidents and approval steps as of a given event, reading each log once per batch."""

    def __init__(self, store: Store, lookup: AlertLookup, problems: Counter[str]) -> None:
        self._store = store
        self.lookup = lookup
        self._incidents: dict[str, list[Event]] = {}
        self._runs: dict[str, list[Event]] = {}
        self._problems = problems

    def incident(self, incident_id: str, upto: Event) -> IncidentView | None:
        if incident_id not in self._incidents:
            self._incidents[incident_id] = self._store.events(
                incident_id=incident_id, types=list(INTAKE_TYPES)
            )
        try:
            return fold_incident(_upto(self._incidents[incident_id], upto), self.lookup)
        except ValueError as exc:  # pydantic's ValidationError included
            self._problems["unreadable_incident"] += 1
            log.warning(
                "incident %s cannot be projected (%s); plain messages only", incident_id, exc
            )
            return None

    def approvals(self, run_id: str, upto: Event) -> dict[int, ApprovalView]:
        if run_id not in self._runs:
            self._runs[run_id] = self._store.events(run_id=run_id)
        return approval_views(_upto(self._runs[run_id], upto))
