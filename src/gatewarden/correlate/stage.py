"""Alerts become incidents: dedup by fingerprint, hysteresis, topology grouping, lifecycle.

Every decision is an event, so the report can show why alerts were merged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from gatewarden.correlate.alerts import AlertBook, AlertState, Transition
from gatewarden.correlate.config import CorrelateConfig
from gatewarden.correlate.grouping import describe, related, topology_rank
from gatewarden.models import Alert, Event, EventType, Severity
from gatewarden.protocols import Store, Tick

log = logging.getLogger(__name__)


@dataclass
class _OpenIncident:
    id: str
    root: str
    root_scope: dict[str, str]
    root_kind: str
    severity: Severity
    members: dict[str, dict[str, str]] = field(default_factory=dict)
    last_fired_ts: float = 0.0
    resolved_at: float | None = None


def _evidence(alert: Alert) -> dict[str, Any]:
    return alert.evidence.model_dump(mode="json")


class CorrelateStage:
    name = "correlate"

    def __init__(self, store: Store, config: CorrelateConfig | None = None) -> None:
        self.store = store
        self.config = config or CorrelateConfig()
        self.book = AlertBook(
            open_after=self.config.open_after_ticks,
            resolve_after=self.config.resolve_after_ticks,
            update_interval_s=self.config.update_interval_s,
        )
        self.incidents: dict[str, _OpenIncident] = {}
        self._restore()

    def open_count(self) -> int:
        return sum(1 for i in self.incidents.values() if i.resolved_at is None)

    # -- tick ---------------------------------------------------------------------------------
    def run(self, tick: Tick) -> None:
        events: list[Event] = []
        bad: set[str] = set()
        for alert in tick.alerts:
            bad.add(alert.fingerprint)
            state, transition = self.book.observe_bad(alert)
            if transition is Transition.FIRED:
                events.extend(self._on_fired(state, alert, tick.now))
            elif transition is Transition.UPDATED:
                events.append(self._event(tick.now, EventType.ALERT_UPDATED, state, alert))
        for fp in tick.clear - bad:
            state_before = self.book.get(fp)
            if self.book.observe_good(fp) is Transition.RESOLVED and state_before is not None:
                events.append(self._resolved_event(tick.now, state_before))
        for state in self.book.firing():
            if state.fingerprint in bad or state.fingerprint in tick.clear:
                continue
            # No data for a firing series (e.g. traffic moved away after a failover).
            if self.book.observe_good(state.fingerprint, no_data=True) is Transition.RESOLVED:
                events.append(self._resolved_event(tick.now, state))
        events.extend(self._close_incidents(tick.now))
        if events:
            tick.events.extend(self.store.append(events))

    # -- transitions --------------------------------------------------------------------------
    def _event(
        self, now: float, type_: EventType, state: AlertState, alert: Alert | None = None
    ) -> Event:
        payload: dict[str, Any] = {"fingerprint": state.fingerprint, "kind": state.kind}
        payload["scope"] = dict(state.scope)
        if alert is not None:
            payload.update(
                detector=alert.detector,
                severity=alert.severity.value,
                evidence=_evidence(alert),
                first_anomalous_ts=state.first_bad_ts,
            )
        return Event(ts=now, type=type_, incident_id=state.incident_id, payload=payload)

    def _resolved_event(self, now: float, state: AlertState) -> Event:
        event = self._event(now, EventType.ALERT_RESOLVED, state)
        return event.model_copy(
            update={"payload": {**event.payload, "reason": state.resolve_reason}}
        )

    def _on_fired(self, state: AlertState, alert: Alert, now: float) -> list[Event]:
        target = self._find_incident(alert, now)
        if target is None:
            return self._open_incident(state, alert, now)
        state.incident_id = target.id
        events = [self._event(now, EventType.ALERT_FIRED, state, alert)]
        if target.resolved_at is not None:
            target.resolved_at = None
            events.append(
                Event(
                    ts=now,
                    type=EventType.INCIDENT_REOPENED,
                    incident_id=target.id,
                    payload={"reason": f"recurrence: {describe(alert.kind, alert.scope)}"},
                )
            )
        target.members[state.fingerprint] = dict(alert.scope)
        target.last_fired_ts = now
        grouped: dict[str, Any] = {
            "fingerprint": state.fingerprint,
            "kind": alert.kind,
            "scope": dict(alert.scope),
            "reason": f"related to {describe(target.root_kind, target.root_scope)}",
        }
        if topology_rank(alert.scope) < topology_rank(target.root_scope):
            # The newcomer sits higher in the topology: it explains the others better.
            target.root, target.root_scope, target.root_kind = (
                state.fingerprint,
                dict(alert.scope),
                alert.kind,
            )
            grouped.update(
                root_cause=state.fingerprint,
                incident_scope=dict(alert.scope),
                title=describe(alert.kind, alert.scope),
            )
        events.append(
            Event(ts=now, type=EventType.ALERT_GROUPED, incident_id=target.id, payload=grouped)
        )
        if alert.severity.rank > target.severity.rank:
            target.severity = alert.severity
            events.append(
                Event(
                    ts=now,
                    type=EventType.INCIDENT_SEVERITY,
                    incident_id=target.id,
                    payload={"severity": alert.severity.value, "reason": f"{alert.kind} alert"},
                )
            )
        return events

    def _find_incident(self, alert: Alert, now: float) -> _OpenIncident | None:
        for incident in self.incidents.values():
            if incident.resolved_at is None:
                if now - incident.last_fired_ts > self.config.group_window_s:
                    continue
            elif now - incident.resolved_at > self.config.reopen_window_s:
                continue
            scopes = [incident.root_scope, *incident.members.values()]
            if any(related(alert.scope, s) for s in scopes):
                return incident
        return None

    def _open_incident(self, state: AlertState, alert: Alert, now: float) -> list[Event]:
        incident_id = f"inc-{int(now)}-{state.fingerprint[:6]}"
        state.incident_id = incident_id
        self.incidents[incident_id] = _OpenIncident(
            id=incident_id,
            root=state.fingerprint,
            root_scope=dict(alert.scope),
            root_kind=alert.kind,
            severity=alert.severity,
            members={state.fingerprint: dict(alert.scope)},
            last_fired_ts=now,
        )
        return [
            self._event(now, EventType.ALERT_FIRED, state, alert),
            Event(
                ts=now,
                type=EventType.INCIDENT_OPENED,
                incident_id=incident_id,
                key=f"open:{incident_id}",
                payload={
                    "kinds": [alert.kind],
                    "scope": dict(alert.scope),
                    "severity": alert.severity.value,
                    "title": describe(alert.kind, alert.scope),
                    "root_cause": state.fingerprint,
                    "alerts": [state.fingerprint],
                },
            ),
        ]

    def _close_incidents(self, now: float) -> list[Event]:
        events = []
        for incident in self.incidents.values():
            if incident.resolved_at is not None:
                continue
            members = [self.book.get(fp) for fp in incident.members]
            if any(m is not None and m.firing for m in members):
                continue
            incident.resolved_at = now
            events.append(
                Event(
                    ts=now,
                    type=EventType.INCIDENT_RESOLVED,
                    incident_id=incident.id,
                    payload={"reason": "every member alert resolved"},
                )
            )
        # Forget incidents past their reopen window so memory stays bounded.
        horizon = now - self.config.reopen_window_s
        for incident_id in [
            i.id
            for i in self.incidents.values()
            if i.resolved_at is not None and i.resolved_at < horizon
        ]:
            del self.incidents[incident_id]
        return events

    # -- restart ------------------------------------------------------------------------------
    def _restore(self) -> None:
        """Rebuild open incidents and firing alerts from the log, so a restart neither
        re-opens known incidents nor forgets their members."""
        firing: dict[str, AlertState] = {}
        for event in self.store.events(
            types=[
                EventType.ALERT_FIRED,
                EventType.ALERT_RESOLVED,
                EventType.INCIDENT_OPENED,
                EventType.ALERT_GROUPED,
                EventType.INCIDENT_RESOLVED,
                EventType.INCIDENT_REOPENED,
            ]
        ):
            self._restore_one(event, firing)
        for state in firing.values():
            self.book.restore(state)

    def _restore_one(self, event: Event, firing: dict[str, AlertState]) -> None:
        p = event.payload
        if event.type is EventType.ALERT_FIRED:
            firing[p["fingerprint"]] = AlertState(
                fingerprint=p["fingerprint"],
                kind=p["kind"],
                scope=dict(p["scope"]),
                firing=True,
                fired_at=event.ts,
                first_bad_ts=p.get("first_anomalous_ts"),
                incident_id=event.incident_id,
                last_update_ts=event.ts,
            )
        elif event.type is EventType.ALERT_RESOLVED:
            firing.pop(p["fingerprint"], None)
        elif event.type is EventType.INCIDENT_OPENED and event.incident_id:
            self.incidents[event.incident_id] = _OpenIncident(
                id=event.incident_id,
                root=p["root_cause"],
                root_scope=dict(p["scope"]),
                root_kind=p["kinds"][0],
                severity=Severity(p["severity"]),
                members={p["root_cause"]: dict(p["scope"])},
                last_fired_ts=event.ts,
            )
        elif event.incident_id in self.incidents:
            incident = self.incidents[event.incident_id]
            if event.type is EventType.ALERT_GROUPED:
                incident.members[p["fingerprint"]] = dict(p["scope"])
                incident.last_fired_ts = event.ts
                if p.get("root_cause"):
                    incident.root, incident.root_kind = p["root_cause"], p["kind"]
                    incident.root_scope = dict(p["incident_scope"])
            elif event.type is EventType.INCIDENT_RESOLVED:
                incident.resolved_at = event.ts
            elif event.type is EventType.INCIDENT_REOPENED:
                incident.resolved_at = None
