"""Restarts, retries, guardrails: the engine's behaviour when things go wrong."""

from __future__ import annotations

from typing import Any

import pytest

from gatewarden.backoff import NO_JITTER
from gatewarden.gateways.memory import InMemoryGateway
from gatewarden.models import ActionOutcome, ActionPlan, Event, EventType, GatewayAction
from gatewarden.remediate.approvals import DemoAutoApprover, record_decision
from gatewarden.remediate.runlog import AUTO_POLICY, DEMO_APPROVER, run_id_for

from .helpers import T0, Harness, block_playbook, failover_playbook, open_incident

RUN = run_id_for("inc-1", "provider-failover")


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing may swallow it."""


class CrashingGateway:
    """Wraps a gateway; dies before (or after) the first apply reaches it."""

    def __init__(self, inner: InMemoryGateway, *, after_apply: bool = False) -> None:
        self.inner = inner
        self.name = inner.name
        self.after_apply = after_apply

    def plan(self, action: GatewayAction) -> ActionPlan:
        return self.inner.plan(action)

    def apply(self, action: GatewayAction, *, key: str) -> ActionOutcome:
        if self.after_apply:
            self.inner.apply(action, key=key)
        raise Crash


def approve(h: Harness) -> None:
    record_decision(h.store, run_id=RUN, step=0, decision="granted", by="U1", now=h.clock.now())


@pytest.mark.parametrize("after_apply", [False, True])
def test_restart_after_intended_resumes_with_one_applied_call(after_apply: bool) -> None:
    h = Harness([failover_playbook()])
    open_incident(h.store, "inc-1", {"provider": "openai"})
    h.tick()
    approve(h)
    crashing = h.new_stage(CrashingGateway(h.gateway, after_apply=after_apply))
    with pytest.raises(Crash):
        h.tick(stage=crashing)
    assert len(h.events(EventType.ACTION_INTENDED)) == 1
    assert h.events(EventType.ACTION_APPLIED) == []

    restarted = h.new_stage()  # same store, fresh memory
    h.tick(stage=restarted)
    assert len(h.events(EventType.ACTION_INTENDED)) == 1
    assert len(h.events(EventType.ACTION_APPLIED)) == 1
    assert len(h.gateway.calls) == 1
    assert h.gateway.calls[0].key == f"action:{RUN}:1"
    # A call that reached the gateway before the crash is recognised from the gateway's state
    # (``satisfied``) and recorded, not sent again -- not even as an idempotent replay.
    assert h.gateway.replays == []
    detail = h.events(EventType.ACTION_APPLIED)[0].payload["outcome"]["detail"]
    assert ("already in effect" in detail) is after_apply

    h.metrics.set("error_rate", {}, 0.0)
    for _ in range(3):
        h.tick(stage=restarted)
    assert h.finished_state(RUN) == "succeeded"
    assert len(h.gateway.calls) == 1


def test_transient_failures_back_off_then_succeed() -> None:
    # The exponential schedule itself; its jitter is tested in tests/reliability/test_retry_jitter
    h = Harness(
        [failover_playbook()], retry_base_s=30, breaker_threshold=10, retry_jitter=NO_JITTER
    )
    open_incident(h.store, "inc-1", {"provider": "openai"})
    h.tick()
    approve(h)
    h.gateway.fail_next(2)
    h.tick()
    failures = h.events(EventType.ACTION_FAILED)
    assert [(f.payload["retryable"], f.payload["attempt"]) for f in failures] == [(True, 1)]
    assert len(h.events(EventType.ACTION_INTENDED)) == 1
    h.tick(15)  # inside the 30 s backoff: no call
    assert len(h.events(EventType.ACTION_FAILED)) == 1
    h.tick(15)  # 30 s after the first failure: second attempt, fails again
    assert len(h.events(EventType.ACTION_FAILED)) == 2
    h.tick(45)  # 60 s backoff not over yet
    assert h.events(EventType.ACTION_APPLIED) == []
    h.tick(15)
    assert len(h.events(EventType.ACTION_APPLIED)) == 1
    assert len(h.events(EventType.ACTION_INTENDED)) == 1
    assert len(h.gateway.calls) == 1


def test_transient_failures_give_up_after_max_attempts() -> None:
    h = Harness([failover_playbook()], max_attempts=2, retry_base_s=1, breaker_threshold=10)
    open_incident(h.store, "inc-1", {"provider": "openai"})
    h.tick()
    approve(h)
    h.gateway.fail_next(5)
    h.tick()
    h.tick()
    failures = h.events(EventType.ACTION_FAILED)
    assert [f.payload["retryable"] for f in failures] == [True, False]
    assert "giving up" in failures[-1].payload["error"]
    assert h.finished_state(RUN) == "failed"  # nothing applied, so nothing to roll back


def test_circuit_breaker_stops_calls_while_open() -> None:
    h = Harness([failover_playbook()], retry_base_s=1, breaker_threshold=1, breaker_reset_s=120)
    open_incident(h.store, "inc-1", {"provider": "openai"})
    h.tick()
    approve(h)
    h.gateway.fail_next(1)
    h.tick()
    assert len(h.events(EventType.ACTION_FAILED)) == 1
    for _ in range(7):  # 105 s: the circuit is open, no attempt is made or counted
        h.tick()
    assert len(h.events(EventType.ACTION_FAILED)) == 1
    assert h.events(EventType.ACTION_APPLIED) == []
    h.tick()  # 120 s: half-open trial succeeds
    assert len(h.events(EventType.ACTION_APPLIED)) == 1


def test_rejected_action_fails_the_step_without_retry() -> None:
    h = Harness([failover_playbook()])
    open_incident(h.store, "inc-1", {"provider": "openai"})
    h.tick()
    approve(h)
    h.gateway.fail_next(1, permanent=True)
    h.tick()
    failures = h.events(EventType.ACTION_FAILED)
    assert [f.payload["retryable"] for f in failures] == [False]
    assert h.finished_state(RUN) == "failed"
    assert h.gateway.calls == []


def test_failover_with_no_alternative_is_rejected_at_plan() -> None:
    h = Harness([failover_playbook()])
    open_incident(h.store, "inc-1", {"provider": "anthropic"})
    run = run_id_for("inc-1", "provider-failover")
    h.tick()
    record_decision(h.store, run_id=run, step=0, decision="granted", by="U1", now=h.clock.now())
    h.tick()
    failure = h.events(EventType.ACTION_FAILED)[0]
    assert "no model group has anthropic first" in failure.payload["error"]
    assert h.events(EventType.ACTION_INTENDED) == []


def test_sandbox_escape_in_params_fails_the_step_visibly() -> None:
    evil = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    pb = block_playbook(steps=[{"type": "action", "action": "block_key", "params": {"key": evil}}])
    h = Harness([pb])
    open_incident(h.store, "inc-1", {"api_key": "team-a-1"}, kind="cost")
    tick = h.tick()  # must not raise
    failure = h.events(EventType.ACTION_FAILED)[0]
    assert failure.payload["retryable"] is False
    assert "SecurityError" in failure.payload["error"]
    assert h.gateway.calls == []
    assert [e.type.value for e in tick.events][-1] == "playbook.finished"


def test_auto_mode_records_policy_approval() -> None:
    h = Harness([block_playbook()])
    open_incident(h.store, "inc-1", {"api_key": "team-a-1"}, kind="cost")
    h.tick()
    run = run_id_for("inc-1", "block-runaway-key")
    granted = h.events(EventType.APPROVAL_GRANTED, run_id=run)
    assert [g.payload["by"] for g in granted] == [AUTO_POLICY]
    assert h.events(EventType.APPROVAL_REQUESTED) == []
    assert h.gateway.keys["team-a-1"].blocked
    assert h.finished_state(run) == "succeeded"


def test_rate_limit_holds_actions_until_the_hour_passes() -> None:
    h = Harness([block_playbook()], max_actions_per_hour=1)
    open_incident(h.store, "inc-1", {"api_key": "team-a-1"}, kind="cost")
    open_incident(h.store, "inc-2", {"api_key": "team-a-2"}, kind="cost")
    h.tick()
    assert [c.action.params["key"] for c in h.gateway.calls] == ["team-a-1"]
    second = run_id_for("inc-2", "block-runaway-key")
    for _ in range(3):
        h.tick(1000)
    assert len(h.gateway.calls) == 1
    assert h.finished_state(second) is None
    h.tick(600)  # 3600 s after the first action
    assert [c.action.params["key"] for c in h.gateway.calls] == ["team-a-1", "team-a-2"]


def test_per_playbook_rate_limit() -> None:
    h = Harness([block_playbook(max_actions_per_hour=1)], max_actions_per_hour=100)
    open_incident(h.store, "inc-1", {"api_key": "team-a-1"}, kind="cost")
    open_incident(h.store, "inc-2", {"api_key": "team-a-2"}, kind="cost")
    h.tick()
    h.tick()
    assert len(h.gateway.calls) == 1


def test_max_keys_blocked_refuses_more_blocks() -> None:
    h = Harness([block_playbook()], max_keys_blocked=1)
    open_incident(h.store, "inc-1", {"api_key": "team-a-1"}, kind="cost")
    open_incident(h.store, "inc-2", {"api_key": "team-b-1"}, kind="cost")
    h.tick()
    assert [c.action.params["key"] for c in h.gateway.calls] == ["team-a-1"]
    second = run_id_for("inc-2", "block-runaway-key")
    failure = h.events(EventType.ACTION_FAILED, run_id=second)[0]
    assert "max_keys_blocked=1" in failure.payload["error"]
    assert h.finished_state(second) == "failed"


def test_cooldown_per_scope() -> None:
    h = Harness([block_playbook(cooldown_s=600)])
    open_incident(h.store, "inc-1", {"api_key": "team-a-1"}, kind="cost")
    h.tick()
    assert h.finished_state(run_id_for("inc-1", "block-runaway-key")) == "succeeded"
    open_incident(h.store, "inc-2", {"api_key": "team-a-1"}, kind="cost", ts=h.clock.now())
    open_incident(h.store, "inc-3", {"api_key": "team-b-1"}, kind="cost", ts=h.clock.now())
    h.tick()
    started = {e.incident_id for e in h.events(EventType.PLAYBOOK_STARTED)}
    assert started == {"inc-1", "inc-3"}  # same scope as inc-1 is cooling down
    h.tick(600)
    started = {e.incident_id for e in h.events(EventType.PLAYBOOK_STARTED)}
    assert started == {"inc-1", "inc-2", "inc-3"}


def test_unmatched_or_resolved_incidents_start_nothing() -> None:
    match = {"kinds": ["error_rate"], "scope": {"provider": "*"}, "min_severity": "warning"}
    h = Harness([failover_playbook(match=match)])
    open_incident(h.store, "inc-9", {"provider": "openai"}, kind="ttft")
    open_incident(h.store, "inc-8", {"provider": "openai"}, severity="info")
    open_incident(h.store, "inc-7", {"model": "gpt-4o"})
    open_incident(h.store, "inc-6", {"provider": "openai"})
    h.store.append(
        [Event(ts=T0, type=EventType.INCIDENT_RESOLVED, incident_id="inc-6", payload={})]
    )
    h.tick()
    assert h.events(EventType.PLAYBOOK_STARTED) == []


def test_incident_resolved_before_approval_ends_the_run() -> None:
    h = Harness([failover_playbook()])
    open_incident(h.store, "inc-1", {"provider": "openai"})
    h.tick()
    h.store.append(
        [
            Event(
                ts=h.clock.now(),
                type=EventType.INCIDENT_RESOLVED,
                incident_id="inc-1",
                payload={"reason": "recovered"},
            )
        ]
    )
    h.tick()
    finished = h.events(EventType.PLAYBOOK_FINISHED)[0]
    assert finished.payload == {
        "state": "denied",
        "playbook": "provider-failover",
        "reason": "incident resolved before approval",
    }
    assert h.gateway.calls == []


def test_demo_auto_approver_grants_with_a_label() -> None:
    h = Harness([failover_playbook()])
    demo = DemoAutoApprover(h.store)
    open_incident(h.store, "inc-1", {"provider": "openai"})
    tick = h.tick()
    demo.run(tick)
    granted = h.events(EventType.APPROVAL_GRANTED)
    assert [(g.payload["by"], g.payload["reason"]) for g in granted] == [
        (DEMO_APPROVER, "auto-approved: demo mode")
    ]
    assert granted[0] in tick.events
    demo.run(tick)  # idempotent
    assert len(h.events(EventType.APPROVAL_GRANTED)) == 1
    h.tick()
    assert len(h.gateway.calls) == 1


def test_tick_events_mirror_everything_appended() -> None:
    h = Harness([block_playbook()])
    open_incident(h.store, "inc-1", {"api_key": "team-a-1"}, kind="cost")
    tick = h.tick()
    run = run_id_for("inc-1", "block-runaway-key")
    stored: list[Any] = h.store.events(run_id=run)
    assert [e.key for e in tick.events] == [e.key for e in stored]
    assert all(e.seq is not None and e.ts == T0 + 15 for e in tick.events)


def test_rollback_retries_and_ignores_the_rate_limit() -> None:
    h = Harness(
        [failover_playbook()], max_actions_per_hour=1, retry_base_s=15, breaker_threshold=10
    )
    before = h.gateway.orders()
    open_incident(h.store, "inc-1", {"provider": "openai"})
    h.tick()
    approve(h)
    h.tick()
    h.metrics.set("error_rate", {}, 0.5)
    h.gateway.fail_next(1, types=["set_deployment_orders"])
    h.tick(600)  # verification times out; the first rollback attempt fails transiently
    rb_failures = [e for e in h.events(EventType.ACTION_FAILED) if e.payload.get("rollback")]
    assert [f.payload["retryable"] for f in rb_failures] == [True]
    assert h.finished_state(RUN) is None
    h.tick()
    assert h.gateway.orders() == before
    assert h.finished_state(RUN) == "rolled_back"
    rollback_intents = [e for e in h.events(EventType.ACTION_INTENDED) if e.payload.get("rollback")]
    assert len(rollback_intents) == 1


class CrashOnRollback:
    """Applies forward actions normally; a rollback reaches the gateway, then the process dies."""

    def __init__(self, inner: InMemoryGateway) -> None:
        self.inner = inner
        self.name = inner.name

    def plan(self, action: GatewayAction) -> ActionPlan:
        return self.inner.plan(action)

    def satisfied(self, action: GatewayAction) -> bool:
        return self.inner.satisfied(action)

    def apply(self, action: GatewayAction, *, key: str) -> ActionOutcome:
        outcome = self.inner.apply(action, key=key)
        if key.startswith("rollback:"):
            raise Crash
        return outcome


def test_rollback_that_reached_the_gateway_before_a_crash_is_not_repeated() -> None:
    h = Harness([failover_playbook()])
    before = h.gateway.orders()
    open_incident(h.store, "inc-1", {"provider": "openai"})
    h.tick()
    approve(h)
    crashing = h.new_stage(CrashOnRollback(h.gateway))
    h.tick(stage=crashing)
    h.metrics.set("error_rate", {}, 0.5)
    with pytest.raises(Crash):
        h.tick(600, stage=crashing)  # verification times out; the inverse is applied, then crash
    assert h.gateway.orders() == before
    h.tick(stage=h.new_stage())
    assert h.finished_state(RUN) == "rolled_back"
    assert [c.key for c in h.gateway.calls] == [f"action:{RUN}:1", f"rollback:{RUN}:1"]
    assert h.gateway.replays == []
    [rolled] = h.events(EventType.ACTION_ROLLED_BACK)
    assert "already in effect" in rolled.payload["outcome"]["detail"]
