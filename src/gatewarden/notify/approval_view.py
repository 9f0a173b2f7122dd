"""Approval messages as projections of a run's events: quorum so far, outcome, buttons or not.

The first post and every rewrite come from :func:`approval_message`, so a message rewritten after
a grant, a denial, an expiry or the end of the run always agrees with the event log.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from gatewarden.models import Event, EventType, Message
from gatewarden.notify.messages import (
    UPDATE_KIND,
    build_message,
    fmt_time,
    message_id,
    meta_of,
    with_meta,
)
from gatewarden.remediate.runlog import AUTO_POLICY, DEMO_APPROVER, counts_toward_quorum

#: Grants that stand for the whole quorum (``remediate.runlog``: auto policy, demo approver).
_SOLE_GRANTERS = frozenset({AUTO_POLICY, DEMO_APPROVER})
#: Expiry outcomes that close the step (``escalate`` keeps it open for a second period).
_FINAL_EXPIRY = frozenset({"deny", "proceed"})

PENDING, APPROVED, DENIED, EXPIRED, CLOSED = "pending", "approved", "denied", "expired", "closed"


@dataclass
class ApprovalView:
    request: Event
    run_id: str
    step: int
    approvers: list[str]
    quorum: int
    granted: list[str] = field(default_factory=list)
    denied: tuple[str, str] | None = None
    expired: Event | None = None
    escalated: bool = False
    #: who the approval was handed to when the first period expired
    escalated_to: list[str] = field(default_factory=list)
    run_finished: str | None = None

    @property
    def state(self) -> str:
        if self.denied is not None:
            return DENIED
        if any(by in _SOLE_GRANTERS for by in self.granted) or len(self.granted) >= self.quorum:
            return APPROVED
        if self.expired is not None:
            return EXPIRED
        if self.run_finished is not None:
            return CLOSED
        return PENDING

    @property
    def outcome(self) -> str:
        """One line saying how the step was decided ('' while pending)."""
        state = self.state
        if state == APPROVED:
            return f"approved by {', '.join(self.granted)}"
        if state == DENIED and self.denied is not None:
            by, reason = self.denied
            return f"denied by {by}" + (f": {reason}" if reason else "")
        if state == EXPIRED and self.expired is not None:
            outcome = self.expired.payload.get("outcome", "deny")
            return f"expired at {fmt_time(self.expired.ts)}, outcome: {outcome}"
        if state == CLOSED:
            return f"closed: the run finished ({self.run_finished})"
        return ""


def _quorum(value: object) -> int:
    return max(1, value) if isinstance(value, int) and not isinstance(value, bool) else 1


def approval_views(run_events: Iterable[Event]) -> dict[int, ApprovalView]:
    """Every approval step of one run (events in seq order), keyed by step index."""
    views: dict[int, ApprovalView] = {}
    finished: str | None = None
    for event in run_events:
        p = event.payload
        if event.type is EventType.PLAYBOOK_FINISHED:
            finished = str(p.get("state", "finished"))
            continue
        step = p.get("step")
        if not isinstance(step, int):
            continue
        if event.type is EventType.APPROVAL_REQUESTED and step not in views:
            approvers = p.get("approvers") or []
            views[step] = ApprovalView(
                request=event,
                run_id=str(event.run_id),
                step=step,
                approvers=[str(a) for a in approvers] if isinstance(approvers, list) else [],
                quorum=_quorum(p.get("quorum")),
            )
            continue
        view = views.get(step)
        if view is None:
            continue
        by = str(p.get("by", "?"))
        if event.type is EventType.APPROVAL_GRANTED and by not in view.granted:
            # The engine's rule (``approval_done_at``): a grant it would not count is not shown
            # as one, so the message never says "approved" while the run still waits.
            if by in _SOLE_GRANTERS or counts_toward_quorum(p, view.approvers):
                view.granted.append(by)
        elif event.type is EventType.APPROVAL_DENIED and view.denied is None:
            view.denied = (by, str(p.get("reason", "")))
        elif event.type is EventType.APPROVAL_EXPIRED:
            if p.get("outcome") in _FINAL_EXPIRY and view.expired is None:
                view.expired = event
            elif p.get("outcome") == "escalate":
                view.escalated = True
                # An escalation adds deciders (``remediate.runlog.step_approvers``).
                extra = p.get("escalated_to")
                for entry in extra if isinstance(extra, list) else []:
                    view.escalated_to.append(str(entry))
                    if str(entry) not in view.approvers:
                        view.approvers.append(str(entry))
    for view in views.values():
        view.run_finished = finished
    return views


def approval_message(view: ApprovalView) -> Message:
    """The approval request with its quorum so far; buttons only while it is pending."""
    base = build_message(view.request)
    if base is None:
        raise ValueError(f"{view.request.type} is not an approval request")
    state = view.state
    fields = dict(base.fields)
    tally = f"{len(view.granted)} of {view.quorum}"
    fields["Approvals"] = tally + (f" ({', '.join(view.granted)})" if view.granted else "")
    if view.escalated and state == PENDING:
        to = view.escalated_to
        fields["Escalated"] = (
            f"to {', '.join(to)}: the first period expired"
            if to
            else "yes: the first period expired"
        )
    update: dict[str, object] = {"fields": fields}
    if state != PENDING:
        fields["Outcome"] = view.outcome
        update["actions"] = ()
    message = base.model_copy(update=update)
    return with_meta(
        message,
        {
            "layout": "approval",
            "run_id": view.run_id,
            "step": view.step,
            "approvers": view.approvers,
            "quorum": view.quorum,
            "granted": view.granted,
            "state": state,
            "outcome": view.outcome,
        },
    )


def approval_target(view: ApprovalView) -> str:
    """Id of the posted approval message (what a rewrite targets)."""
    return message_id(view.request)


def as_update(content: Message, *, target: str, trigger: Event) -> Message:
    """Wrap ``content`` as an in-place rewrite of message ``target``.

    The id derives from the target and the triggering event, so re-running a tick queues the
    same rewrite (the outbox key dedupes it) and later rewrites get later ids.
    """
    if trigger.seq is not None:
        suffix = str(trigger.seq)
    else:
        body = json.dumps([trigger.ts, trigger.type.value, trigger.payload], default=str)
        suffix = "h" + hashlib.sha256(body.encode()).hexdigest()[:12]
    message = content.model_copy(
        update={
            "id": f"msg:update:{target}:{suffix}",
            "kind": UPDATE_KIND,
            "thread_of": target,
            "ts": trigger.ts,
        }
    )
    return with_meta(
        message, {"target_kind": content.kind, "layout": meta_of(content).get("layout")}
    )
