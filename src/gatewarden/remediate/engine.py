"""RemediateStage: runs playbooks against open incidents as persisted state machines.

Each tick it (1) starts a run for every open incident that matches a playbook and has none yet,
unless the playbook is cooling down on that scope, then (2) advances every unfinished run. A
run's position is derived from its events alone (:func:`locate_step`), so a restarted daemon --
or a new engine on the same store -- resumes exactly where the last one stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from gatewarden.backoff import Jitter
from gatewarden.clock import SystemClock
from gatewarden.errors import PlaybookError
from gatewarden.models import (
    EventType,
    Incident,
    IncidentStatus,
    scope_key,
)
from gatewarden.protocols import Clock, GatewayAdmin, Store, Tick
from gatewarden.remediate import guardrails
from gatewarden.remediate.eventlog import EventLog
from gatewarden.remediate.expiry import expire_blocks
from gatewarden.remediate.language import (
    ActionStep,
    ApprovalStep,
    NotifyStep,
    Playbook,
    VerifyStep,
)
from gatewarden.remediate.rollback import rollback_next
from gatewarden.remediate.runlog import Keys, Position, RunLog, locate_step, run_id_for
from gatewarden.remediate.steps import Ctx, Limits, StepExecutor
from gatewarden.remediate.templating import render
from gatewarden.remediate.verify import MetricsView
from gatewarden.selfhealth import HealthCheck

log = logging.getLogger(__name__)


class RemediateStage:
    """The ``remediate`` pipeline stage.

    ``kill_switch`` (also settable at runtime) stops everything: no run starts or advances,
    and no block's TTL is lifted until it is off again.
    ``dry_run`` forces new runs into dry-run mode whatever their playbook says.
    ``approver_groups`` resolves ``group:NAME`` approvers (config ``remediate.approver_groups``);
    the resolved list is persisted with each approval request.
    ``retry_jitter`` draws the random part of each retry's backoff (seedable; default seed 0).
    """

    name = "remediate"

    def __init__(
        self,
        playbooks: Sequence[Playbook],
        store: Store,
        gateway: GatewayAdmin,
        metrics: MetricsView,
        clock: Clock | None = None,
        *,
        approver_groups: Mapping[str, Sequence[str]] | None = None,
        kill_switch: bool = False,
        max_actions_per_hour: int = 20,
        max_keys_blocked: int = 5,
        dry_run: bool = False,
        max_attempts: int = 5,
        retry_base_s: float = 15.0,
        retry_max_s: float = 300.0,
        breaker_threshold: int = 3,
        breaker_reset_s: float = 60.0,
        retry_jitter: Jitter | None = None,
    ) -> None:
        self.playbooks = list(playbooks)
        self._by_name = {p.name: p for p in self.playbooks}
        self.store = store
        self.gateway = gateway
        self.clock = clock or SystemClock()
        self.kill_switch = kill_switch
        self.dry_run = dry_run
        self._log = EventLog(store)
        limits = Limits(
            max_actions_per_hour=max_actions_per_hour,
            max_keys_blocked=max_keys_blocked,
            max_attempts=max_attempts,
            retry_base_s=retry_base_s,
            retry_max_s=retry_max_s,
            retry_jitter=retry_jitter if retry_jitter is not None else Jitter(),
        )
        breaker = guardrails.CircuitBreaker(
            gateway.name, threshold=breaker_threshold, reset_s=breaker_reset_s
        )
        self._exec = StepExecutor(self._log, store, gateway, metrics, limits, breaker)
        # Kept live, not copied: a Slack user-group mapping resolves members when asked.
        self._exec.approver_groups = approver_groups if approver_groups is not None else {}
        self._warned: set[str] = set()

    # -- Stage -------------------------------------------------------------------------------

    def run(self, tick: Tick) -> None:
        if self.kill_switch:
            log.warning("remediation kill switch is on: no playbook starts or advances")
            return
        self._exec.tick = tick
        self._exec.workflow_traffic.observe(tick.records)
        self._log.refresh()
        incidents = {i.id: i for i in self._log.incidents()}
        self._start_runs(tick, incidents)
        for run in self._log.runs():
            if run.finished is None:
                self._advance(run.run_id, incidents)
        expire_blocks(self._exec, self._log.runs())

    def self_health(self, now: float) -> list[HealthCheck]:
        """:class:`~gatewarden.selfhealth.SelfReporting`: the gateway's circuit breaker."""
        return [guardrails.breaker_health(self._exec.breaker, now)]

    # -- starting ----------------------------------------------------------------------------

    def match(self, incident: Incident) -> Playbook | None:
        """The first playbook (in load order) whose matcher accepts ``incident``."""
        return next((p for p in self.playbooks if p.match.matches(incident)), None)

    def _start_runs(self, tick: Tick, incidents: dict[str, Incident]) -> None:
        scopes = {i.id: scope_key(i.scope) for i in incidents.values()}
        runs = self._log.runs()
        with_runs = {r.incident_id for r in runs}
        for incident in incidents.values():
            if incident.status is not IncidentStatus.OPEN or incident.mitigated_at is not None:
                continue
            if incident.id in with_runs:
                continue
            playbook = self.match(incident)
            if playbook is None:
                continue
            last = guardrails.last_finished(runs, playbook.name, scopes[incident.id], scopes)
            if last is not None and tick.now < last + playbook.cooldown_s:
                log.info("%s on %s: cooling down", playbook.name, scopes[incident.id])
                continue
            run_id = run_id_for(incident.id, playbook.name)
            mode = "dry_run" if self.dry_run else playbook.mode
            run = RunLog(run_id, incident.id, playbook.name, mode, tick.now)
            self._exec.emit(
                run,
                EventType.PLAYBOOK_STARTED,
                Keys.started(run_id),
                playbook=playbook.name,
                mode=mode,
                scope=dict(incident.scope),
                steps=len(playbook.steps),
            )
            log.info("started %s for incident %s (%s)", playbook.name, incident.id, mode)
            runs = self._log.runs()
            with_runs.add(incident.id)

    # -- advancing ---------------------------------------------------------------------------

    def _advance(self, run_id: str, incidents: dict[str, Incident]) -> None:
        # Bounded: every progressing pass appends at least one event, and a run has a bounded
        # number of them per tick; the bound only guards against a bug looping forever.
        for _ in range(64):
            run = self._log.run(run_id)
            if run is None or run.finished is not None:
                return
            playbook = self._by_name.get(run.playbook)
            incident = incidents.get(run.incident_id)
            if playbook is None or incident is None:
                missing = "playbook" if playbook is None else "incident"
                if run_id not in self._warned:
                    log.warning("run %s cannot advance: its %s is not loaded", run_id, missing)
                    self._warned.add(run_id)
                return
            position = locate_step(playbook, run, self._exec.now)
            if not self._step(Ctx(playbook, run, incident), position):
                return
        log.error("run %s made no final progress after 64 passes in one tick", run_id)

    def _step(self, ctx: Ctx, pos: Position) -> bool:
        playbook, run = ctx.playbook, ctx.run
        if pos.denied is not None:
            return self._finish(ctx, pos, "denied", reason=pos.denied)
        if pos.failed is not None:
            if playbook.on_failure == "rollback":
                progressed = rollback_next(self._exec, run)
                if progressed is not None:
                    return progressed
            return self._finish_failed(ctx, pos)
        if pos.index >= len(playbook.steps):
            return self._finish(ctx, pos, "dry_run" if run.mode == "dry_run" else "succeeded")
        step = playbook.steps[pos.index]
        if isinstance(step, ApprovalStep):
            if ctx.incident.status is IncidentStatus.RESOLVED and not run.applied_steps():
                return self._finish(ctx, pos, "denied", reason="incident resolved before approval")
            return self._exec.approval(ctx, pos.index, step)
        if isinstance(step, ActionStep):
            return self._exec.action(ctx, pos.index, step)
        if isinstance(step, VerifyStep):
            return self._exec.verify(ctx, pos.index, step, pos)
        return False  # wait: locate_step moves past it once its time has come

    # -- finishing ---------------------------------------------------------------------------

    def _finish_failed(self, ctx: Ctx, pos: Position) -> bool:
        run = ctx.run
        applied = run.applied_steps()
        rolled = [i for i in applied if run.steps[i].rolled_back is not None]
        stuck = [i for i in applied if run.steps[i].rb_terminal_failure is not None]
        if ctx.playbook.on_failure == "rollback" and rolled and not stuck:
            return self._finish(ctx, pos, "rolled_back", reason=pos.failed, rolled_back=rolled)
        extra: dict[str, object] = {}
        if stuck:
            extra["rollback_failed"] = stuck
        if ctx.playbook.on_failure == "stop" and applied:
            extra["left_applied"] = applied
        return self._finish(ctx, pos, "failed", reason=pos.failed, **extra)

    def _finish(self, ctx: Ctx, pos: Position, state: str, **extra: object) -> bool:
        payload: dict[str, object] = {"state": state, "playbook": ctx.playbook.name, **extra}
        notes = self._notes(ctx, reached=pos.index)
        if notes:
            payload["notes"] = notes
        log.info("run %s finished: %s %s", ctx.run.run_id, state, extra.get("reason", ""))
        return self._exec.emit(
            ctx.run, EventType.PLAYBOOK_FINISHED, Keys.finished(ctx.run.run_id), **payload
        )

    def _notes(self, ctx: Ctx, *, reached: int) -> list[dict[str, object]]:
        """Rendered ``notify`` steps the run reached. A broken message is recorded, not fatal:
        it must not undo a remediation that worked."""
        notes: list[dict[str, object]] = []
        for index, step in enumerate(ctx.playbook.steps[:reached]):
            if isinstance(step, NotifyStep):
                try:
                    notes.append({"step": index, "text": render(step.text, ctx.context)})
                except PlaybookError as exc:
                    notes.append({"step": index, "error": str(exc)})
        return notes
