"""Per-alert hysteresis state: the dedup book. One entry per fingerprint (kind + scope)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from gatewarden.models import Alert


class Transition(StrEnum):
    NONE = "none"
    FIRED = "fired"
    UPDATED = "updated"
    RESOLVED = "resolved"


@dataclass
class AlertState:
    fingerprint: str
    kind: str
    scope: dict[str, str]
    bad_ticks: int = 0
    good_ticks: int = 0
    firing: bool = False
    first_bad_ts: float | None = None
    fired_at: float | None = None
    last_update_ts: float = 0.0
    incident_id: str | None = None
    last: Alert | None = None
    peak: Alert | None = None
    resolve_reason: str = ""
    silenced_by: str | None = None
    extra: dict[str, float] = field(default_factory=dict)


class AlertBook:
    """Tracks every series that ever fired or is about to; applies open/resolve hysteresis."""

    def __init__(self, *, open_after: int, resolve_after: int, update_interval_s: float) -> None:
        self.open_after = open_after
        self.resolve_after = resolve_after
        self.update_interval_s = update_interval_s
        self._states: dict[str, AlertState] = {}

    def __len__(self) -> int:
        return len(self._states)

    def get(self, fingerprint: str) -> AlertState | None:
        return self._states.get(fingerprint)

    def fingerprints(self) -> list[str]:
        """Every tracked fingerprint (a copy: observing may forget entries)."""
        return list(self._states)

    def firing(self) -> list[AlertState]:
        return [s for s in self._states.values() if s.firing]

    def observe_bad(self, alert: Alert) -> tuple[AlertState, Transition]:
        fp = alert.fingerprint
        state = self._states.get(fp)
        if state is None:
            state = AlertState(fingerprint=fp, kind=alert.kind, scope=dict(alert.scope))
            self._states[fp] = state
        if state.bad_ticks == 0:
            state.first_bad_ts = alert.ts
        state.bad_ticks += 1
        state.good_ticks = 0
        state.last = alert
        if state.peak is None or alert.evidence.score >= state.peak.evidence.score:
            state.peak = alert
        if not state.firing:
            if state.bad_ticks >= self.open_after:
                state.firing = True
                state.fired_at = alert.ts
                state.last_update_ts = alert.ts
                return state, Transition.FIRED
            return state, Transition.NONE
        if alert.ts - state.last_update_ts >= self.update_interval_s:
            state.last_update_ts = alert.ts
            return state, Transition.UPDATED
        return state, Transition.NONE

    def observe_good(self, fingerprint: str, *, no_data: bool = False) -> Transition:
        """A healthy tick (or, for a firing alert, a tick without data) for this series."""
        state = self._states.get(fingerprint)
        if state is None:
            return Transition.NONE
        state.bad_ticks = 0
        state.good_ticks += 1
        if state.firing and state.good_ticks >= self.resolve_after:
            state.firing = False
            state.resolve_reason = "no data" if no_data else "recovered"
            state.peak = None
            return Transition.RESOLVED
        if not state.firing and state.good_ticks >= self.resolve_after:
            # A blip that never fired: forget it so the book does not grow without bound.
            del self._states[fingerprint]
        return Transition.NONE

    def restore(self, state: AlertState) -> None:
        """Re-create a firing entry from the event log after a restart."""
        self._states[state.fingerprint] = state
