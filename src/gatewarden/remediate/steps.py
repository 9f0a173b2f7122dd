"""Executing one playbook step for one run, one tick at a time.

Each handler looks at the run's events, does at most one external call, appends what happened
and returns whether it made progress (the engine then re-reads the run and continues, so an
approved run can act in the same tick). Nothing sleeps: backoff is "not before ts" arithmetic
over the ``action.failed`` events.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gatewarden.backoff import Jitter
from gatewarden.crashpoints import crashpoint
from gatewarden.errors import GatewayRejected, GatewayUnavailable, PlaybookError
from gatewarden.gateways.actions import describe
from gatewarden.gateways.router import Reconciling
from gatewarden.models import ActionOutcome, Event, EventType, GatewayAction, Incident
from gatewarden.protocols import GatewayAdmin, Store, Tick
from gatewarden.remediate import guardrails
from gatewarden.remediate.approval_step import advance_approval
from gatewarden.remediate.eventlog import EventLog
from gatewarden.remediate.language import ActionStep, ApprovalStep, Playbook, VerifyStep
from gatewarden.remediate.runlog import Keys, Position, RunLog
from gatewarden.remediate.templating import incident_context, render_value
from gatewarden.remediate.verify import MetricsView, evaluate
from gatewarden.remediate.workflow_keys import WINDOW_TICKS, WorkflowTraffic, with_keys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    max_actions_per_hour: int = 20
    max_keys_blocked: int = 5
    max_attempts: int = 5
    retry_base_s: float = 15.0
    retry_max_s: float = 300.0
    retry_jitter: Jitter = field(default_factory=Jitter)


@dataclass
class Ctx:
    """The run being advanced, with what its templates see."""

    playbook: Playbook
    run: RunLog
    incident: Incident

    @property
    def context(self) -> dict[str, Any]:
        return incident_context(self.incident, run_id=self.run.run_id, playbook=self.playbook.name)


class StepExecutor:
    def __init__(
        self,
        log_: EventLog,
        store: Store,
        gateway: GatewayAdmin,
        metrics: MetricsView,
        limits: Limits,
        breaker: guardrails.CircuitBreaker,
    ) -> None:
        self.log = log_
        self.store = store
        self.gateway = gateway
        self.metrics = metrics
        self.limits = limits
        self.breaker = breaker
        self.tick: Tick | None = None
        #: ``group:NAME`` approver entries resolve to these members
        self.approver_groups: Mapping[str, Sequence[str]] = {}
        #: the keys that carried each workflow lately (what ``throttle_workflow`` limits)
        self.workflow_traffic = WorkflowTraffic()

    # -- appending ---------------------------------------------------------------------------

    @property
    def now(self) -> float:
        assert self.tick is not None, "begin a tick first"
        return self.tick.now

    def emit(self, run: RunLog, type_: EventType, key: str, **payload: Any) -> bool:
        """Append one run event (skipped if its key exists); True if it was new."""
        event = Event(
            ts=self.now,
            type=type_,
            incident_id=run.incident_id,
            run_id=run.run_id,
            key=key,
            payload=payload,
        )
        stored = self.log.append([event])
        assert self.tick is not None
        self.tick.events.extend(stored)
        return bool(stored)

    # -- approval ----------------------------------------------------------------------------

    def approval(self, ctx: Ctx, index: int, step: ApprovalStep) -> bool:
        return advance_approval(self, ctx, index, step)

    def preview_next_action(self, ctx: Ctx, index: int) -> tuple[str, dict[str, Any]] | None:
        """What the first action step after ``index`` would do, planned read-only (nothing is
        applied or stored): the approver sees the impact before deciding. None when no action
        follows or its parameters do not render."""
        following = ctx.playbook.steps[index + 1 :]
        step = next((s for s in following if isinstance(s, ActionStep)), None)
        if step is None:
            return None
        try:
            params = render_value(step.params, ctx.context)
        except PlaybookError:
            return None
        action = with_keys(
            GatewayAction(type=step.action, params=params), ctx.run, self.workflow_traffic
        )
        try:
            plan = self.gateway.plan(action)
        except (GatewayUnavailable, GatewayRejected) as exc:
            return f"{describe(action)} (could not plan: {exc})", action.model_dump(mode="json")
        preview = plan.preview or describe(plan.action)
        return preview, plan.action.model_dump(mode="json")

    # -- action ------------------------------------------------------------------------------

    def action(self, ctx: Ctx, index: int, step: ActionStep) -> bool:
        run, rec = ctx.run, ctx.run.step(index)
        key = Keys.intended(run.run_id, index)
        if rec.intended is not None:
            # Committed before a crash or a transient failure: re-apply the persisted action
            # with the same idempotency key, never plan (or intend) it a second time.
            action = GatewayAction.model_validate(rec.intended.payload["action"])
            return self._apply(run, index, action, key, resumed=True)
        try:
            params = render_value(step.params, ctx.context)
        except PlaybookError as exc:
            return self._failed(run, index, str(exc), retryable=False)
        action = GatewayAction(type=step.action, params=params)
        action = with_keys(action, run, self.workflow_traffic)
        if run.mode == "dry_run":
            return self._dry_run(run, index, action)
        held = self._held(ctx, action)
        if held is not None:
            log.info("run %s step %d held: %s", run.run_id, index, held)
            return False
        refused = self._refused(action)
        if refused is not None:
            return self._failed(run, index, refused, retryable=False)
        if not self.may_call(rec.failures):
            return False
        if action.type == "throttle_workflow" and not action.params.get("keys"):
            # Traffic may just not have been seen yet (a restart empties the window): retry.
            what = f"no traffic of workflow {action.params.get('workflow')} seen"
            window = f"in the last {WINDOW_TICKS} ticks"
            return self._transient(run, index, f"{what} {window}", len(rec.failures))
        try:
            plan = self.gateway.plan(action)
        except GatewayUnavailable as exc:
            self.breaker.failure(self.now)
            return self._transient(run, index, f"plan: {exc}", len(rec.failures))
        except GatewayRejected as exc:
            return self._failed(run, index, f"plan: {exc}", retryable=False)
        self.breaker.success()
        self.emit(
            run,
            EventType.ACTION_INTENDED,
            key,
            step=index,
            action=plan.action.model_dump(mode="json"),
            inverse=None if plan.inverse is None else plan.inverse.model_dump(mode="json"),
            preview=plan.preview or describe(plan.action),
            idempotency_key=key,
            gateway=self.gateway.name,
        )
        crashpoint("action.after_intent")  # intent stored, call not made
        return self._apply(self.log.run(run.run_id) or run, index, plan.action, key)

    def _dry_run(self, run: RunLog, index: int, action: GatewayAction) -> bool:
        # Reading the gateway is harmless and makes the preview concrete; nothing is applied.
        try:
            plan = self.gateway.plan(action)
            # The planned action is the concrete one (a failover's orders): what would be sent.
            action, preview, inverse = plan.action, plan.preview, plan.inverse
        except (GatewayUnavailable, GatewayRejected) as exc:
            preview, inverse = f"{describe(action)} (could not plan: {exc})", None
        return self.emit(
            run,
            EventType.ACTION_INTENDED,
            Keys.intended(run.run_id, index),
            step=index,
            action=action.model_dump(mode="json"),
            inverse=None if inverse is None else inverse.model_dump(mode="json"),
            preview=f"dry run: {preview}",
            dry_run=True,
        )

    def _held(self, ctx: Ctx, action: GatewayAction) -> str | None:
        runs = self.log.runs()
        done = guardrails.actions_in_last_hour(runs, self.now)
        if done >= self.limits.max_actions_per_hour:
            return f"global limit of {self.limits.max_actions_per_hour} actions/hour reached"
        per_playbook = ctx.playbook.max_actions_per_hour
        if per_playbook is not None:
            done = guardrails.actions_in_last_hour(runs, self.now, ctx.playbook.name)
            if done >= per_playbook:
                return f"playbook limit of {per_playbook} actions/hour reached"
        return None

    def _refused(self, action: GatewayAction) -> str | None:
        if action.type != "block_key":
            return None
        blocked = guardrails.blocked_keys(self.log.runs())
        if action.params.get("key") not in blocked and len(blocked) >= self.limits.max_keys_blocked:
            return (
                f"guardrail: {len(blocked)} keys already blocked "
                f"(max_keys_blocked={self.limits.max_keys_blocked})"
            )
        return None

    def may_call(self, failures: list[Event]) -> bool:
        lim = self.limits
        retry_at = guardrails.retry_at(
            failures, lim.retry_base_s, lim.retry_max_s, lim.retry_jitter
        )
        if self.now < retry_at:
            return False
        return self.breaker.allow(self.now)

    def _apply(
        self, run: RunLog, index: int, action: GatewayAction, key: str, *, resumed: bool = False
    ) -> bool:
        failures = run.step(index).failures
        if not self.may_call(failures):
            return False
        try:
            # The outcome of an earlier attempt was lost: if its effect is already in place,
            # record it rather than calling again (LiteLLM has no idempotency keys).
            if resumed and self.in_effect(action):
                outcome = ActionOutcome(
                    ok=True, detail=f"{describe(action)}: already in effect, not repeated"
                )
            else:
                outcome = self.gateway.apply(action, key=key)
                crashpoint("action.after_apply")  # call made, outcome not stored
        except GatewayUnavailable as exc:
            self.breaker.failure(self.now)
            return self._transient(run, index, str(exc), len(failures))
        except GatewayRejected as exc:
            return self._failed(run, index, str(exc), retryable=False)
        self.breaker.success()
        if not outcome.ok:
            return self._failed(run, index, outcome.detail or "gateway refused", retryable=False)
        return self.emit(
            run,
            EventType.ACTION_APPLIED,
            Keys.applied(run.run_id, index),
            step=index,
            outcome=outcome.model_dump(mode="json"),
        )

    def in_effect(self, action: GatewayAction) -> bool:
        """Whether the gateway already shows ``action``'s effect (adapters that can tell)."""
        return isinstance(self.gateway, Reconciling) and self.gateway.satisfied(action)

    def _transient(self, run: RunLog, index: int, error: str, earlier: int) -> bool:
        attempt = earlier + 1
        give_up = attempt >= self.limits.max_attempts
        suffix = " (giving up)" if give_up else ""
        log.warning(
            "run %s step %d attempt %d failed: %s%s", run.run_id, index, attempt, error, suffix
        )
        return self.emit(
            run,
            EventType.ACTION_FAILED,
            Keys.failed(run.run_id, index, attempt),
            step=index,
            error=f"{error}{suffix}",
            retryable=not give_up,
            attempt=attempt,
        )

    def _failed(self, run: RunLog, index: int, error: str, *, retryable: bool) -> bool:
        attempt = len(run.step(index).failures) + 1
        log.warning("run %s step %d failed: %s", run.run_id, index, error)
        return self.emit(
            run,
            EventType.ACTION_FAILED,
            Keys.failed(run.run_id, index, attempt),
            step=index,
            error=error,
            retryable=retryable,
            attempt=attempt,
        )

    # -- verify ------------------------------------------------------------------------------

    def verify(self, ctx: Ctx, index: int, step: VerifyStep, pos: Position) -> bool:
        run = ctx.run
        if self.now <= pos.since:
            return False  # only ticks after the change count as evidence
        state_name = f"remediate.verify.{run.run_id}.{index}"
        raw = self.store.get_state(state_name)
        counter: dict[str, Any] = json.loads(raw) if raw else {"good": 0, "last": None}
        detail: dict[str, Any]
        if counter["last"] != self.now:
            try:
                results = evaluate(step.checks, self.metrics, ctx.context)
            except PlaybookError as exc:
                detail = {"reason": str(exc)}
                return self.emit(
                    run,
                    EventType.VERIFICATION_FAILED,
                    Keys.verify_failed(run.run_id, index),
                    step=index,
                    detail=detail,
                )
            good = all(r.ok for r in results)
            counter = {
                "good": counter["good"] + 1 if good else 0,
                "last": self.now,
                "checks": [r.as_dict() for r in results],
            }
            self.store.put_state(state_name, json.dumps(counter))
        detail = {"good_ticks": counter["good"], "checks": counter.get("checks", [])}
        if counter["good"] >= step.for_ticks:
            self.emit(
                run,
                EventType.VERIFICATION_PASSED,
                Keys.verified(run.run_id, index),
                step=index,
                detail=detail,
            )
            self._mitigated(run)
            return True
        if self.now - pos.since >= step.timeout_s:
            detail["reason"] = f"not healthy for {step.for_ticks} ticks within {step.timeout_s:g}s"
            return self.emit(
                run,
                EventType.VERIFICATION_FAILED,
                Keys.verify_failed(run.run_id, index),
                step=index,
                detail=detail,
            )
        return False

    def _mitigated(self, run: RunLog) -> None:
        applied = run.applied_steps()
        if not applied:
            return  # a playbook that changed nothing did not mitigate anything
        previews = []
        for i in applied:
            intended = run.steps[i].intended
            if intended is not None:
                previews.append(str(intended.payload.get("preview", "")))
        event = Event(
            ts=self.now,
            type=EventType.INCIDENT_MITIGATED,
            incident_id=run.incident_id,
            run_id=run.run_id,
            key=Keys.mitigated(run.run_id),
            payload={"run_id": run.run_id, "action": "; ".join(p for p in previews if p)},
        )
        assert self.tick is not None
        self.tick.events.extend(self.log.append([event]))
