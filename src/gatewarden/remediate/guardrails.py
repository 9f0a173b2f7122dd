"""Safety limits on what remediation may do, all counted from the event log.

* actions per hour, globally and per playbook (``action.applied`` events, dry runs excluded);
* keys blocked at once (blocks applied by gatewarden minus unblocks, rollbacks, TTL ends);
* a circuit breaker per gateway, so a gateway that is down is not hammered by every run;
* retry backoff with jitter (:mod:`gatewarden.backoff`), so runs that failed together do not
  retry together.

The breaker is the one piece of in-memory state: it only delays calls, never decides an outcome,
so losing it on restart is harmless. A breaker left open past its reset time is reported as a
``circuit_open`` self-health alert (:func:`breaker_health`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from gatewarden.backoff import Jitter, exponential
from gatewarden.models import Event
from gatewarden.remediate.runlog import RunLog
from gatewarden.selfhealth import CIRCUIT_OPEN, HealthCheck, overdue

log = logging.getLogger(__name__)

HOUR = 3600.0


def actions_in_last_hour(runs: Iterable[RunLog], now: float, playbook: str | None = None) -> int:
    count = 0
    for run in runs:
        if playbook is not None and run.playbook != playbook:
            continue
        for index in run.applied_steps():
            applied = run.steps[index].applied
            if applied is not None and now - applied.ts < HOUR:
                count += 1
    return count


def _key_change(event: Event | None) -> tuple[str, str] | None:
    """(action type, key) when ``event`` carries a block_key/unblock_key action."""
    action = event.payload.get("action") if event is not None else None
    if not isinstance(action, Mapping) or action.get("type") not in ("block_key", "unblock_key"):
        return None
    params = action.get("params")
    key = params.get("key") if isinstance(params, Mapping) else None
    return (str(action["type"]), key) if isinstance(key, str) else None


def blocked_keys(runs: Iterable[RunLog]) -> set[str]:
    """Keys currently blocked by gatewarden: its applied blocks minus unblocks, rollbacks and
    blocks lifted when their TTL ran out."""
    changes: list[tuple[float, str, str]] = []
    for run in runs:
        for index in run.applied_steps():
            rec = run.steps[index]
            forward = _key_change(rec.intended)
            if forward is not None and rec.applied is not None:
                changes.append((rec.applied.ts, *forward))
            backward = _key_change(rec.rolled_back)
            if backward is not None and rec.rolled_back is not None:
                changes.append((rec.rolled_back.ts, *backward))
            expired = _key_change(rec.exp_intended)
            if expired is not None and rec.exp_applied is not None:
                changes.append((rec.exp_applied.ts, *expired))
    blocked: set[str] = set()
    for _, kind, key in sorted(changes):
        if kind == "block_key":
            blocked.add(key)
        else:
            blocked.discard(key)
    return blocked


def last_finished(
    runs: Iterable[RunLog], playbook: str, scope: str, scopes: Mapping[str, str]
) -> float | None:
    """When the latest run of ``playbook`` on an incident of scope ``scope`` finished;
    ``inf`` while one is still running (a scope never has two concurrent runs)."""
    latest: float | None = None
    for run in runs:
        if run.playbook != playbook or scopes.get(run.incident_id) != scope:
            continue
        if run.finished is None:
            return float("inf")
        latest = max(latest or run.finished.ts, run.finished.ts)
    return latest


class CircuitBreaker:
    """Opens after ``threshold`` consecutive transient failures; once ``reset_s`` has passed
    it lets a trial call through (half-open): success closes it, failure re-opens it."""

    def __init__(self, name: str, *, threshold: int = 3, reset_s: float = 60.0) -> None:
        self.name = name
        self.threshold = threshold
        self.reset_s = reset_s
        self._failures = 0
        self._opened_at: float | None = None
        # When it first opened since the last success: half-open trials that fail re-open it
        # (moving _opened_at) but it has been open all along.
        self._open_since: float | None = None

    @property
    def open(self) -> bool:
        return self._opened_at is not None

    @property
    def open_since(self) -> float | None:
        """When the circuit opened (None while closed), however many trials failed since."""
        return self._open_since

    @property
    def failures(self) -> int:
        """Consecutive transient failures since the last success."""
        return self._failures

    def allow(self, now: float) -> bool:
        return self._opened_at is None or now - self._opened_at >= self.reset_s

    def success(self) -> None:
        if self._opened_at is not None:
            log.info("gateway %s: circuit closed", self.name)
        self._failures = 0
        self._opened_at = None
        self._open_since = None

    def failure(self, now: float) -> None:
        self._failures += 1
        if self._failures >= self.threshold:
            if self._opened_at is None:
                log.warning("gateway %s: circuit open for %.0fs", self.name, self.reset_s)
                self._open_since = now
            # Calls are sequential, so a failed half-open trial re-opens before the next allow().
            self._opened_at = now


def breaker_health(breaker: CircuitBreaker, now: float) -> HealthCheck:
    """Failing while the circuit has stayed open past its reset time: its half-open trial
    failed too, or no call has been tried since (remediation cannot reach the gateway)."""
    return overdue(
        CIRCUIT_OPEN,
        {"gateway": breaker.name},
        since=breaker.open_since,
        now=now,
        limit_s=breaker.reset_s,
        metric="circuit_open_seconds",
        detail=f"{breaker.failures} consecutive transient failures of gateway admin calls",
    )


def backoff_delay(
    attempt: int, base: float, cap: float, jitter: Jitter | None = None, key: str = ""
) -> float:
    """Delay before attempt ``attempt + 1`` after ``attempt`` failures: up to 1, 2, 4 ... x
    base (capped), shortened by ``jitter``'s draw for ``key`` (exactly that without one)."""
    delay = exponential(attempt, base, cap)
    return delay if jitter is None else jitter.scale(delay, key)


def retry_at(failures: list[Event], base: float, cap: float, jitter: Jitter | None = None) -> float:
    """Earliest time of the next attempt given the retryable failures so far.

    The jitter is drawn for the last failure's key, so every tick (and a restarted daemon)
    computes the same instant from the same events.
    """
    if not failures:
        return float("-inf")
    last = failures[-1]
    key = last.key or f"{last.run_id}:{last.seq}:{last.ts!r}"
    return last.ts + backoff_delay(len(failures), base, cap, jitter, key)
