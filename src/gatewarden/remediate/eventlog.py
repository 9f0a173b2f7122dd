"""An incremental read cache of the events remediation cares about.

It is only ever a copy of the store (rebuilt from seq 0 after a restart), refreshed after every
append, so decisions are still derived from the store's events and never from private state.
"""

from __future__ import annotations

from collections.abc import Sequence

from gatewarden.models import Event, EventType, Incident
from gatewarden.projections import INCIDENT_TYPES, incidents_from_events
from gatewarden.protocols import Store
from gatewarden.remediate.runlog import RunLog, fold_run

RUN_TYPES: tuple[EventType, ...] = (
    EventType.PLAYBOOK_STARTED,
    EventType.PLAYBOOK_FINISHED,
    EventType.APPROVAL_REQUESTED,
    EventType.APPROVAL_GRANTED,
    EventType.APPROVAL_DENIED,
    EventType.APPROVAL_EXPIRED,
    EventType.ACTION_INTENDED,
    EventType.ACTION_APPLIED,
    EventType.ACTION_FAILED,
    EventType.ACTION_ROLLED_BACK,
    EventType.VERIFICATION_PASSED,
    EventType.VERIFICATION_FAILED,
)


class EventLog:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._cursor = 0
        self._incident_events: list[Event] = []
        self._run_events: dict[str, list[Event]] = {}
        self._types = [t.value for t in (*INCIDENT_TYPES, *RUN_TYPES)]

    def refresh(self) -> None:
        # Reading past the cursor (rather than adding our own appends) also picks up decisions
        # other writers appended in between.
        for event in self._store.events(types=self._types, after_seq=self._cursor):
            self._cursor = max(self._cursor, event.seq or 0)
            if event.type in INCIDENT_TYPES:
                self._incident_events.append(event)
            elif event.run_id is not None:
                self._run_events.setdefault(event.run_id, []).append(event)

    def append(self, events: Sequence[Event]) -> list[Event]:
        """Append events whose key is not stored yet; returns only the newly stored ones."""
        fresh = [e for e in events if e.key is None or self._store.event_by_key(e.key) is None]
        stored = self._store.append(fresh) if fresh else []
        self.refresh()
        return stored

    def incidents(self) -> list[Incident]:
        return incidents_from_events(self._incident_events)

    def run(self, run_id: str) -> RunLog | None:
        return fold_run(self._run_events.get(run_id, []))

    def runs(self) -> list[RunLog]:
        out = []
        for run_id in self._run_events:
            run = self.run(run_id)
            if run is not None:
                out.append(run)
        return out
