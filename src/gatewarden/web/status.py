"""What the daemon knows about itself: one snapshot feeds /healthz, /readyz and /metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from gatewarden.ingest.health import SourceHealth


@dataclass(frozen=True)
class StatusSnapshot:
    now: float
    tick_seconds: float
    ticks: int
    last_tick_at: float | None
    last_tick_duration_s: float
    records: int
    malformed: int
    overruns: int
    sources: tuple[SourceHealth, ...]
    detector_series: int
    open_incidents: int
    outbox_depth: int
    action_failures: int
    store_ok: bool
    store_error: str = ""
    leader: bool = True
    extra: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The pipeline's SourceHealth objects change on the tick thread while a scrape reads
        # them: keep copies, so one response describes one instant.
        copies = tuple(replace(s, details=dict(s.details)) for s in self.sources)
        object.__setattr__(self, "sources", copies)

    @property
    def tick_age_s(self) -> float | None:
        return None if self.last_tick_at is None else max(0.0, self.now - self.last_tick_at)

    def live(self) -> tuple[bool, str]:
        """Alive = the tick loop is turning (a wedged scheduler must fail liveness)."""
        age = self.tick_age_s
        if age is None:
            return True, "starting: no tick yet"
        limit = max(3 * self.tick_seconds, 30.0)
        if age > limit:
            return False, f"no tick for {age:.0f}s (limit {limit:.0f}s)"
        return True, f"last tick {age:.1f}s ago"

    def source_status(self) -> str:
        """``ok``, or ``degraded`` while a source is down (the daemon itself is fine)."""
        return "degraded" if any(not s.up for s in self.sources) else "ok"

    def ready(self) -> tuple[bool, str]:
        """Ready = can do its job: store reachable, ticking, and not every source failing."""
        if not self.store_ok:
            return False, f"store unavailable: {self.store_error}"
        if self.ticks == 0:
            return False, "no tick completed yet"
        if self.sources and not any(s.up for s in self.sources):
            return False, "every source is failing"
        return True, "ok" if self.leader else "ok (standby)"


StatusProvider = Callable[[], StatusSnapshot]
