"""Alerts become incidents: dedup by fingerprint, hysteresis, silences, topology-aware grouping
with inhibition, root-cause ranking, impact-driven severity and lifecycle.

Every decision is an event (with its reason), so the report can show why alerts were merged.
"""

from __future__ import annotations

import logging
from typing import Any

from gatewarden.correlate.alerts import AlertBook, AlertState, Transition
from gatewarden.correlate.config import CorrelateConfig
from gatewarden.correlate.grouping import describe, related, siblings
from gatewarden.correlate.incidents import RESTORE_TYPES, Member, OpenIncident, restore
from gatewarden.correlate.rules import Explanation, explain
from gatewarden.correlate.silence import SilenceMuter
from gatewarden.correlate.topology import Topology
from gatewarden.models import Alert, Event, EventType, Severity
from gatewarden.protocols import Store, Tick
from gatewarden.verdicts import is_clear

log = logging.getLogger(__name__)


class CorrelateStage:
    name = "correlate"

    def __init__(self, store: Store, config: CorrelateConfig | None = None) -> None:
        self.store = store
        self.config = config or CorrelateConfig()
        self.rules = tuple(self.config.inhibit_rules)
        self.book = AlertBook(
            open_after=self.config.open_after_ticks,
            resolve_after=self.config.resolve_after_ticks,
            update_interval_s=self.config.update_interval_s,
        )
        self.topology = Topology()
        self.silences = SilenceMuter(store)
        self.incidents, firing = restore(store.events(types=list(RESTORE_TYPES)))
        for state in firing.values():
            self.book.restore(state)

    def open_count(self) -> int:
        return sum(1 for i in self.incidents.values() if i.resolved_at is None)

    # -- tick ---------------------------------------------------------------------------------
    def run(self, tick: Tick) -> None:
        self.silences.refresh()
        if tick.alerts or self.open_count():
            # Topology questions only arise when something fires; skip the work otherwise.
            self.topology.observe(tick.records)
        events: list[Event] = []
        bad: set[str] = set()
        for alert in tick.alerts:
            bad.add(alert.fingerprint)
            state, transition = self.book.observe_bad(alert)
            if transition is Transition.FIRED:
                # Route first so alert.fired carries the incident it joined (or opened).
                routed = self._route(state, alert, tick.now)
                events.append(self._event(tick.now, EventType.ALERT_FIRED, state, alert))
                events.extend(routed)
            elif transition is Transition.UPDATED:
                events.append(self._event(tick.now, EventType.ALERT_UPDATED, state, alert))
            elif self._silence_ended(state, tick.now) and state.last is not None:
                # The silence ended while the alert still fires: route it now.
                state.silenced_by = None
                events.extend(self._route(state, state.last, tick.now))
        # Only tracked alerts can change: ask about those rather than walk every healthy series.
        for fp in self.book.fingerprints():
            state_before = self.book.get(fp)
            if fp in bad or state_before is None or not _clear(tick, state_before):
                continue
            if self.book.observe_good(fp) is Transition.RESOLVED:
                events.append(self._resolved_event(tick.now, state_before))
        for state in self.book.firing():
            if state.fingerprint in bad or _clear(tick, state):
                continue
            # No data for a firing series (e.g. traffic moved away after a failover).
            if self.book.observe_good(state.fingerprint, no_data=True) is Transition.RESOLVED:
                events.append(self._resolved_event(tick.now, state))
        events.extend(self._account_impact(tick))
        events.extend(self._close_incidents(tick.now))
        if events:
            tick.events.extend(self.store.append(events))

    def _silence_ended(self, state: AlertState, now: float) -> bool:
        return bool(state.firing and state.silenced_by) and (
            self.silences.silence_for(state.kind, state.scope, now) is None
        )

    def _explain(
        self, cause: tuple[str, dict[str, str]], symptom: tuple[str, dict[str, str]]
    ) -> Explanation | None:
        return explain(cause, symptom, self.topology, self.rules)

    # -- events -------------------------------------------------------------------------------
    def _event(
        self, now: float, type_: EventType, state: AlertState, alert: Alert | None = None
    ) -> Event:
        payload: dict[str, Any] = {
            "fingerprint": state.fingerprint,
            "kind": state.kind,
            "scope": dict(state.scope),
        }
        if alert is not None:
            payload.update(
                detector=alert.detector,
                severity=alert.severity.value,
                evidence=alert.evidence.model_dump(mode="json"),
                first_anomalous_ts=state.first_bad_ts,
            )
        return Event(ts=now, type=type_, incident_id=state.incident_id, payload=payload)

    def _resolved_event(self, now: float, state: AlertState) -> Event:
        return _with(self._event(now, EventType.ALERT_RESOLVED, state), reason=state.resolve_reason)

    # -- routing ------------------------------------------------------------------------------
    def _route(self, state: AlertState, alert: Alert, now: float) -> list[Event]:
        silence = self.silences.silence_for(alert.kind, alert.scope, now)
        if silence is not None:
            state.silenced_by = silence.id
            return [_with(self._event(now, EventType.ALERT_SILENCED, state), silence_id=silence.id)]
        found = self._find_incident(alert, now)
        if found is None:
            return self._open_incident(state, alert, now)
        incident, explanation = found
        events = self._join(incident, explanation, state, alert, now)
        return events + self._absorb(incident, alert, now)

    def _find_incident(self, alert: Alert, now: float) -> tuple[OpenIncident, Explanation] | None:
        """The incident this alert belongs to, and why. Causal explanations beat plain label
        relatedness; an alert that explains an incident's root joins it to take over."""
        candidates = []
        for incident in self.incidents.values():
            if incident.resolved_at is None:
                if now - incident.last_fired_ts > self.config.group_window_s:
                    continue
            elif now - incident.resolved_at > self.config.reopen_window_s:
                continue
            candidates.append(incident)
        symptom = (alert.kind, alert.scope)
        for incident in candidates:
            for member in incident.members.values():
                explanation = self._explain((member.kind, member.scope), symptom)
                if explanation is not None:
                    return incident, explanation
        for incident in candidates:
            root = incident.root_member
            if self._explain(symptom, (root.kind, root.scope)) is not None:
                return incident, Explanation(f"explains {describe(root.kind, root.scope)}", False)
            # A resolved incident reopens only for a recurrence of what it was about: a
            # different kind of alert on a related scope later on is a new problem.
            recurring = incident.resolved_at is not None
            # The same kind of alert on a sibling (another model of the provider, another key
            # of the team) is the parent's problem showing up one child at a time.
            if any(
                (related(alert.scope, m.scope) and (not recurring or m.kind == alert.kind))
                or (m.kind == alert.kind and siblings(alert.scope, m.scope))
                for m in incident.members.values()
            ):
                return incident, Explanation(f"related to {describe(root.kind, root.scope)}", False)
        return None

    def _join(
        self,
        incident: OpenIncident,
        explanation: Explanation,
        state: AlertState,
        alert: Alert,
        now: float,
    ) -> list[Event]:
        state.incident_id = incident.id
        events: list[Event] = []
        if incident.resolved_at is not None:
            incident.resolved_at = None
            reason = f"recurrence: {describe(alert.kind, alert.scope)}"
            events.append(
                Event(
                    ts=now,
                    type=EventType.INCIDENT_REOPENED,
                    incident_id=incident.id,
                    payload={"reason": reason},
                )
            )
        fp = state.fingerprint
        member = Member(alert.kind, dict(alert.scope), state.first_bad_ts or now)
        symptom = (alert.kind, alert.scope)
        previous = incident.members.get(fp)
        if previous is not None:
            # A recurrence of a member keeps its first onset and what it explained: the root
            # cause is ranked by when the problem began, not by when it came back.
            member.onset, member.explains = min(previous.onset, member.onset), previous.explains
        else:
            for other in incident.members.values():
                if self._explain((other.kind, other.scope), symptom):
                    other.explains += 1
        root = incident.root_member
        if root is not previous and self._explain(symptom, (root.kind, root.scope)) is not None:
            member.explains = max(member.explains, root.explains + 1)
        incident.members[fp] = member
        incident.last_fired_ts = now
        payload: dict[str, Any] = {
            "fingerprint": fp,
            "kind": alert.kind,
            "scope": dict(alert.scope),
            "reason": explanation.reason,
        }
        best = min(incident.members, key=incident.rank_key)
        if best != incident.root:
            incident.root = best
            new_root = incident.members[best]
            payload.update(
                root_cause=best,
                incident_scope=dict(new_root.scope),
                title=describe(new_root.kind, new_root.scope),
            )
        inhibited = explanation.inhibit and best != fp
        if inhibited:
            payload["by"] = incident.id
        kind = EventType.ALERT_INHIBITED if inhibited else EventType.ALERT_GROUPED
        events.append(Event(ts=now, type=kind, incident_id=incident.id, payload=payload))
        if alert.severity.rank > incident.severity.rank:
            events.append(self._severity(incident, alert.severity, f"{alert.kind} alert", now))
        return events

    def _absorb(self, target: OpenIncident, alert: Alert, now: float) -> list[Event]:
        """Merge other open incidents whose root this alert explains: the symptoms fired a
        tick before their cause did, and one cause must give one incident."""
        events: list[Event] = []
        cause = (alert.kind, alert.scope)
        for other in list(self.incidents.values()):
            if other is target or other.resolved_at is not None:
                continue
            root = other.root_member
            explanation = self._explain(cause, (root.kind, root.scope))
            if explanation is None:
                continue
            for fp, member in other.members.items():
                state = self.book.get(fp)
                if state is not None:
                    state.incident_id = target.id
                target.members[fp] = member
                payload: dict[str, Any] = {
                    "fingerprint": fp,
                    "kind": member.kind,
                    "scope": dict(member.scope),
                    "reason": f"merged from {other.id}: {explanation.reason}",
                }
                kind = EventType.ALERT_GROUPED
                if explanation.inhibit:
                    kind, payload["by"] = EventType.ALERT_INHIBITED, target.id
                events.append(Event(ts=now, type=kind, incident_id=target.id, payload=payload))
            target.members[alert.fingerprint].explains += len(other.members)
            other.resolved_at = now
            events.append(
                Event(
                    ts=now,
                    type=EventType.INCIDENT_RESOLVED,
                    incident_id=other.id,
                    payload={"reason": f"merged into {target.id}", "merged_into": target.id},
                )
            )
        best = min(target.members, key=target.rank_key)
        if events and best != target.root:
            target.root = best
            member = target.members[best]
            events.append(
                Event(
                    ts=now,
                    type=EventType.ALERT_GROUPED,
                    incident_id=target.id,
                    payload={
                        "fingerprint": best,
                        "kind": member.kind,
                        "scope": dict(member.scope),
                        "reason": "root cause: explains the merged alerts",
                        "root_cause": best,
                        "incident_scope": dict(member.scope),
                        "title": describe(member.kind, member.scope),
                    },
                )
            )
        return events

    def _severity(
        self, incident: OpenIncident, severity: Severity, reason: str, now: float
    ) -> Event:
        incident.severity = severity
        return Event(
            ts=now,
            type=EventType.INCIDENT_SEVERITY,
            incident_id=incident.id,
            payload={
                "severity": severity.value,
                "reason": reason,
                "impact": incident.impact.summary(),
            },
        )

    def _open_incident(self, state: AlertState, alert: Alert, now: float) -> list[Event]:
        incident_id = f"inc-{int(now)}-{state.fingerprint[:6]}"
        state.incident_id = incident_id
        self.incidents[incident_id] = OpenIncident(
            id=incident_id,
            root=state.fingerprint,
            severity=alert.severity,
            members={
                state.fingerprint: Member(alert.kind, dict(alert.scope), state.first_bad_ts or now)
            },
            last_fired_ts=now,
        )
        return [
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
            )
        ]

    # -- lifecycle ----------------------------------------------------------------------------
    def _account_impact(self, tick: Tick) -> list[Event]:
        events = []
        for incident in self.incidents.values():
            if incident.resolved_at is not None:
                continue
            incident.impact.add(tick.records, incident.root_member.scope)
            verdict = incident.impact.severity(self.config.impact)
            if verdict is not None and verdict[0].rank > incident.severity.rank:
                events.append(
                    self._severity(incident, verdict[0], "impact: " + verdict[1], tick.now)
                )
        return events

    def _close_incidents(self, now: float) -> list[Event]:
        events = []
        for incident in self.incidents.values():
            if incident.resolved_at is not None:
                continue
            # Inhibited members count: a symptom still firing keeps its incident open, so no
            # detected fault is lost behind the cause's resolution.
            states = [self.book.get(fp) for fp in incident.members]
            if any(s is not None and s.firing for s in states):
                continue
            incident.resolved_at = now
            events.append(
                Event(
                    ts=now,
                    type=EventType.INCIDENT_RESOLVED,
                    incident_id=incident.id,
                    payload={
                        "reason": "every member alert resolved",
                        "impact": incident.impact.summary(),
                    },
                )
            )
        # Forget incidents past their reopen window so memory stays bounded.
        horizon = now - self.config.reopen_window_s
        stale = [
            i.id
            for i in self.incidents.values()
            if i.resolved_at is not None and i.resolved_at < horizon
        ]
        for incident_id in stale:
            del self.incidents[incident_id]
        return events


def _with(event: Event, **extra: Any) -> Event:
    return event.model_copy(update={"payload": {**event.payload, **extra}})


def _clear(tick: Tick, state: AlertState) -> bool:
    """Whether the tick judged the alert's series healthy (asked by kind and scope: no hash)."""
    return is_clear(tick.clear, state.fingerprint, state.kind, state.scope)
