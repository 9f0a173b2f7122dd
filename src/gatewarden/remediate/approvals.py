"""Recording approval decisions, from Slack, the web console, the CLI or the demo.

:func:`record_decision` is the only sanctioned writer of ``approval.granted``/``approval.denied``
events: it checks that the decider may decide. The engine picks the decision up on its next tick.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from gatewarden.errors import PlaybookError
from gatewarden.models import ApprovalDecision, Event, EventType
from gatewarden.protocols import Store, Tick
from gatewarden.remediate.runlog import (
    DEMO_APPROVER,
    SLACK_USER_GROUP,
    Keys,
    fold_run,
    group_of,
    step_approvers,
)

log = logging.getLogger(__name__)

_DECISION_TYPES = {
    ApprovalDecision.GRANTED: EventType.APPROVAL_GRANTED,
    ApprovalDecision.DENIED: EventType.APPROVAL_DENIED,
}


def resolve_approvers(approvers: Sequence[str], groups: Mapping[str, Sequence[str]]) -> list[str]:
    """Expand group entries (``group:NAME``, or a bare Slack user-group id) in order, without
    duplicates. An unknown group stays as it is: nobody can grant with a config group that is
    not configured (the approval times out: safe, and logged); a Slack user group that could
    not be listed is looked up again when someone decides (:func:`approver_entry`)."""
    out: list[str] = []
    for entry in approvers:
        name = group_of(entry)
        members = groups.get(name) if name is not None else [entry]
        if members is None and name is not None and SLACK_USER_GROUP.match(name):
            log.warning("approver %s: Slack user group not listed; asked again on decision", entry)
            members = [entry]
        elif members is None:
            log.warning("approver %s is not configured (remediate.approver_groups)", entry)
            members = [entry]
        out.extend(m for m in members if m not in out)
    return out


def approver_entry(
    by: str, approvers: Sequence[str], live_groups: Mapping[str, Sequence[str]]
) -> str | None:
    """The entry of a step's persisted ``approvers`` that lets ``by`` decide, or None.

    The one rule for Slack, the console and the CLI: ``by`` is listed (groups were expanded to
    their members when the approval was requested), or a group entry left unexpanded then
    (its lookup failed) has ``by`` as a member now, asked of ``live_groups`` (the Slack user
    groups; config groups are never looked up again, so a config change cannot add anyone).
    """
    if by in approvers:
        return by
    for entry in approvers:
        name = group_of(entry)
        members = live_groups.get(name) if name is not None else None
        if members is not None and by in members:
            return entry
    return None


class ApprovalRefused(PlaybookError):
    """The decision cannot be recorded: unknown run or step, not an approver, or too late."""


def record_decision(
    store: Store,
    *,
    run_id: str,
    step: int,
    decision: ApprovalDecision | str,
    by: str,
    reason: str = "",
    now: float,
    approvers: Sequence[str] | None = None,
    live_groups: Mapping[str, Sequence[str]] | None = None,
) -> Event:
    """Append ``approval.granted``/``approval.denied`` for ``step`` of ``run_id`` and return it.

    ``by`` must be allowed by :func:`approver_entry` over ``approvers`` (default: the approvers
    persisted with the request); a decision allowed through a group records it as ``via``.
    A repeated decision by the same person is idempotent: the first one stands and is returned.
    """
    try:
        kind = ApprovalDecision(decision)
    except ValueError:
        raise ApprovalRefused(f"unknown decision {decision!r}") from None
    if kind not in _DECISION_TYPES:
        raise ApprovalRefused("only 'granted' or 'denied' can be recorded")
    run = fold_run(store.events(run_id=run_id))
    if run is None:
        raise ApprovalRefused(f"no playbook run {run_id!r}")
    rec = run.step(step)
    if rec.requested is None:
        raise ApprovalRefused(f"run {run_id} has no approval pending at step {step}")
    allowed = list(approvers) if approvers is not None else step_approvers(rec)
    entry = approver_entry(by, allowed, live_groups if live_groups is not None else {})
    if entry is None:
        log.warning("refused approval decision on %s step %d by %r", run_id, step, by)
        raise ApprovalRefused(f"{by} is not an approver of step {step} of {run.playbook}")
    previous = store.event_by_key(Keys.decision(run_id, step, by))
    if previous is not None:
        return previous
    if run.finished is not None:
        state = run.finished.payload.get("state")
        raise ApprovalRefused(f"run {run_id} has already finished ({state})")
    if any(e.payload.get("outcome") in ("deny", "proceed") for e in rec.expiries):
        raise ApprovalRefused(f"the approval of step {step} has expired")
    event = Event(
        ts=now,
        type=_DECISION_TYPES[kind],
        incident_id=run.incident_id,
        run_id=run_id,
        key=Keys.decision(run_id, step, by),
        payload={"step": step, "by": by, "reason": reason}
        | ({"via": entry} if entry != by else {}),
    )
    return store.append([event])[0]


class DemoAutoApprover:
    """DEMO ONLY: grants every pending approval as ``demo-auto-approver`` with the reason
    "auto-approved: demo mode", so the demo runs unattended. Never part of a real pipeline."""

    name = "demo-auto-approver"

    def __init__(self, store: Store) -> None:
        self._store = store

    def run(self, tick: Tick) -> None:
        types = [
            EventType.APPROVAL_REQUESTED,
            EventType.APPROVAL_GRANTED,
            EventType.APPROVAL_EXPIRED,
            EventType.PLAYBOOK_FINISHED,
        ]
        decided: set[tuple[str | None, object]] = set()
        pending: list[Event] = []
        for event in self._store.events(types=types):
            step = event.payload.get("step")
            if event.type is EventType.APPROVAL_REQUESTED:
                pending.append(event)
            elif event.type is EventType.PLAYBOOK_FINISHED:
                decided.add((event.run_id, "*"))
            elif event.type is EventType.APPROVAL_EXPIRED or event.payload["by"] == DEMO_APPROVER:
                decided.add((event.run_id, step))
        for request in pending:
            step = request.payload["step"]
            if (request.run_id, step) in decided or (request.run_id, "*") in decided:
                continue
            try:
                event = record_decision(
                    self._store,
                    run_id=str(request.run_id),
                    step=int(step),
                    decision=ApprovalDecision.GRANTED,
                    by=DEMO_APPROVER,
                    reason="auto-approved: demo mode",
                    now=tick.now,
                    approvers=[DEMO_APPROVER],
                )
            except ApprovalRefused as exc:
                log.info("demo auto-approver skipped %s: %s", request.run_id, exc)
                continue
            log.warning("DEMO: auto-approved step %s of run %s", step, request.run_id)
            tick.events.append(event)
