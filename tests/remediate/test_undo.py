"""``undo_run``: the inverses of a run's applied actions, newest first, through the durable
rollback path (intent before the call, idempotency key, ``by``/``reason`` recorded)."""

from __future__ import annotations

import pytest

from gatewarden.gateways.memory import InMemoryGateway
from gatewarden.models import ActionOutcome, ActionPlan, EventType, GatewayAction, RunState
from gatewarden.protocols import GatewayAdmin
from gatewarden.remediate.approvals import ApprovalRefused, record_decision
from gatewarden.remediate.language import Playbook
from gatewarden.remediate.runlog import run_id_for
from gatewarden.remediate.undo import UndoRefused, UndoResult, undo_run

from .helpers import Harness, failover_playbook, open_incident

FAILOVER = run_id_for("inc-1", "provider-failover")
THROTTLE = run_id_for("inc-2", "throttle-block")
BEFORE = {"oa-4o": 1, "az-4o": 2, "oa-mini": None, "az-mini": None, "an-son": None}


def throttle_block() -> Playbook:
    key = "{{ incident.scope.api_key }}"
    return Playbook.model_validate(
        {
            "name": "throttle-block",
            "match": {"kinds": ["cost"], "scope": {"api_key": "*"}},
            "steps": [
                {
                    "type": "action",
                    "action": "update_key_limits",
                    "params": {"key": key, "rpm_limit": 5},
                },
                {"type": "action", "action": "block_key", "params": {"key": key}},
                {"type": "approval", "approvers": ["U1"]},
                {"type": "action", "action": "unblock_key", "params": {"key": key}},
            ],
        }
    )


def succeeded_failover() -> Harness:
    h = Harness([failover_playbook(steps=failover_playbook().model_dump()["steps"][1:2])])
    open_incident(h.store, "inc-1", {"provider": "openai"})
    h.tick()
    assert h.finished_state(FAILOVER) == "succeeded"
    assert h.gateway.orders()["oa-4o"] == 3
    return h


def undo(
    h: Harness, run_id: str, gateway: GatewayAdmin | None = None, *, force: bool = False
) -> UndoResult:
    return undo_run(
        h.store,
        gateway or h.gateway,
        run_id,
        by="alice",
        reason="provider is back",
        clock=h.clock,
        force=force,
    )


def succeeded_throttle() -> tuple[Harness, InMemoryGateway]:
    """A throttle-then-block run on key team-a-1 that ran to its end (block approved)."""
    gateway = InMemoryGateway.build(keys={"team-a-1": {"rpm_limit": 100}})
    h = Harness([throttle_block()], gateway=gateway)
    open_incident(h.store, "inc-2", {"api_key": "team-a-1"}, kind="cost")
    h.tick()
    record_decision(
        h.store, run_id=THROTTLE, step=2, decision="granted", by="U1", now=h.clock.now()
    )
    h.tick()
    return h, gateway


def test_undo_restores_what_the_run_changed_and_records_who() -> None:
    h = succeeded_failover()
    result = undo(h, FAILOVER)
    assert h.gateway.orders() == BEFORE
    assert [c.key for c in h.gateway.calls] == [f"action:{FAILOVER}:0", f"rollback:{FAILOVER}:0"]
    types = h.types(FAILOVER)[-2:]
    assert types == ["action.intended", "action.rolled_back"]
    intent, done = h.store.events(run_id=FAILOVER)[-2:]
    assert intent.key == f"rollback:{FAILOVER}:0" and intent.payload["rollback"] is True
    assert (intent.payload["by"], intent.payload["reason"]) == ("alice", "provider is back")
    assert (done.payload["by"], done.payload["reason"]) == ("alice", "provider is back")
    assert result.ok and [i for i, _ in result.undone] == [0]
    assert h.projected(FAILOVER).state is RunState.ROLLED_BACK  # the console and reports say so

    again = undo(h, FAILOVER)
    assert again.summary() == f"run {FAILOVER}: nothing to undo (step(s) 0 already undone)"
    assert len(h.gateway.calls) == 2  # nothing sent again


def test_steps_are_undone_newest_first_and_a_no_op_step_is_skipped() -> None:
    h, gateway = succeeded_throttle()
    assert h.finished_state(THROTTLE) == "succeeded"
    result = undo(h, THROTTLE)
    undone = [c.action for c in h.gateway.calls[3:]]
    assert undone == [
        GatewayAction(type="block_key", params={"key": "team-a-1"}),
        GatewayAction(type="unblock_key", params={"key": "team-a-1"}),
        GatewayAction(type="update_key_limits", params={"key": "team-a-1", "rpm_limit": 100}),
    ]
    assert not gateway.keys["team-a-1"].blocked and gateway.keys["team-a-1"].rpm_limit == 100
    assert [i for i, _ in result.undone] == [3, 1, 0]


def test_a_run_in_progress_is_refused_unless_forced() -> None:
    gateway = InMemoryGateway.build(keys={"team-a-1": {}})
    h = Harness([throttle_block()], gateway=gateway)
    open_incident(h.store, "inc-2", {"api_key": "team-a-1"}, kind="cost")
    h.tick()  # throttled and blocked; waits for the approval
    with pytest.raises(UndoRefused, match="still in progress"):
        undo(h, THROTTLE)
    assert len(gateway.calls) == 2
    result = undo(h, THROTTLE, force=True)
    assert result.forced
    finished = h.events(EventType.PLAYBOOK_FINISHED, run_id=THROTTLE)[0]
    assert finished.payload["state"] == "rolled_back" and finished.payload["undone_by"] == "alice"
    assert not gateway.keys["team-a-1"].blocked and gateway.keys["team-a-1"].rpm_limit is None
    # The daemon no longer advances it: a late approval changes nothing.
    with pytest.raises(ApprovalRefused, match="already finished"):
        record_decision(
            h.store, run_id=THROTTLE, step=2, decision="granted", by="U1", now=h.clock.now()
        )
    h.tick()
    assert len(gateway.calls) == 4
    with pytest.raises(UndoRefused, match="no playbook run"):
        undo(h, "nope")


class Crash(BaseException):
    """The process dies (nothing may swallow it)."""


class CrashAfterCall:
    def __init__(self, inner: InMemoryGateway) -> None:
        self.inner = inner
        self.name = inner.name

    def plan(self, action: GatewayAction) -> ActionPlan:
        return self.inner.plan(action)

    def satisfied(self, action: GatewayAction) -> bool:
        return self.inner.satisfied(action)

    def apply(self, action: GatewayAction, *, key: str) -> ActionOutcome:
        self.inner.apply(action, key=key)
        raise Crash


def test_a_crash_after_the_call_is_not_repeated() -> None:
    h = succeeded_failover()
    with pytest.raises(Crash):
        undo(h, FAILOVER, gateway=CrashAfterCall(h.gateway))
    assert h.types(FAILOVER)[-1] == "action.intended"  # the intent was stored first
    calls = len(h.gateway.calls)
    # A fresh gateway without the idempotency cache: only the state tells it is done.
    fresh = InMemoryGateway(deployments=h.gateway.deployments, keys=h.gateway.keys)
    result = undo(h, FAILOVER, gateway=fresh)
    assert fresh.calls == [] and len(h.gateway.calls) == calls
    done = h.events(EventType.ACTION_ROLLED_BACK, run_id=FAILOVER)[0]
    assert "already in effect" in done.payload["outcome"]["detail"]
    assert result.ok


def test_a_failed_inverse_stops_the_undo_and_a_retry_finishes_it() -> None:
    h, gateway = succeeded_throttle()
    gateway.fail_next(permanent=True)  # the newest inverse (block again) is refused
    result = undo(h, THROTTLE)
    assert not result.ok and result.failed is not None and result.failed[0] == 3
    assert "undo FAILED" in result.summary()
    assert len(gateway.calls) == 3  # the older steps were not undone out of order
    assert gateway.keys["team-a-1"].rpm_limit == 5
    retried = undo(h, THROTTLE)
    assert retried.ok and [i for i, _ in retried.undone] == [3, 1, 0]
    assert gateway.keys["team-a-1"].rpm_limit == 100
