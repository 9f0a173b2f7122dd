"""End to end: RemediateStage + InMemoryGateway + SQLiteStore + FakeMetrics + VirtualClock."""

from __future__ import annotations

import pytest

from gatewarden.models import EventType, RunState
from gatewarden.remediate.approvals import ApprovalRefused, record_decision
from gatewarden.remediate.runlog import run_id_for

from .helpers import TICK, Harness, failover_playbook, open_incident

RUN = run_id_for("inc-1", "provider-failover")
BEFORE = {"oa-4o": 1, "az-4o": 2, "oa-mini": None, "az-mini": None, "an-son": None}


def healthy(h: Harness) -> None:
    h.metrics.set("error_rate", {"provider": "openai"}, 0.001)
    h.metrics.set("error_rate", {}, 0.01)


def approve(h: Harness, by: str = "U1") -> None:
    record_decision(
        h.store, run_id=RUN, step=0, decision="granted", by=by, reason="go", now=h.clock.now()
    )


def started_and_waiting(h: Harness) -> None:
    open_incident(h.store, "inc-1", {"provider": "openai"})
    h.tick()
    assert h.types(RUN) == ["playbook.started", "approval.requested"]
    assert h.projected(RUN).state is RunState.WAITING_APPROVAL


def test_approve_act_verify_succeeds() -> None:
    h = Harness([failover_playbook()])
    started_and_waiting(h)
    requested = h.events(EventType.APPROVAL_REQUESTED)[0]
    assert requested.key == f"approval:{RUN}:0"
    assert requested.payload["approvers"] == ["U1", "U2"]
    assert requested.payload["expires_at"] == h.clock.now() + 600
    # the approver sees what approving will do, planned read-only from the gateway's state
    assert requested.payload["preview"] == (
        "will move model groups gpt-4o, gpt-4o-mini from openai to azure"
    )
    assert requested.payload["action"]["type"] == "failover_provider"
    assert h.gateway.calls == []

    approve(h)
    tick = h.tick()
    intended = h.events(EventType.ACTION_INTENDED)[0]
    assert intended.key == f"action:{RUN}:1"
    assert intended.payload["action"]["params"]["orders"] == {
        "oa-4o": 3,
        "oa-mini": 2,
        "az-mini": 1,
    }
    assert intended.payload["inverse"] == {
        "type": "set_deployment_orders",
        "params": {"orders": {"oa-4o": 1, "oa-mini": None, "az-mini": None}},
    }
    assert intended.payload["preview"] == (
        "will move model groups gpt-4o, gpt-4o-mini from openai to azure"
    )
    assert [c.action.type for c in h.gateway.calls] == ["failover_provider"]
    assert h.gateway.calls[0].key == f"action:{RUN}:1"
    assert h.gateway.orders()["oa-4o"] == 3
    assert [e.type.value for e in tick.events] == ["action.intended", "action.applied"]

    healthy(h)
    for _ in range(2):
        h.tick()
        assert h.finished_state(RUN) is None
    tick = h.tick()
    assert [e.type.value for e in tick.events] == [
        "verification.passed",
        "incident.mitigated",
        "playbook.finished",
    ]
    finished = h.events(EventType.PLAYBOOK_FINISHED)[0]
    assert finished.payload["state"] == "succeeded"
    assert finished.payload["notes"] == [{"step": 3, "text": "moved off openai"}]
    mitigated = h.events(EventType.INCIDENT_MITIGATED)[0]
    assert mitigated.incident_id == "inc-1"
    assert mitigated.payload["run_id"] == RUN
    assert "gpt-4o" in mitigated.payload["action"]
    assert h.projected(RUN).state is RunState.SUCCEEDED
    assert ("error_rate", {"provider": "openai"}, None) in h.metrics.queries
    # Finished runs stay finished; no new run for the (now mitigated) incident.
    h.tick()
    assert len(h.events(EventType.PLAYBOOK_STARTED)) == 1


def test_verify_timeout_rolls_back_to_previous_state() -> None:
    h = Harness([failover_playbook()])
    started_and_waiting(h)
    approve(h)
    h.tick()
    assert h.gateway.orders() != BEFORE
    h.metrics.set("error_rate", {"provider": "openai"}, 0.001)
    h.metrics.set("error_rate", {}, 0.2)  # everything still failing
    for _ in range(600 // int(TICK) - 1):
        h.tick()
        assert h.finished_state(RUN) is None
    tick = h.tick()
    assert h.gateway.orders() == BEFORE
    types = [e.type.value for e in tick.events]
    assert types == [
        "verification.failed",
        "action.intended",
        "action.rolled_back",
        "playbook.finished",
    ]
    rollback_intent = tick.events[1]
    assert rollback_intent.payload["rollback"] is True
    assert rollback_intent.key == f"rollback:{RUN}:1"
    assert h.gateway.calls[-1].key == f"rollback:{RUN}:1"
    assert h.gateway.calls[-1].action.type == "set_deployment_orders"
    assert h.finished_state(RUN) == "rolled_back"
    assert h.events(EventType.INCIDENT_MITIGATED) == []
    assert h.projected(RUN).state is RunState.ROLLED_BACK


def test_deny_calls_nothing() -> None:
    h = Harness([failover_playbook()])
    started_and_waiting(h)
    record_decision(
        h.store, run_id=RUN, step=0, decision="denied", by="U2", reason="no", now=h.clock.now()
    )
    h.tick()
    assert h.finished_state(RUN) == "denied"
    assert h.gateway.calls == []
    assert h.events(EventType.ACTION_INTENDED) == []
    assert h.projected(RUN).state is RunState.DENIED
    with pytest.raises(ApprovalRefused, match="already finished"):
        approve(h)


def test_unauthorised_approver_is_refused() -> None:
    h = Harness([failover_playbook()])
    started_and_waiting(h)
    with pytest.raises(ApprovalRefused, match="not an approver"):
        approve(h, by="U999")
    with pytest.raises(ApprovalRefused, match="no approval pending"):
        record_decision(h.store, run_id=RUN, step=1, decision="granted", by="U1", now=h.clock.now())
    with pytest.raises(ApprovalRefused, match="no playbook run"):
        record_decision(
            h.store, run_id="nope", step=0, decision="granted", by="U1", now=h.clock.now()
        )
    h.tick()
    assert h.events(EventType.APPROVAL_GRANTED) == []
    assert h.gateway.calls == []
    assert h.projected(RUN).state is RunState.WAITING_APPROVAL


@pytest.mark.parametrize("by", ["mallory", "policy:auto"])
def test_grant_by_non_approver_written_directly_is_ignored(by: str) -> None:
    """Defence in depth: the engine only counts grants from the step's approvers."""
    from gatewarden.models import Event

    h = Harness([failover_playbook()])
    started_and_waiting(h)
    forged = Event(
        ts=h.clock.now(),
        type=EventType.APPROVAL_GRANTED,
        incident_id="inc-1",
        run_id=RUN,
        key="forged",
        payload={"step": 0, "by": by, "reason": ""},
    )
    h.store.append([forged])
    h.tick()
    assert h.gateway.calls == []


def test_quorum_counts_distinct_granters_and_duplicates_are_idempotent() -> None:
    step = {"type": "approval", "approvers": ["U1", "U2", "U3"], "quorum": 2}
    pb = failover_playbook()
    pb = pb.model_copy(update={"steps": [type(pb.steps[0]).model_validate(step), *pb.steps[1:]]})
    h = Harness([pb])
    started_and_waiting(h)
    approve(h, "U1")
    first = h.events(EventType.APPROVAL_GRANTED)[0]
    again = record_decision(
        h.store, run_id=RUN, step=0, decision="granted", by="U1", now=h.clock.now() + 1
    )
    assert again == first
    assert len(h.events(EventType.APPROVAL_GRANTED)) == 1
    h.tick()
    assert h.gateway.calls == []
    approve(h, "U3")
    h.tick()
    assert len(h.gateway.calls) == 1


def test_approval_timeout_denies() -> None:
    h = Harness([failover_playbook()])
    started_and_waiting(h)
    h.tick(599)
    assert h.events(EventType.APPROVAL_EXPIRED) == []
    h.tick(1)
    expired = h.events(EventType.APPROVAL_EXPIRED)
    assert [e.payload["outcome"] for e in expired] == ["deny"]
    assert h.finished_state(RUN) == "denied"
    assert h.gateway.calls == []
    with pytest.raises(ApprovalRefused):
        approve(h)


def test_approval_timeout_proceed_and_escalate() -> None:
    steps = failover_playbook().steps
    proceed = failover_playbook(
        steps=[{"type": "approval", "approvers": ["U1"], "timeout_s": 60, "on_timeout": "proceed"}]
        + [s.model_dump() for s in steps[1:]]
    )
    h = Harness([proceed])
    started_and_waiting(h)
    h.tick(60)
    assert h.events(EventType.APPROVAL_EXPIRED)[0].payload["outcome"] == "proceed"
    assert len(h.gateway.calls) == 1

    first = steps[0].model_dump() | {"timeout_s": 60, "on_timeout": "escalate"}
    escalate = failover_playbook(steps=[first | {"escalate_to": ["U-LEAD"]}])
    h = Harness([escalate])
    started_and_waiting(h)
    h.tick(60)
    assert [e.payload["outcome"] for e in h.events(EventType.APPROVAL_EXPIRED)] == ["escalate"]
    assert h.finished_state(RUN) is None
    h.tick(60)
    outcomes = [e.payload["outcome"] for e in h.events(EventType.APPROVAL_EXPIRED)]
    assert outcomes == ["escalate", "deny"]
    assert h.finished_state(RUN) == "denied"


def test_dry_run_calls_nothing() -> None:
    h = Harness([failover_playbook(mode="dry_run")])
    open_incident(h.store, "inc-1", {"provider": "openai"})
    h.tick()
    assert h.gateway.calls == []
    assert h.gateway.orders() == BEFORE
    assert h.types(RUN) == ["playbook.started", "action.intended", "playbook.finished"]
    intended = h.events(EventType.ACTION_INTENDED)[0]
    assert intended.payload["dry_run"] is True
    assert intended.payload["preview"].startswith("dry run: will move model groups")
    assert h.finished_state(RUN) == "dry_run"
    assert h.events(EventType.APPROVAL_REQUESTED) == []


def test_engine_wide_dry_run_overrides_playbook_mode() -> None:
    h = Harness([failover_playbook()], dry_run=True)
    open_incident(h.store, "inc-1", {"provider": "openai"})
    h.tick()
    assert h.finished_state(RUN) == "dry_run"
    assert h.gateway.calls == []


def test_kill_switch_stops_everything(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness([failover_playbook()], kill_switch=True)
    open_incident(h.store, "inc-1", {"provider": "openai"})
    with caplog.at_level("WARNING"):
        tick = h.tick()
    assert tick.events == []
    assert h.store.events(run_id=RUN) == []
    assert sum("kill switch" in r.message for r in caplog.records) == 1
    h.stage.kill_switch = False
    h.tick()
    assert h.types(RUN) == ["playbook.started", "approval.requested"]


def test_notify_template_error_is_recorded_not_fatal() -> None:
    pb = failover_playbook(mode="auto")
    steps = [s.model_dump() for s in pb.steps[:3]] + [
        {"type": "notify", "text": "{{ incident.scope.nope }}"}
    ]
    h = Harness([failover_playbook(mode="auto", steps=steps)])
    healthy(h)
    open_incident(h.store, "inc-1", {"provider": "openai"})
    for _ in range(4):
        h.tick()
    finished = h.events(EventType.PLAYBOOK_FINISHED)[0]
    assert finished.payload["state"] == "succeeded"
    assert "nope" in finished.payload["notes"][0]["error"]
