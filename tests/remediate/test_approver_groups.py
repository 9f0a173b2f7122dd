"""``group:NAME`` approvers, resolved from the config mapping passed to RemediateStage."""

from __future__ import annotations

import logging

import pytest

from gatewarden.models import EventType
from gatewarden.remediate.approvals import ApprovalRefused, record_decision, resolve_approvers
from gatewarden.remediate.language import ApprovalStep
from gatewarden.remediate.runlog import run_id_for

from .helpers import Harness, failover_playbook, open_incident

RUN = run_id_for("inc-1", "provider-failover")
GROUPS = {"oncall": ["U-ALICE", "U-BOB"], "leads": ["U-CAROL", "U-ALICE"]}


def grouped(*approvers: str, quorum: int = 1) -> Harness:
    steps = failover_playbook().model_dump(mode="json")["steps"]
    steps[0] = {"type": "approval", "approvers": list(approvers), "quorum": quorum}
    h = Harness([failover_playbook(steps=steps)], approver_groups=GROUPS)
    open_incident(h.store, "inc-1", {"provider": "openai"})
    h.tick()
    return h


def grant(h: Harness, by: str) -> None:
    record_decision(h.store, run_id=RUN, step=0, decision="granted", by=by, now=h.clock.now())


def test_groups_resolve_in_order_without_duplicates() -> None:
    assert resolve_approvers(["group:oncall", "U-DAN", "group:leads"], GROUPS) == [
        "U-ALICE",
        "U-BOB",
        "U-DAN",
        "U-CAROL",
    ]


def test_request_persists_the_resolved_members_and_a_member_can_grant() -> None:
    h = grouped("group:oncall")
    [requested] = h.events(EventType.APPROVAL_REQUESTED)
    assert requested.payload["approvers"] == ["U-ALICE", "U-BOB"]
    with pytest.raises(ApprovalRefused, match="not an approver"):
        grant(h, "U-CAROL")
    grant(h, "U-BOB")
    h.tick()
    assert len(h.gateway.calls) == 1


def test_quorum_counts_distinct_resolved_members() -> None:
    h = grouped("group:leads", "U-DAN", quorum=2)
    grant(h, "U-ALICE")
    h.tick()
    assert h.gateway.calls == []
    grant(h, "U-DAN")
    h.tick()
    assert len(h.gateway.calls) == 1


def test_a_config_change_after_the_request_does_not_change_who_may_decide() -> None:
    h = grouped("group:oncall")
    h.kwargs["approver_groups"] = {"oncall": ["U-EVE"]}
    h.stage = h.new_stage()  # a restart, with a different mapping
    with pytest.raises(ApprovalRefused):
        grant(h, "U-EVE")
    grant(h, "U-ALICE")
    h.tick()
    assert len(h.gateway.calls) == 1


def test_unknown_group_cannot_be_granted_and_times_out(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        h = grouped("group:nobody")
    assert "group:nobody is not configured" in caplog.text
    [requested] = h.events(EventType.APPROVAL_REQUESTED)
    assert requested.payload["approvers"] == ["group:nobody"]
    h.tick(600)
    assert h.finished_state(RUN) == "denied"
    assert h.gateway.calls == []


def test_group_quorum_is_checked_when_resolved_not_at_load() -> None:
    step = ApprovalStep(type="approval", approvers=["group:oncall"], quorum=2)
    assert step.quorum == 2
    with pytest.raises(ValueError, match="quorum 2 exceeds"):
        ApprovalStep(type="approval", approvers=["U1"], quorum=2)
