"""Incident and playbook-run state, derived by folding the event log.

Event payload conventions (every writer follows them; every reader goes through here):

=========================  =======================================================================
type                       payload
=========================  =======================================================================
alert.fired                fingerprint, kind, scope, detector, severity, evidence
alert.updated              fingerprint, evidence
alert.resolved             fingerprint
alert.grouped              fingerprint, kind, scope, reason [, root_cause, incident_scope, title]
alert.inhibited            fingerprint, kind, scope, by, reason     (incident_id = the inhibitor;
                           the alert attaches to that incident as a symptom but does not page)
alert.silenced             fingerprint, kind, scope, silence_id     (no incident: a silence matched)
silence.created            id, matchers, starts_at, ends_at, by, reason
silence.expired            id, by, reason
incident.opened            kinds, scope, severity, title, root_cause, alerts
incident.severity_changed  severity, reason [, impact]
incident.acknowledged      by
incident.mitigated         run_id, action
incident.reopened          reason
incident.resolved          reason, impact {failed_requests, cost_usd, keys, teams, workflows}
                           [, merged_into: the incident that absorbed this one]
playbook.started           playbook, mode                            (run_id, incident_id)
playbook.finished          state
approval.requested         step, approvers, quorum, expires_at, on_timeout [, preview, action:
                           what the next action step would do, planned read-only]
approval.granted/denied    step, by, reason [, via: the group that made ``by`` an approver]
approval.expired           step, outcome [, escalated_to, expires_at: the escalation period]
action.intended            step, action, inverse, preview            (key = idempotency key)
action.applied             step, outcome
action.failed              step, error, retryable
action.rolled_back         step, action, outcome [, by, reason: a manual ``gatewarden undo``]
verification.passed/failed step, detail
notification.queued        message, notifier                         (key = outbox key)
notification.delivered     message_id, notifier, ref
notification.failed        message_id, notifier, error, retryable, attempt
report.written             path, format
=========================  =======================================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gatewarden.models import (
    ActionRun,
    Event,
    EventType,
    Incident,
    IncidentStatus,
    RunState,
    Severity,
    scope_key,
)

INCIDENT_TYPES: tuple[EventType, ...] = (
    EventType.INCIDENT_OPENED,
    EventType.INCIDENT_SEVERITY,
    EventType.INCIDENT_ACKNOWLEDGED,
    EventType.INCIDENT_MITIGATED,
    EventType.INCIDENT_REOPENED,
    EventType.INCIDENT_RESOLVED,
    EventType.ALERT_GROUPED,
    EventType.ALERT_INHIBITED,
)


def _incident_fold(state: dict[str, Any], event: Event) -> None:
    p = event.payload
    t = event.type
    if t is EventType.INCIDENT_OPENED:
        state.update(
            id=event.incident_id,
            status=IncidentStatus.OPEN,
            kinds=list(p.get("kinds", [])),
            scope=dict(p.get("scope", {})),
            severity=Severity(p.get("severity", "warning")),
            opened_at=event.ts,
            root_cause=p.get("root_cause"),
            alerts=list(p.get("alerts", [])),
            title=str(p.get("title", "")),
        )
    elif t in (EventType.ALERT_GROUPED, EventType.ALERT_INHIBITED):
        if p["fingerprint"] not in state.setdefault("alerts", []):
            state["alerts"].append(p["fingerprint"])
        kind = p.get("kind")
        if kind and kind not in state.setdefault("kinds", []):
            state["kinds"].append(kind)
        if p.get("root_cause"):
            # A member higher in the topology took over as the most likely cause.
            state["root_cause"] = p["root_cause"]
            state["scope"] = dict(p.get("incident_scope", state.get("scope", {})))
            state["title"] = str(p.get("title", state.get("title", "")))
    elif t is EventType.INCIDENT_SEVERITY:
        state["severity"] = Severity(p["severity"])
    elif t is EventType.INCIDENT_ACKNOWLEDGED:
        if state.get("acknowledged_at") is None:
            state["acknowledged_at"] = event.ts
    elif t is EventType.INCIDENT_MITIGATED:
        if state.get("mitigated_at") is None:
            state["mitigated_at"] = event.ts
    elif t is EventType.INCIDENT_REOPENED:
        state.update(status=IncidentStatus.OPEN, resolved_at=None)
    elif t is EventType.INCIDENT_RESOLVED:
        state.update(status=IncidentStatus.RESOLVED, resolved_at=event.ts)
        if p.get("merged_into"):
            state["merged_into"] = p["merged_into"]


def incident_from_events(events: Iterable[Event]) -> Incident | None:
    """Fold one incident's events (in seq order); None if it was never opened."""
    state: dict[str, Any] = {}
    for event in events:
        if event.type in INCIDENT_TYPES:
            _incident_fold(state, event)
    if "id" not in state:
        return None
    state["kinds"] = tuple(state["kinds"])
    state["alerts"] = tuple(state["alerts"])
    return Incident.model_validate(state)


def incidents_from_events(events: Iterable[Event]) -> list[Incident]:
    """Fold a mixed stream into every incident it mentions, in order of opening."""
    states: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.incident_id is None or event.type not in INCIDENT_TYPES:
            continue
        state = states.setdefault(event.incident_id, {})
        _incident_fold(state, event)
    out = []
    for state in states.values():
        if "id" in state:
            state["kinds"] = tuple(state["kinds"])
            state["alerts"] = tuple(state["alerts"])
            out.append(Incident.model_validate(state))
    out.sort(key=lambda i: i.opened_at)
    return out


_RUN_STATES: dict[EventType, RunState] = {
    EventType.APPROVAL_REQUESTED: RunState.WAITING_APPROVAL,
    EventType.APPROVAL_GRANTED: RunState.RUNNING,
}


_MEMBER_EVENTS = (EventType.ALERT_FIRED, EventType.ALERT_GROUPED, EventType.ALERT_INHIBITED)


def incident_members(events: Iterable[Event]) -> dict[str, list[dict[str, Any]]]:
    """Incident id -> the distinct ``{"kind", "scope"}`` of the alerts filed under it (fired,
    grouped or inhibited), in order of arrival: a fallback storm filed under the provider
    outage that caused it is still listed as a storm on its own model group."""
    members: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
    for event in events:
        payload = event.payload
        if event.type not in _MEMBER_EVENTS or not event.incident_id or "kind" not in payload:
            continue
        scope = dict(payload.get("scope", {}))
        key = (str(payload["kind"]), scope_key(scope))
        members.setdefault(event.incident_id, {}).setdefault(
            key, {"kind": payload["kind"], "scope": scope}
        )
    return {incident: list(found.values()) for incident, found in members.items()}


def run_from_events(events: Iterable[Event]) -> ActionRun | None:
    """Fold one playbook run's events.

    ``step`` is one past the last step with a recorded milestone (approval reached its quorum,
    action applied, verification passed); wait and notify steps leave no event of their own.
    """
    state: dict[str, Any] = {}
    quorum: dict[int, int] = {}
    granters: dict[int, set[str]] = {}
    for event in events:
        p = event.payload
        step = p.get("step")
        if event.type is EventType.APPROVAL_REQUESTED and isinstance(step, int):
            quorum[step] = int(p.get("quorum", 1))
        if event.type is EventType.APPROVAL_GRANTED and isinstance(step, int):
            granters.setdefault(step, set()).add(str(p.get("by")))
            if len(granters[step]) < quorum.get(step, 1):
                # Not enough distinct approvers yet: the run still waits on this step.
                state["updated_at"] = event.ts
                continue
        if event.type is EventType.PLAYBOOK_STARTED:
            state.update(
                id=event.run_id,
                incident_id=event.incident_id,
                playbook=p["playbook"],
                mode=p.get("mode", "approve"),
                state=RunState.RUNNING,
                step=0,
                started_at=event.ts,
            )
        elif not state:
            continue
        elif event.type is EventType.PLAYBOOK_FINISHED:
            state["state"] = RunState(p["state"])
        elif event.type in _RUN_STATES:
            state["state"] = _RUN_STATES[event.type]
        elif event.type is EventType.APPROVAL_EXPIRED and p.get("outcome") == "proceed":
            state["state"] = RunState.RUNNING
        elif event.type is EventType.ACTION_ROLLED_BACK and p.get("by"):
            # A manual ``gatewarden undo`` (only it records who): the run's effect is gone.
            state["state"] = RunState.ROLLED_BACK
        advances = event.type in (
            EventType.APPROVAL_GRANTED,
            EventType.ACTION_APPLIED,
            EventType.VERIFICATION_PASSED,
        ) or (event.type is EventType.APPROVAL_EXPIRED and p.get("outcome") == "proceed")
        if advances and isinstance(step, int) and not p.get("rollback"):
            state["step"] = max(state.get("step", 0), step + 1)
        if state:
            state["updated_at"] = event.ts
    return ActionRun.model_validate(state) if state else None
