"""In-memory view of the incidents the correlator is still responsible for, rebuilt from the
event log after a restart."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from gatewarden.correlate.alerts import AlertState
from gatewarden.correlate.grouping import topology_rank
from gatewarden.correlate.impact import Impact
from gatewarden.models import Event, EventType, Severity

#: Event types the correlator folds on restart.
RESTORE_TYPES = (
    EventType.ALERT_FIRED,
    EventType.ALERT_RESOLVED,
    EventType.ALERT_SILENCED,
    EventType.INCIDENT_OPENED,
    EventType.ALERT_GROUPED,
    EventType.ALERT_INHIBITED,
    EventType.INCIDENT_SEVERITY,
    EventType.INCIDENT_RESOLVED,
    EventType.INCIDENT_REOPENED,
)


@dataclass
class Member:
    kind: str
    scope: dict[str, str]
    onset: float
    explains: int = 0


@dataclass
class OpenIncident:
    id: str
    root: str
    severity: Severity
    members: dict[str, Member] = field(default_factory=dict)
    last_fired_ts: float = 0.0
    resolved_at: float | None = None
    impact: Impact = field(default_factory=Impact)

    @property
    def root_member(self) -> Member:
        return self.members[self.root]

    def rank_key(self, fp: str) -> tuple[int, float, tuple[int, int]]:
        """Root-cause order: explains the most, then earliest onset, then highest in topology."""
        m = self.members[fp]
        return (-m.explains, m.onset, topology_rank(m.scope))


def restore(
    events: Iterable[Event],
) -> tuple[dict[str, OpenIncident], dict[str, AlertState]]:
    """Fold the log into the incidents and the firing (or silenced) alerts it describes."""
    incidents: dict[str, OpenIncident] = {}
    firing: dict[str, AlertState] = {}
    for event in events:
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
        elif event.type is EventType.ALERT_SILENCED and p["fingerprint"] in firing:
            firing[p["fingerprint"]].silenced_by = p.get("silence_id")
        elif event.type is EventType.INCIDENT_OPENED and event.incident_id:
            onset = firing.get(p["root_cause"])
            incidents[event.incident_id] = OpenIncident(
                id=event.incident_id,
                root=p["root_cause"],
                severity=Severity(p["severity"]),
                members={
                    p["root_cause"]: Member(
                        p["kinds"][0],
                        dict(p["scope"]),
                        (onset.first_bad_ts or event.ts) if onset else event.ts,
                    )
                },
                last_fired_ts=event.ts,
            )
        elif event.incident_id in incidents:
            _fold_member(incidents[event.incident_id], event, firing)
    return incidents, firing


def _fold_member(incident: OpenIncident, event: Event, firing: dict[str, AlertState]) -> None:
    p = event.payload
    if event.type in (EventType.ALERT_GROUPED, EventType.ALERT_INHIBITED):
        state = firing.get(p["fingerprint"])
        onset = state.first_bad_ts if state and state.first_bad_ts else event.ts
        previous = incident.members.get(p["fingerprint"])
        if previous is not None:  # a recurrence keeps its first onset, as in the live path
            onset = min(previous.onset, onset)
        incident.members[p["fingerprint"]] = Member(p["kind"], dict(p["scope"]), onset)
        incident.last_fired_ts = event.ts
        if p.get("root_cause"):
            incident.root = p["root_cause"]
    elif event.type is EventType.INCIDENT_SEVERITY:
        incident.severity = Severity(p["severity"])
    elif event.type is EventType.INCIDENT_RESOLVED:
        incident.resolved_at = event.ts
    elif event.type is EventType.INCIDENT_REOPENED:
        incident.resolved_at = None
