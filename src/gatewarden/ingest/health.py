"""Per-source health, reported on the daemon's /metrics and /healthz."""

from __future__ import annotations

from dataclasses import dataclass


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
