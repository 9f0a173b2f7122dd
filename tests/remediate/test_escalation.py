"""``on_timeout: escalate`` hands a pending approval to ``escalate_to`` (groups resolved then),
announces it, lets them decide for ``escalate_timeout_s``, and denies when nobody does."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gatewarden.models import EventType, RunState
from gatewarden.notify.messages import build_message
from gatewarden.remediate.approvals import ApprovalRefused, record_decision
from gatewarden.remediate.language import ApprovalStep
from gatewarden.remediate.runlog import run_id_for

from .helpers import Harness, failover_playbook, open_incident

RUN = run_id_for("inc-1", "provider-failover")
GROUPS = {"oncall": ["U-ALICE"], "managers": ["U-MGR", "U-DIRECTOR"]}


def escalating(**approval: Any) -> Harness:
    steps = failover_playbook().model_dump(mode="json")["steps"]
    steps[0] = {
        "type": "approval",
        "approvers": ["group:oncall"],
        "timeout_s": 60,
        "on_timeout": "escalate",
        "escalate_to": ["group:managers", "U-CTO"],
        "escalate_timeout_s": 300,
    } | approval
    h = Harness([failover_playbook(steps=steps)], approver_groups=GROUPS)
    open_incident(h.store, "inc-1", {"provider": "openai"})
    h.tick()
    return h


def grant(h: Harness, by: str) -> None:
    record_decision(h.store, run_id=RUN, step=0, decision="granted", by=by, now=h.clock.now())


def test_the_approval_is_handed_to_the_escalation_approvers_and_announced() -> None:
    h = escalating()
    with pytest.raises(ApprovalRefused, match="U-MGR is not an approver"):
        grant(h, "U-MGR")  # not before the first period ran out
    h.tick(60)
    [expired] = h.events(EventType.APPROVAL_EXPIRED)
    assert expired.payload["outcome"] == "escalate"
    assert expired.payload["escalated_to"] == ["U-MGR", "U-DIRECTOR", "U-CTO"]
    assert expired.payload["expires_at"] == h.clock.now() + 300
    message = build_message(expired)
    assert message is not None  # the notifiers send it, naming who decides now and until when
    assert message.title == (
        "approval not given in time (step 0): escalated to U-MGR, U-DIRECTOR, U-CTO"
    )
    assert message.text.startswith("they may decide until ")
    assert h.projected(RUN).state is RunState.WAITING_APPROVAL
    grant(h, "U-DIRECTOR")
    h.tick()
    assert [c.action.type for c in h.gateway.calls] == ["failover_provider"]
    granted = h.events(EventType.APPROVAL_GRANTED)
    assert [g.payload["by"] for g in granted] == ["U-DIRECTOR"]


def test_the_first_approvers_keep_their_say_after_escalation() -> None:
    h = escalating()
    h.tick(60)
    grant(h, "U-ALICE")
    h.tick()
    assert len(h.gateway.calls) == 1


def test_nobody_deciding_in_the_escalation_period_denies() -> None:
    h = escalating()
    h.tick(60)
    h.tick(299)
    assert h.finished_state(RUN) is None  # the escalation period is its own, not timeout_s
    h.tick(1)
    outcomes = [e.payload["outcome"] for e in h.events(EventType.APPROVAL_EXPIRED)]
    assert outcomes == ["escalate", "deny"]
    assert h.finished_state(RUN) == "denied"
    assert h.gateway.calls == []
    with pytest.raises(ApprovalRefused, match="already finished"):
        grant(h, "U-MGR")


def test_a_restarted_engine_keeps_the_escalation() -> None:
    h = escalating(escalate_timeout_s=None)
    h.tick(60)
    h.stage = h.new_stage()
    grant(h, "U-CTO")
    h.tick()
    assert len(h.gateway.calls) == 1


def test_escalation_settings_are_checked_at_load() -> None:
    with pytest.raises(ValidationError, match="escalate needs escalate_to"):
        ApprovalStep.model_validate(
            {"type": "approval", "approvers": ["U1"], "on_timeout": "escalate"}
        )
    with pytest.raises(ValidationError, match="need on_timeout: escalate"):
        ApprovalStep.model_validate(
            {"type": "approval", "approvers": ["U1"], "escalate_to": ["U2"]}
        )
