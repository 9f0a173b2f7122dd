"""Undoing a failed run: apply the persisted inverses of its applied actions, newest first.

The inverses were computed from the gateway state observed before each change and stored in
``action.intended``, so a rollback after a restart restores what was really there. Each inverse
is intended (``action.intended`` with ``rollback: true``, key ``rollback:{run}:{step}``), applied
with that key, and recorded as ``action.rolled_back`` -- the same pattern as forward actions.
"""

from __future__ import annotations

import logging

from gatewarden.errors import GatewayRejected, GatewayUnavailable
from gatewarden.gateways.actions import describe
from gatewarden.models import ActionOutcome, EventType, GatewayAction
from gatewarden.remediate.runlog import Keys, RunLog
from gatewarden.remediate.steps import StepExecutor

log = logging.getLogger(__name__)


def pending_inverses(run: RunLog) -> list[int]:
    """Applied steps (newest first) whose inverse still has to be applied."""
    out = []
    for index in reversed(run.applied_steps()):
        rec = run.steps[index]
        if rec.intended is None or rec.intended.payload.get("inverse") is None:
            continue
        if rec.rolled_back is None and rec.rb_terminal_failure is None:
            out.append(index)
    return out


def rollback_next(ex: StepExecutor, run: RunLog) -> bool | None:
    """Work on the newest pending inverse: True = progress, False = waiting (backoff or open
    circuit), None = nothing left to roll back."""
    pending = pending_inverses(run)
    if not pending:
        return None
    return apply_inverse(ex, run, pending[0])


def apply_inverse(
    ex: StepExecutor,
    run: RunLog,
    index: int,
    *,
    by: str | None = None,
    reason: str | None = None,
    backoff: bool = True,
) -> bool:
    """Intend, apply and record the persisted inverse of step ``index``: True = progress
    (rolled back, or a failure recorded), False = waiting. ``by``/``reason`` name who asked
    (a manual ``gatewarden undo``; both end up in the events); ``backoff=False``: a human
    asking again does not wait for the automatic retry's backoff."""
    rec = run.steps[index]
    assert rec.intended is not None
    inverse = GatewayAction.model_validate(rec.intended.payload["inverse"])
    key = Keys.rollback(run.run_id, index)
    who = {"by": by, "reason": reason or ""} if by is not None else {}
    resumed = rec.rb_intended is not None
    if not resumed:
        verb = "undo" if by is not None else "roll back"
        ex.emit(
            run,
            EventType.ACTION_INTENDED,
            key,
            step=index,
            action=inverse.model_dump(mode="json"),
            inverse=None,
            preview=f"{verb}: {describe(inverse)}",
            rollback=True,
            idempotency_key=key,
            **who,
        )
    if backoff and not ex.may_call(rec.rb_failures):
        return False
    attempt = len(rec.rb_failures) + 1
    try:
        if resumed and ex.in_effect(inverse):
            # A crash or timeout lost the outcome of an inverse that did reach the gateway.
            outcome = ActionOutcome(ok=True, detail=f"{describe(inverse)}: already in effect")
        else:
            outcome = ex.gateway.apply(inverse, key=key)
    except GatewayUnavailable as exc:
        ex.breaker.failure(ex.now)
        give_up = attempt >= ex.limits.max_attempts
        return _failed(ex, run, index, str(exc), attempt, retryable=not give_up)
    except GatewayRejected as exc:
        return _failed(ex, run, index, str(exc), attempt, retryable=False)
    ex.breaker.success()
    return ex.emit(
        run,
        EventType.ACTION_ROLLED_BACK,
        Keys.rolled_back(run.run_id, index),
        step=index,
        action=inverse.model_dump(mode="json"),
        outcome=outcome.model_dump(mode="json"),
        **who,
    )


def _failed(
    ex: StepExecutor, run: RunLog, index: int, error: str, attempt: int, *, retryable: bool
) -> bool:
    log.warning(
        "run %s: rollback of step %d failed (attempt %d): %s", run.run_id, index, attempt, error
    )
    return ex.emit(
        run,
        EventType.ACTION_FAILED,
        Keys.rollback_failed(run.run_id, index, attempt),
        step=index,
        error=f"rollback: {error}",
        retryable=retryable,
        attempt=attempt,
        rollback=True,
    )
