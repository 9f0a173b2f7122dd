"""Advancing an approval step: request it, wait, expire it, escalate it.

``on_timeout: escalate`` hands the approval to the step's ``escalate_to`` approvers (groups
resolved now, like the first request's) for ``escalate_timeout_s`` (default: ``timeout_s``). The
hand-over is one ``approval.expired`` event (outcome ``escalate``) carrying ``escalated_to``
and the new ``expires_at``; notifiers announce it like any expiry, and from then on a grant by
an escalation approver counts toward the quorum (:func:`~gatewarden.remediate.runlog.
step_approvers`) -- the first approvers may still decide. Nobody deciding by the second expiry
denies the step.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gatewarden.crashpoints import crashpoint
from gatewarden.models import EventType
from gatewarden.remediate.approvals import resolve_approvers
from gatewarden.remediate.language import ApprovalStep
from gatewarden.remediate.runlog import AUTO_POLICY, Keys

if TYPE_CHECKING:
    from gatewarden.remediate.steps import Ctx, StepExecutor

log = logging.getLogger(__name__)


def advance_approval(ex: StepExecutor, ctx: Ctx, index: int, step: ApprovalStep) -> bool:
    """One pass over an approval step; True when an event was appended."""
    run, rec = ctx.run, ctx.run.step(index)
    if run.mode == "auto":
        by = AUTO_POLICY
        return ex.emit(
            run,
            EventType.APPROVAL_GRANTED,
            Keys.decision(run.run_id, index, by),
            step=index,
            by=by,
            reason="auto mode: approved by playbook policy",
        )
    if rec.requested is None:
        approvers = resolve_approvers(step.approvers, ex.approver_groups)
        if len(approvers) < step.quorum:
            log.warning(
                "run %s step %d: %d approver(s) for a quorum of %d: it can only time out",
                run.run_id,
                index,
                len(approvers),
                step.quorum,
            )
        upcoming = ex.preview_next_action(ctx, index)
        shown = {} if upcoming is None else {"preview": upcoming[0], "action": upcoming[1]}
        requested = ex.emit(
            run,
            EventType.APPROVAL_REQUESTED,
            Keys.requested(run.run_id, index),
            step=index,
            approvers=approvers,
            quorum=step.quorum,
            expires_at=ex.now + step.timeout_s,
            on_timeout=step.on_timeout,
            **shown,
        )
        crashpoint("approval.after_request")  # waiting on a human, mid-approval
        return requested
    escalated = [e for e in rec.expiries if e.payload.get("outcome") == "escalate"]
    if escalated:
        first = escalated[0]
        # Escalations recorded before ``expires_at`` was stored gave the same timeout again.
        until = first.payload.get("expires_at", first.ts + step.timeout_s)
        if ex.now < float(until):
            return False
        return ex.emit(
            run,
            EventType.APPROVAL_EXPIRED,
            Keys.expired(run.run_id, index, final=True),
            step=index,
            outcome="deny",
            escalated=True,
        )
    if ex.now < float(rec.requested.payload["expires_at"]):
        return False
    if step.on_timeout != "escalate":
        return ex.emit(
            run,
            EventType.APPROVAL_EXPIRED,
            Keys.expired(run.run_id, index),
            step=index,
            outcome=step.on_timeout,
        )
    to = resolve_approvers(step.escalate_to, ex.approver_groups)
    log.warning("run %s step %d: approval escalated to %s", run.run_id, index, ", ".join(to))
    return ex.emit(
        run,
        EventType.APPROVAL_EXPIRED,
        Keys.expired(run.run_id, index),
        step=index,
        outcome="escalate",
        escalated_to=to,
        expires_at=ex.now + (step.escalate_timeout_s or step.timeout_s),
    )
