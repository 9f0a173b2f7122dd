"""Assembly and scheduling: config -> sources, stages, store -> a Pipeline driven by APScheduler.

The same ``build`` serves ``run``, ``demo`` and tests; only the clock, the sources and the
gateway adapter differ.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.schedulers.blocking import BlockingScheduler

from gatewarden.aggregate import AggregateStage, SeriesHistory, ticks_needed
from gatewarden.clock import SystemClock
from gatewarden.config import (
    DaemonConfig,
    WebConfig,
)
from gatewarden.console import console_routes
from gatewarden.correlate import CorrelateStage
from gatewarden.detect import DetectStage, load_detector_specs
from gatewarden.errors import StoreError
from gatewarden.gateways.traffic import PREVIEW_TICKS, TrafficPreviewGateway
from gatewarden.ha.leader import FencedGateway, LeaderElector
from gatewarden.ha.stages import LeaderOnly, LeaseStage, leader_only
from gatewarden.httpserve import ThreadedServer
from gatewarden.ingest.sample_frames import SampleFramesStage
from gatewarden.models import EventType
from gatewarden.notify import NotifyStage, SlackParts, build_notifiers, build_slack
from gatewarden.pipeline import Pipeline
from gatewarden.protocols import Clock, GatewayAdmin, Source, Stage, Store, Tick
from gatewarden.remediate import DemoAutoApprover, RemediateStage, load_playbooks
from gatewarden.report import ReportStage, SeriesRecorder
from gatewarden.report.series import LOOKBACK_TICKS
from gatewarden.web import StatusSnapshot, create_app
from gatewarden.wiring import build_elector, build_gateway, build_sources, open_store

log = logging.getLogger(__name__)


@dataclass
class Assembly:
    pipeline: Pipeline
    store: Store
    history: SeriesHistory
    remediate: RemediateStage
    correlate: CorrelateStage
    notify: NotifyStage
    clock: Clock
    elector: LeaderElector | None = None
    slack: SlackParts | None = None
    #: console user id -> that user's token (``console.users``): who may decide in the console
    console_users: dict[str, str] = field(default_factory=dict)
    closers: list[Callable[[], None]] = field(default_factory=list)
    overruns: int = 0

    def _correlator(self) -> CorrelateStage:
        """The live correlator (under HA it is rebuilt at each leadership term)."""
        for stage in self.pipeline.stages:
            inner = stage.inner if isinstance(stage, LeaderOnly) else stage
            if isinstance(inner, CorrelateStage):
                return inner
        return self.correlate

    def status(self) -> StatusSnapshot:
        """A consistent picture of the daemon for /healthz, /readyz and /metrics."""
        stats = self.pipeline.stats
        store_ok, store_error, outbox, failures = True, "", 0, 0
        try:
            outbox = len(self.notify.pending())
            failures = len(self.store.events(types=[EventType.ACTION_FAILED]))
        except StoreError as exc:
            store_ok, store_error = False, str(exc)
        return StatusSnapshot(
            now=self.clock.now(),
            tick_seconds=self.pipeline.tick_seconds,
            ticks=stats.ticks,
            last_tick_at=stats.last_tick_at,
            last_tick_duration_s=stats.last_duration_s,
            records=stats.records,
            malformed=stats.malformed,
            overruns=self.overruns,
            sources=tuple(self.pipeline.health.values()),
            detector_series=stats.series_last_tick,
            open_incidents=self._correlator().open_count(),
            outbox_depth=outbox,
            action_failures=failures,
            store_ok=store_ok,
            store_error=store_error,
            leader=self.elector.is_leader if self.elector is not None else True,
        )

    def close(self) -> None:
        for closer in self.closers:
            closer()
        self.store.close()


def build(
    config: DaemonConfig,
    *,
    clock: Clock,
    env: Mapping[str, str],
    stream: TextIO = sys.stdout,
    sources: Sequence[Source] | None = None,
    gateway: GatewayAdmin | None = None,
    store: Store | None = None,
    wall_clock: Clock | None = None,
) -> Assembly:
    """Wire one pipeline from the config. Raises ConfigError on any invalid part.
    ``wall_clock`` (default: system) times what is real whatever ``clock`` simulates (Slack)."""
    specs = load_detector_specs(config.detectors_dir)
    playbooks = load_playbooks(config.playbooks_dir)
    store = store or open_store(config)
    # as many ticks as its readers look back (charts, traffic previews), within a byte budget
    history = SeriesHistory(ticks_needed(LOOKBACK_TICKS, PREVIEW_TICKS), min_len=PREVIEW_TICKS)
    gateway = TrafficPreviewGateway(gateway or build_gateway(config, env), history)
    groups = config.remediate.approver_groups
    slack = build_slack(config.notify, groups, env, store, clock, wall_clock or SystemClock())
    elector = build_elector(config, store, clock) if config.ha.enabled else None
    if elector is not None:
        # Every gateway call re-checks the fencing token: a deposed leader cannot act.
        gateway = FencedGateway(gateway, elector)
    remediate = RemediateStage(
        playbooks,
        store,
        gateway,
        history,
        clock,
        kill_switch=config.remediate.kill_switch,
        max_actions_per_hour=config.remediate.max_actions_per_hour,
        max_keys_blocked=config.remediate.max_keys_blocked,
        approver_groups=slack.approver_groups,  # config groups, then Slack user groups
    )
    correlate = CorrelateStage(store, config.correlate)
    acting: list[Stage] = [SeriesRecorder(store, history), remediate]
    if config.remediate.demo_auto_approve:
        log.warning("DEMO MODE: every approval is granted automatically by demo-auto-approver")
        acting.append(DemoAutoApprover(store))
    notify = NotifyStage(
        store,
        build_notifiers(config.notify, env, stream),
        clock,
        series=history,
        tick_seconds=config.tick_seconds,
        chart_ticks=config.notify.chart_ticks,
    )
    acting += [notify, ReportStage(store, config.reports_dir, clock)]
    # Frame values from scrapes (e.g. LiteLLM's TTFT histogram) fill what records lack.
    stages: list[Stage] = [
        AggregateStage(),
        SampleFramesStage(),
        DetectStage(specs, history=history),
    ]
    if elector is None:
        stages += [correlate, *acting]
    else:
        # Standbys keep detecting (warm baselines); only the leader correlates and acts. The
        # correlator is rebuilt each term because it loads open incidents when constructed.
        led = LeaderOnly(
            correlate, elector, rebuild=lambda: CorrelateStage(store, config.correlate)
        )
        stages = [LeaseStage(elector), *stages, led, *leader_only(elector, acting)]
    closers: list[Callable[[], None]] = []
    closers.append(slack.close)
    if sources is None:
        sources = build_sources(
            config, since=clock.now() - config.tick_seconds, env=env, clock=clock, closers=closers
        )
    pipeline = Pipeline(sources, stages, clock, tick_seconds=config.tick_seconds, checkpoints=store)
    return Assembly(
        slack=slack,
        console_users=config.console_tokens(env),
        pipeline=pipeline,
        store=store,
        history=history,
        remediate=remediate,
        correlate=correlate,
        notify=notify,
        clock=clock,
        elector=elector,
        closers=closers,
    )


class Daemon:
    """Runs ``pipeline.tick`` every ``interval_s`` real seconds until stopped (SIGTERM/SIGINT or
    ``stop_when``). A tick that overruns is coalesced, never stacked."""

    def __init__(
        self,
        assembly: Assembly,
        *,
        interval_s: float,
        stop_when: Callable[[Tick], bool] | None = None,
        on_tick: Callable[[Tick], None] | None = None,
        web: WebConfig | None = None,
        console_token: str | None = None,
    ) -> None:
        self.assembly = assembly
        self.interval_s = interval_s
        self.stop_when = stop_when
        self.on_tick = on_tick
        self.scheduler = BlockingScheduler()
        self.scheduler.add_listener(self._overrun, EVENT_JOB_MAX_INSTANCES)
        self.stopped_by: str = ""
        self._tick_lock = threading.Lock()
        self.web = web
        self.console_token = console_token
        self.web_server: ThreadedServer | None = None
        self._last_overrun_log = float("-inf")

    def _overrun(self, event: JobSubmissionEvent) -> None:
        """A tick was still running when the next was due: it is coalesced, and we say so at
        most once a minute instead of once per missed tick."""
        self.assembly.overruns += 1
        now = time.monotonic()
        if now - self._last_overrun_log >= 60:
            self._last_overrun_log = now
            log.warning(
                "tick overran its %.3gs interval (%d overruns so far); ticks are coalesced",
                self.interval_s,
                self.assembly.overruns,
            )

    def _tick(self) -> None:
        # The lock lets run() wait for an in-flight tick before the store is closed.
        with self._tick_lock:
            if self.stopped_by:
                return
            tick = self.assembly.pipeline.tick()
            if self.on_tick is not None:
                self.on_tick(tick)
            if self.stop_when is not None and self.stop_when(tick):
                self.stop("finished")

    def stop(self, why: str) -> None:
        if not self.stopped_by:
            self.stopped_by = why
            log.info("stopping: %s", why)
            self.scheduler.shutdown(wait=False)

    def start_web(self) -> str | None:
        if self.web is None or not self.web.enabled:
            return None
        a = self.assembly
        live = a.slack.live_groups if a.slack is not None else None
        routes = console_routes(
            a.store, a.clock, self.console_token, users=a.console_users, live_groups=live
        )
        routes += a.slack.http_routes() if a.slack is not None else []
        app = create_app(self.assembly.status, extra_routes=routes)
        self.web_server = ThreadedServer(app, host=self.web.host, port=self.web.port, name="web")
        url = self.web_server.start()
        log.info("serving /healthz /readyz /metrics on %s", url)
        if self.console_token or a.console_users:
            log.info("console on %s/console/ (%d can decide)", url, len(a.console_users))
        else:
            log.info("incident console off: set web.token or console.users to enable it")
        return url

    def run(self) -> None:
        self.scheduler.add_job(
            self._tick,
            "interval",
            seconds=self.interval_s,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=datetime.now(UTC),  # first tick at once, not one interval later
            id="tick",
        )
        previous = {
            sig: signal.signal(sig, lambda signum, _frame: self.stop(signal.Signals(signum).name))
            for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.start_web()
            if self.assembly.slack is not None:
                self.assembly.slack.start()
            self.scheduler.start()
            with self._tick_lock:
                pass  # a tick still running finishes before the caller closes the store
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self.web_server is not None:
                self.web_server.stop()
