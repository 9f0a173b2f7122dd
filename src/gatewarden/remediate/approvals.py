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
from gatewarden.remediate.language import GROUP_PREFIX
from gatewarden.remediate.runlog import DEMO_APPROVER, Keys, fold_run

log = logging.getLogger(__name__)

_DECISION_TYPES = {
    ApprovalDecision.GRANTED: EventType.APPROVAL_GRANTED,
    ApprovalDecision.DENIED: EventType.APPROVAL_DENIED,
}


def resolve_approvers(approvers: Sequence[str], groups: Mapping[str, Sequence[str]]) -> list[str]:
    """Expand ``group:NAME`` entries (in order, without duplicates). An unknown group stays as
    it is, so nobody can grant with it and the approval times out: safe, and logged."""
    out: list[str] = []
    for entry in approvers:
        if entry.startswith(GROUP_PREFIX):
            members = groups.get(entry[len(GROUP_PREFIX) :])
            if members is None:
                log.warning("approver %s is not configured (remediate.approver_groups)", entry)
                members = [entry]
        else:
            members = [entry]
        out.extend(m for m in members if m not in out)
    return out


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
) -> Event:
    """Append ``approval.granted``/``approval.denied`` for ``step`` of ``run_id`` and return it.

    ``by`` must be one of ``approvers`` (default: the approvers persisted with the request).
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
    allowed = list(approvers) if approvers is not None else rec.requested.payload["approvers"]
    if by not in allowed:
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
        payload={"step": step, "by": by, "reason": reason},
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
