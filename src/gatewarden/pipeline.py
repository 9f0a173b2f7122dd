"""One tick, six stages, no back-edges. Live mode and backtest share this code; they differ
only in the Clock and the Sources.

Before the stages run, the pipeline turns gatewarden's own health into alerts: sources that
keep failing (``gateway_unreachable``) and the :mod:`gatewarden.selfhealth` checks (a gateway
circuit left open, a stuck outbox, ticks failing on store errors)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from gatewarden.crashpoints import crashpoint
from gatewarden.errors import LeaseLostError, StoreError
from gatewarden.ingest.health import SourceHealth, pull_guarded
from gatewarden.ingest.request_log import empty_frame
from gatewarden.models import Alert, Evidence, Severity, fingerprint
from gatewarden.protocols import Batch, Checkpointed, Clock, Source, Stage, Store, Tick
from gatewarden.selfhealth import SelfReporting, StoreHealth

log = logging.getLogger(__name__)

#: Consecutive failed pulls before a source counts as unreachable (one blip does not page).
UNREACHABLE_AFTER = 3
#: Keyed state the pipeline writes to check the store takes writes again after failures.
STORE_PROBE = "pipeline.store_probe"


@dataclass
class TickStats:
    ticks: int = 0
    records: int = 0
    malformed: int = 0
    last_duration_s: float = 0.0
    last_tick_at: float | None = None
    series_last_tick: int = 0


class Pipeline:
    def __init__(
        self,
        sources: Sequence[Source],
        stages: Sequence[Stage],
        clock: Clock,
        *,
        tick_seconds: float,
        checkpoints: Store | None = None,
    ) -> None:
        self.sources = list(sources)
        self.checkpoints = checkpoints
        if checkpoints is not None:
            self._restore_checkpoints(checkpoints)
        self.stages = list(stages)
        self.clock = clock
        self.tick_seconds = tick_seconds
        self.health = {s.name: SourceHealth(s.name) for s in self.sources}
        self.store_health = StoreHealth()
        self.stats = TickStats()
        self._last: float | None = None

    def _restore_checkpoints(self, store: Store) -> None:
        """Resume each checkpointed source where the last completed tick left it, so the
        traffic that arrived while the daemon was down is still read."""
        for source in self.sources:
            if isinstance(source, Checkpointed):
                saved = store.get_state(f"source.{source.name}.checkpoint")
                if saved is not None:
                    source.restore(saved)
                    log.info("source %s resumes from checkpoint %s", source.name, saved)

    def _save_checkpoints(self) -> None:
        if self.checkpoints is None:
            return
        for source in self.sources:
            if isinstance(source, Checkpointed):
                self.checkpoints.put_state(f"source.{source.name}.checkpoint", source.checkpoint())

    def _pull(self, now: float) -> list[Batch]:
        # pull_guarded never raises for a source's failure, whatever its type: it is counted in
        # the source's health (-> gateway_unreachable below) and the other sources still run.
        batches = []
        for source in self.sources:
            batch = pull_guarded(source, self.health[source.name], now)
            if batch is not None:
                batches.append(batch)
        return batches

    def _source_alerts(self, tick: Tick) -> None:
        """A source that keeps failing is itself an incident: the gateway may be down."""
        for name, health in self.health.items():
            scope = {"source": name}
            if health.consecutive_failures >= UNREACHABLE_AFTER:
                evidence = Evidence(
                    metric="consecutive_failed_pulls",
                    observed=float(health.consecutive_failures),
                    expected=0.0,
                    score=float(health.consecutive_failures),
                    window_s=health.consecutive_failures * self.tick_seconds,
                    detail=health.last_error[:300],
                )
                tick.alerts.append(
                    Alert(
                        kind="gateway_unreachable",
                        scope=scope,
                        detector="source-health",
                        ts=tick.now,
                        severity=Severity.CRITICAL,
                        evidence=evidence,
                    )
                )
            elif health.consecutive_failures == 0:
                tick.clear.add(fingerprint("gateway_unreachable", scope))

    def _self_alerts(self, tick: Tick) -> None:
        """Gatewarden's own health, by the source alerts' convention (:mod:`.selfhealth`)."""
        checks = [self.store_health.check(tick.now)]
        for stage in self.stages:
            if isinstance(stage, SelfReporting):
                checks.extend(stage.self_health(tick.now))
        for check in checks:
            if check.failing:
                tick.alerts.append(check.alert(tick.now))
            else:
                tick.clear.add(check.fingerprint)

    def _probe_store(self, now: float) -> None:
        """After recent store failures, the store must take a write before the tick consumes
        its sources and feeds the correlator, whose memory would otherwise run ahead of the
        events it could not record (and a store_failing alert would fire into the void)."""
        if self.checkpoints is None or not self.store_health.recent(now):
            return
        try:
            self.checkpoints.put_state(STORE_PROBE, repr(now))
        except StoreError as exc:
            self.store_health.failed(now, str(exc))
            raise

    def tick(self, now: float | None = None) -> Tick:
        started = time.perf_counter()
        now = self.clock.now() if now is None else now
        start = self._last if self._last is not None else now - self.tick_seconds
        self._probe_store(now)
        batches = self._pull(now)
        frames = [b.records for b in batches if not b.records.empty]
        records = pd.concat(frames, ignore_index=True) if frames else empty_frame()
        tick = Tick(
            now=now,
            start=start,
            records=records,
            samples=[s for b in batches for s in b.samples],
            malformed=sum(b.malformed for b in batches),
        )
        self._source_alerts(tick)
        self._self_alerts(tick)
        try:
            for stage in self.stages:
                stage.run(tick)
                crashpoint(f"tick.after_{stage.name}")
            # Only a completed tick moves the checkpoints: a crash mid-tick re-reads its window.
            self._save_checkpoints()
        except LeaseLostError:
            raise  # leadership moved on: not the store failing
        except StoreError as exc:
            self.store_health.failed(now, str(exc))
            raise
        self._last = now
        self.stats.ticks += 1
        self.stats.records += len(records)
        self.stats.malformed += tick.malformed
        self.stats.last_duration_s = time.perf_counter() - started
        self.stats.last_tick_at = now
        self.stats.series_last_tick = sum(len(frame) for frame in tick.frames.values())
        return tick
