"""Reading a playbook run back from the event log.

The engine keeps no run state in memory: every tick it folds the run's events into a
:class:`RunLog` and derives where the run stands (:func:`locate_step`). Event keys are built
here so every writer uses the same idempotency keys.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gatewarden.models import Event, EventType
from gatewarden.remediate.language import (
    GROUP_PREFIX,
    ActionStep,
    ApprovalStep,
    NotifyStep,
    Playbook,
    VerifyStep,
    WaitStep,
)

#: ``by`` of the grant recorded when a playbook in ``auto`` mode skips an approval step
AUTO_POLICY = "policy:auto"
#: ``by`` of the demo's labelled auto-approver (only ever added to the pipeline by the demo)
DEMO_APPROVER = "demo-auto-approver"
#: A Slack user-group id (``S0123ABCD``): a playbook may name one as an approver directly.
SLACK_USER_GROUP = re.compile(r"^S[A-Z0-9]{6,}$")


def group_of(entry: str) -> str | None:
    """The group an approver entry names (``group:NAME``, or a bare Slack user-group id), or
    None for a person."""
    if entry.startswith(GROUP_PREFIX):
        return entry[len(GROUP_PREFIX) :] or None
    return entry if SLACK_USER_GROUP.match(entry) else None


def counts_toward_quorum(grant: Mapping[str, Any], allowed: Collection[str]) -> bool:
    """Whether a grant (its payload) counts for a step whose persisted approvers are
    ``allowed``: its author is listed, or it was recorded for a member of a listed group
    (``via``) that could not be expanded when the approval was requested. One rule for the
    engine, the Slack thread and the console."""
    by, via = str(grant.get("by", "")), grant.get("via")
    if by in allowed:
        return True
    return isinstance(via, str) and via in allowed and group_of(via) is not None


def run_id_for(incident_id: str, playbook: str) -> str:
    return f"{incident_id}:{playbook}"


class Keys:
    """Idempotency keys of every event a run appends."""

    @staticmethod
    def started(run: str) -> str:
        return f"run:{run}"

    @staticmethod
    def requested(run: str, step: int) -> str:
        return f"approval:{run}:{step}"

    @staticmethod
    def decision(run: str, step: int, by: str) -> str:
        return f"decision:{run}:{step}:{by}"

    @staticmethod
    def expired(run: str, step: int, final: bool = False) -> str:
        return f"expired:{run}:{step}" + (":final" if final else "")

    @staticmethod
    def intended(run: str, step: int) -> str:
        return f"action:{run}:{step}"

    @staticmethod
    def applied(run: str, step: int) -> str:
        return f"applied:{run}:{step}"

    @staticmethod
    def failed(run: str, step: int, attempt: int) -> str:
        return f"failed:{run}:{step}:{attempt}"

    @staticmethod
    def rollback(run: str, step: int) -> str:
        return f"rollback:{run}:{step}"

    @staticmethod
    def rolled_back(run: str, step: int) -> str:
        return f"rolled_back:{run}:{step}"

    @staticmethod
    def rollback_failed(run: str, step: int, attempt: int) -> str:
        return f"rollback-failed:{run}:{step}:{attempt}"

    @staticmethod
    def expiry(run: str, step: int) -> str:
        """Intent (and idempotency key) of the unblock that ends a block's TTL."""
        return f"ttl:{run}:{step}"

    @staticmethod
    def expiry_applied(run: str, step: int) -> str:
        return f"ttl-applied:{run}:{step}"

    @staticmethod
    def expiry_failed(run: str, step: int, attempt: int) -> str:
        return f"ttl-failed:{run}:{step}:{attempt}"

    @staticmethod
    def verified(run: str, step: int) -> str:
        return f"verified:{run}:{step}"

    @staticmethod
    def verify_failed(run: str, step: int) -> str:
        return f"verify-failed:{run}:{step}"

    @staticmethod
    def mitigated(run: str) -> str:
        return f"mitigated:{run}"

    @staticmethod
    def finished(run: str) -> str:
        return f"finished:{run}"


@dataclass
class StepLog:
    """Everything recorded about one step of one run."""

    requested: Event | None = None
    grants: list[Event] = field(default_factory=list)
    denials: list[Event] = field(default_factory=list)
    expiries: list[Event] = field(default_factory=list)
    intended: Event | None = None
    applied: Event | None = None
    failures: list[Event] = field(default_factory=list)
    passed: Event | None = None
    verify_failed: Event | None = None
    rb_intended: Event | None = None
    rolled_back: Event | None = None
    rb_failures: list[Event] = field(default_factory=list)
    #: the unblock ending a ``block_key`` TTL (events with ``expiry: true``)
    exp_intended: Event | None = None
    exp_applied: Event | None = None
    exp_failures: list[Event] = field(default_factory=list)

    @property
    def terminal_failure(self) -> Event | None:
        return next((e for e in self.failures if not e.payload.get("retryable")), None)

    @property
    def rb_terminal_failure(self) -> Event | None:
        return next((e for e in self.rb_failures if not e.payload.get("retryable")), None)

    @property
    def exp_terminal_failure(self) -> Event | None:
        return next((e for e in self.exp_failures if not e.payload.get("retryable")), None)


@dataclass
class RunLog:
    run_id: str
    incident_id: str
    playbook: str
    mode: str
    started_at: float
    finished: Event | None = None
    steps: dict[int, StepLog] = field(default_factory=dict)

    def step(self, index: int) -> StepLog:
        return self.steps.setdefault(index, StepLog())

    def applied_steps(self) -> list[int]:
        """Steps whose action really reached the gateway, in order."""
        return sorted(
            i
            for i, s in self.steps.items()
            if s.applied is not None and not s.applied.payload.get("dry_run")
        )


_STEP_FIELDS: dict[EventType, str] = {
    EventType.APPROVAL_REQUESTED: "requested",
    EventType.APPROVAL_GRANTED: "grants",
    EventType.APPROVAL_DENIED: "denials",
    EventType.APPROVAL_EXPIRED: "expiries",
    EventType.ACTION_APPLIED: "applied",
    EventType.VERIFICATION_PASSED: "passed",
    EventType.VERIFICATION_FAILED: "verify_failed",
    EventType.ACTION_ROLLED_BACK: "rolled_back",
}


def fold_run(events: Iterable[Event]) -> RunLog | None:
    """Fold one run's events (seq order); None before ``playbook.started``."""
    run: RunLog | None = None
    for event in events:
        p = event.payload
        if event.type is EventType.PLAYBOOK_STARTED:
            run = RunLog(
                run_id=str(event.run_id),
                incident_id=str(event.incident_id),
                playbook=str(p["playbook"]),
                mode=str(p.get("mode", "approve")),
                started_at=event.ts,
            )
            continue
        if run is None:
            continue
        if event.type is EventType.PLAYBOOK_FINISHED:
            run.finished = run.finished or event
            continue
        index = p.get("step")
        if not isinstance(index, int):
            continue
        rec = run.step(index)
        if p.get("expiry"):
            _fold_expiry(rec, event)
            continue
        rollback = bool(p.get("rollback"))
        if event.type is EventType.ACTION_INTENDED:
            if rollback:
                rec.rb_intended = rec.rb_intended or event
            else:
                rec.intended = rec.intended or event
        elif event.type is EventType.ACTION_FAILED:
            (rec.rb_failures if rollback else rec.failures).append(event)
        elif event.type in _STEP_FIELDS:
            name = _STEP_FIELDS[event.type]
            current = getattr(rec, name)
            if isinstance(current, list):
                current.append(event)
            elif current is None:
                setattr(rec, name, event)
    return run


def _fold_expiry(rec: StepLog, event: Event) -> None:
    if event.type is EventType.ACTION_INTENDED:
        rec.exp_intended = rec.exp_intended or event
    elif event.type is EventType.ACTION_APPLIED:
        rec.exp_applied = rec.exp_applied or event
    elif event.type is EventType.ACTION_FAILED:
        rec.exp_failures.append(event)


@dataclass(frozen=True)
class Position:
    """Where a run stands: the step to work on, since when, and whether it has stopped."""

    index: int
    since: float
    failed: str | None = None
    denied: str | None = None


def step_approvers(rec: StepLog) -> list[str]:
    """Who may decide a step: the approvers persisted with its request, then those an
    escalation handed it to (``approval.expired`` with ``escalated_to``). The first ones keep
    their say: an escalation adds deciders, it does not take the decision from anyone."""
    lists = [rec.requested.payload.get("approvers") if rec.requested is not None else None]
    lists += [e.payload.get("escalated_to") for e in rec.expiries if e.payload.get("escalated_to")]
    out: list[str] = []
    for entries in lists:
        for entry in entries if isinstance(entries, list) else []:
            if str(entry) not in out:
                out.append(str(entry))
    return out


def approval_done_at(step: ApprovalStep, rec: StepLog, mode: str) -> float | None:
    """When the quorum was reached (distinct granters among the step's approvers), or None.

    Grants by anyone else are ignored even if some writer bypassed ``record_decision``; the
    policy grant only counts in ``auto`` mode, the demo approver's grant stands for the quorum.
    The approvers are those persisted with the request (groups resolved then), so a config
    change after the request neither adds nor removes anyone; a Slack user group that could not
    be listed then counts its members' grants recorded ``via`` it (:func:`counts_toward_quorum`).
    An escalation's approvers count too (:func:`step_approvers`).
    """
    persisted = step_approvers(rec) if rec.requested is not None else None
    allowed = set(persisted) if persisted is not None else set(step.approvers)
    granters: set[str] = set()
    for grant in rec.grants:
        by = str(grant.payload.get("by", ""))
        if (by == AUTO_POLICY and mode == "auto") or by == DEMO_APPROVER:
            return grant.ts
        if counts_toward_quorum(grant.payload, allowed):
            granters.add(by)
            if len(granters) >= step.quorum:
                return grant.ts
    return None


def locate_step(playbook: Playbook, run: RunLog, now: float) -> Position:
    """Walk the steps in order; each finished step hands its finish time to the next."""
    since = run.started_at
    dry = run.mode == "dry_run"
    for i, step in enumerate(playbook.steps):
        rec = run.step(i)
        if isinstance(step, ApprovalStep):
            if dry:
                continue
            if rec.denials:
                by = rec.denials[0].payload.get("by", "?")
                return Position(i, since, denied=f"approval denied by {by}")
            done = approval_done_at(step, rec, run.mode)
            if done is not None:
                since = done
                continue
            final = [e for e in rec.expiries if e.payload.get("outcome") in ("deny", "proceed")]
            if final and final[0].payload["outcome"] == "proceed":
                since = final[0].ts
                continue
            if final:
                return Position(i, since, denied="approval timed out")
            return Position(i, since)
        if isinstance(step, ActionStep):
            if rec.applied is not None:
                since = rec.applied.ts
                continue
            if dry and rec.intended is not None:
                since = rec.intended.ts
                continue
            failure = rec.terminal_failure
            if failure is not None:
                return Position(i, since, failed=str(failure.payload.get("error", "failed")))
            return Position(i, since)
        if isinstance(step, WaitStep):
            if dry:
                continue
            if now >= since + step.seconds:
                since += step.seconds
                continue
            return Position(i, since)
        if isinstance(step, VerifyStep):
            if dry or rec.passed is not None:
                since = rec.passed.ts if rec.passed is not None else since
                continue
            if rec.verify_failed is not None:
                detail = rec.verify_failed.payload.get("detail", "verification failed")
                return Position(i, since, failed=str(detail))
            return Position(i, since)
        if isinstance(step, NotifyStep):
            continue
    return Position(len(playbook.steps), since)
