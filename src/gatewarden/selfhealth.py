"""Gatewarden's own health as alerts: a gateway circuit left open, a stuck notification outbox,
a store failing writes.

They follow the convention of the source alert (``gateway_unreachable`` in
:mod:`gatewarden.pipeline`): the pipeline evaluates every check at the start of a tick, before
the stages, from the state the previous ticks left; a failing check becomes an :class:`Alert`
(detector ``self-health``, severity critical) that the correlator dedups, groups and routes
like any other, and a passing one clears its fingerprint, so the incident resolves through the
usual hysteresis. A component with nothing to say yet (no flush, no call) reports no check:
the correlator treats that as "no data".

Stages opt in by implementing :class:`SelfReporting` (the remediation stage reports its
gateway circuit breaker, the notify stage its outbox); the store is watched by the pipeline
itself through :class:`StoreHealth`, since the store is what every stage writes to.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from gatewarden.models import Alert, Evidence, Severity, fingerprint

DETECTOR = "self-health"
#: a gateway's circuit breaker still open after its reset time: remediation cannot act
CIRCUIT_OPEN = "circuit_open"
#: a notifier's oldest undelivered message is older than the outbox's threshold
OUTBOX_STUCK = "outbox_stuck"
#: ticks failed on store errors: the event log (and so every incident) may be incomplete
STORE_FAILING = "store_failing"


@dataclass(frozen=True)
class HealthCheck:
    """One self-health verdict, with the evidence its alert carries when it fails."""

    kind: str
    scope: Mapping[str, str]
    failing: bool
    metric: str
    observed: float
    expected: float
    window_s: float
    detail: str = ""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.kind, self.scope)

    def alert(self, now: float) -> Alert:
        evidence = Evidence(
            metric=self.metric,
            observed=self.observed,
            expected=self.expected,
            score=self.observed,
            window_s=self.window_s,
            detail=self.detail[:300],
        )
        return Alert(
            kind=self.kind,
            scope=dict(self.scope),
            detector=DETECTOR,
            ts=now,
            severity=Severity.CRITICAL,
            evidence=evidence,
        )


def overdue(
    kind: str,
    scope: Mapping[str, str],
    *,
    since: float | None,
    now: float,
    limit_s: float,
    metric: str,
    detail: str = "",
) -> HealthCheck:
    """Failing once something has been in a bad state (since ``since``; None: it is not) for
    longer than ``limit_s``."""
    age = 0.0 if since is None else max(0.0, now - since)
    return HealthCheck(
        kind=kind,
        scope=scope,
        failing=age > limit_s,
        metric=metric,
        observed=age,
        expected=0.0,
        window_s=age,
        detail=detail if since is not None else "",
    )


@runtime_checkable
class SelfReporting(Protocol):
    """A stage that can say whether the part of gatewarden it runs is healthy."""

    def self_health(self, now: float) -> Sequence[HealthCheck]: ...


@dataclass
class StoreHealth:
    """Ticks that failed on a store error, over a sliding window.

    ``failing_after`` failed ticks within ``window_s`` fire ``store_failing`` (one blip, a
    database restart of a tick or two, does not page); it clears once the window holds none.
    """

    failing_after: int = 3
    window_s: float = 600.0
    last_error: str = ""
    failures: deque[float] = field(default_factory=deque)

    def failed(self, now: float, error: str) -> None:
        self.failures.append(now)
        self.last_error = error

    def recent(self, now: float) -> int:
        while self.failures and self.failures[0] <= now - self.window_s:
            self.failures.popleft()
        return len(self.failures)

    def check(self, now: float) -> HealthCheck:
        count = self.recent(now)
        return HealthCheck(
            kind=STORE_FAILING,
            scope={"component": "store"},
            failing=count >= self.failing_after,
            metric="failed_ticks",
            observed=float(count),
            expected=0.0,
            window_s=self.window_s,
            detail=self.last_error if count else "",
        )
