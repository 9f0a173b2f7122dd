"""Per-source health, reported on the daemon's /metrics and /healthz, and the pipeline's
source boundary that keeps it.

The pipeline keeps one :class:`SourceHealth` per source and pulls every source through
:func:`pull_guarded`: a pull that fails, however it fails, is counted and logged with the
source's name and leaves the other sources and the tick running. Consecutive failures become
a ``gateway_unreachable`` alert in the pipeline. A source may report its own figures (stale
scrapes, a push receiver's last export, ...) by implementing :class:`HealthDetails`; they are
taken after each successful pull and reported with the pipeline's.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from gatewarden.errors import SourceError
from gatewarden.protocols import Batch, Source

log = logging.getLogger(__name__)

Figure = float | int | str | None


@dataclass
class SourceHealth:
    name: str
    pulls: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    #: failures that were not a SourceError: a bug in the source, or input it did not expect
    unexpected: int = 0
    malformed: int = 0
    records: int = 0
    samples: int = 0
    last_success: float | None = None
    last_error: str = ""
    #: the source's own figures (:class:`HealthDetails`) as of its last successful pull
    details: dict[str, Figure] = field(default_factory=dict)

    @property
    def up(self) -> bool:
        """The last pull worked. A source never pulled is not up: nothing says it works."""
        return self.pulls > 0 and self.consecutive_failures == 0

    def ok(
        self,
        now: float,
        *,
        records: int = 0,
        samples: int = 0,
        malformed: int = 0,
        details: dict[str, Figure] | None = None,
    ) -> None:
        self.pulls += 1
        self.consecutive_failures = 0
        self.last_success = now
        self.records += records
        self.samples += samples
        self.malformed += malformed
        if details is not None:
            self.details = details  # replaced, never mutated: readers on other threads

    def failed(self, error: str, *, unexpected: bool = False) -> None:
        self.pulls += 1
        self.failures += 1
        self.consecutive_failures += 1
        self.unexpected += int(unexpected)
        self.last_error = error

    def lag(self, now: float) -> float | None:
        return None if self.last_success is None else max(0.0, now - self.last_success)

    def as_dict(self, now: float) -> dict[str, Figure]:
        """The pipeline's figures, then the source's own (which must not reuse these keys).
        Non-finite numbers become None so the result is valid JSON."""
        report: dict[str, Figure] = {
            "name": self.name,
            "up": self.up,
            "pulls": self.pulls,
            "failures": self.failures,
            "consecutive_failures": self.consecutive_failures,
            "unexpected_errors": self.unexpected,
            "malformed": self.malformed,
            "records": self.records,
            "samples": self.samples,
            "last_success": self.last_success,
            "lag_s": self.lag(now),
            "last_error": self.last_error,
        }
        for key, value in self.details.items():
            report.setdefault(key, value)
        return {k: _finite(v) for k, v in report.items()}


def _finite(value: Figure) -> Figure:
    return None if isinstance(value, float) and not math.isfinite(value) else value


@runtime_checkable
class HealthDetails(Protocol):
    """A source that knows more about its health than pull outcomes."""

    def health_details(self, now: float) -> dict[str, Figure]: ...


def pull_guarded(source: Source, health: SourceHealth, now: float) -> Batch | None:
    """Pull ``source`` up to ``now`` and record the outcome in ``health``; None if it failed."""
    try:
        batch = source.pull(now)
        details = source.health_details(now) if isinstance(source, HealthDetails) else None
    except SourceError as exc:
        health.failed(str(exc))
        log.warning(
            "source %s failed (%d in a row): %s", source.name, health.consecutive_failures, exc
        )
        return None
    except Exception as exc:  # the one broad catch around every source (ruff BLE: logged)
        # Sources are the plug-in seam of the daemon and wrap libraries whose exception trees
        # are open-ended (httpx, protobuf, pandas, the OS); SourceError is what a source
        # expects, anything else is a bug or input it did not foresee. Either way one source
        # must not stop the others or the tick: count it like any failed pull (so it becomes a
        # gateway_unreachable alert if it persists) and log it with its traceback.
        # BaseException (KeyboardInterrupt, SystemExit) still propagates.
        error = f"{type(exc).__name__}: {exc}"
        new = error != health.last_error
        health.failed(error, unexpected=True)
        log.error(
            "source %s raised an unexpected %s (%d failed pulls in a row): %s",
            source.name,
            type(exc).__name__,
            health.consecutive_failures,
            exc,
            exc_info=exc if new else None,  # one traceback per distinct error, not per tick
        )
        return None
    health.ok(
        now,
        records=len(batch.records),
        samples=len(batch.samples),
        malformed=batch.malformed,
        details=details,
    )
    return batch
