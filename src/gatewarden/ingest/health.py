"""Per-source health, reported on the daemon's /metrics and /healthz.

The pipeline keeps one :class:`SourceHealth` per source (pull successes and failures); a
source may add its own figures (stale scrapes, a push receiver's last export, ...) by
implementing :class:`HealthDetails`. :func:`health_report` merges both for the endpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

Figure = float | int | str | None


@dataclass
class SourceHealth:
    name: str
    pulls: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    malformed: int = 0
    records: int = 0
    samples: int = 0
    last_success: float | None = None
    last_error: str = ""

    def ok(self, now: float, *, records: int = 0, samples: int = 0, malformed: int = 0) -> None:
        self.pulls += 1
        self.consecutive_failures = 0
        self.last_success = now
        self.records += records
        self.samples += samples
        self.malformed += malformed

    def failed(self, error: str) -> None:
        self.pulls += 1
        self.failures += 1
        self.consecutive_failures += 1
        self.last_error = error

    def lag(self, now: float) -> float | None:
        return None if self.last_success is None else max(0.0, now - self.last_success)

    def as_dict(self, now: float) -> dict[str, Figure]:
        return {
            "pulls": self.pulls,
            "failures": self.failures,
            "consecutive_failures": self.consecutive_failures,
            "malformed": self.malformed,
            "records": self.records,
            "samples": self.samples,
            "last_success": self.last_success,
            "lag_s": self.lag(now),
            "last_error": self.last_error,
        }


@runtime_checkable
class HealthDetails(Protocol):
    """A source that knows more about its health than pull outcomes."""

    def health_details(self, now: float) -> dict[str, Figure]: ...


def health_report(health: SourceHealth, source: object, now: float) -> dict[str, Figure]:
    """The pipeline's view of a source plus the source's own figures (prefixed by nothing;
    a source must not reuse the pipeline's keys)."""
    report = health.as_dict(now)
    if isinstance(source, HealthDetails):
        for key, value in source.health_details(now).items():
            report.setdefault(key, value)
    return report
