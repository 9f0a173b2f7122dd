from __future__ import annotations

from gatewarden.models import Event, EventType, Severity
from gatewarden.notify.messages import build_message, message_id, root_message_id
from gatewarden.notify.redact import redact, safe_params
from tests.notify.factory import INCIDENT, PLANTED_SECRET, ROOT_FP, RUN, T0, lifecycle


def _by_type(events: list[Event], type_: EventType) -> Event:
    return next(e for e in events if e.type is type_)


def _lookup(events: list[Event]):  # type: ignore[no-untyped-def]
    def lookup(fp: str):  # type: ignore[no-untyped-def]
        for e in events:
            if e.type is EventType.ALERT_FIRED and e.payload["fingerprint"] == fp:
                return e.payload
        return None

    return lookup


def test_opened_message_carries_scope_severity_root_cause_and_evidence() -> None:
    events = lifecycle()
    opened = _by_type(events, EventType.INCIDENT_OPENED)
    msg = build_message(opened, alert_lookup=_lookup(events))
    assert msg is not None
    assert msg.id == root_message_id(INCIDENT) and msg.thread_of is None
    assert msg.severity is Severity.WARNING
    assert msg.title == "incident opened: error_rate on provider=openai"
    assert msg.fields["Root cause"] == "error_rate on provider=openai"
    assert msg.fields["Observed"] == "0.31" and msg.fields["Expected"] == "0.01"
    assert msg.fields["Window"] == "5m"
    assert msg.fields["Scope"] == "provider=openai"
    assert msg.fields["Detector"] == "robust_z"


def test_opened_without_lookup_still_names_the_root_alert() -> None:
    msg = build_message(_by_type(lifecycle(), EventType.INCIDENT_OPENED))
    assert msg is not None and msg.fields["Root cause"] == f"alert {ROOT_FP}"


def test_follow_ups_join_the_incident_thread_with_deterministic_ids() -> None:
    events = [e.model_copy(update={"seq": n}) for n, e in enumerate(lifecycle(), 1)]
    messages = [m for m in (build_message(e) for e in events) if m is not None]
    kinds = [m.kind for m in messages]
    assert "alert.fired" not in kinds
    assert kinds[0] == "incident.opened"
    assert all(m.thread_of == root_message_id(INCIDENT) for m in messages[1:])
    assert [m.id for m in messages] == [
        m.id for m in (build_message(e) for e in events) if m is not None
    ]
    assert len({m.id for m in messages}) == len(messages)
    mitigated = _by_type(events, EventType.INCIDENT_MITIGATED)
    assert message_id(mitigated) == f"msg:seq:{mitigated.seq}"
    granted = _by_type(events, EventType.APPROVAL_GRANTED)
    assert message_id(granted) == f"msg:{granted.key}"


def test_approval_request_has_approve_and_deny_actions() -> None:
    msg = build_message(_by_type(lifecycle(), EventType.APPROVAL_REQUESTED))
    assert msg is not None
    assert [a["action_id"] for a in msg.actions] == ["approve", "deny"]
    assert msg.actions[0]["id"] == f"approve:{RUN}:0"
    assert msg.actions[1]["id"] == f"deny:{RUN}:0"
    assert all(a["run_id"] == RUN and a["step"] == "0" for a in msg.actions)
    assert msg.fields["Approvers"] == "U123"


def test_decisions_actions_and_outcomes_read_well() -> None:
    events = lifecycle()
    titles = {e.type: m.title for e in events if (m := build_message(e)) is not None}
    assert titles[EventType.APPROVAL_GRANTED] == "approval granted by U123 (step 0)"
    assert titles[EventType.ACTION_INTENDED].startswith("applying step 0: route_fallback(")
    assert titles[EventType.ACTION_APPLIED] == "applied step 0"
    assert titles[EventType.VERIFICATION_PASSED] == "verification passed (step 0)"
    assert titles[EventType.INCIDENT_MITIGATED] == "mitigated by route_fallback"
    assert titles[EventType.INCIDENT_RESOLVED] == "incident resolved"
    assert titles[EventType.INCIDENT_SEVERITY] == "severity changed to CRITICAL"
    denied = Event(
        ts=T0,
        type=EventType.APPROVAL_DENIED,
        incident_id=INCIDENT,
        run_id=RUN,
        payload={"step": 1, "by": "U999", "reason": "too risky"},
    )
    msg = build_message(denied)
    assert msg is not None and msg.title == "approval denied by U999 (step 1)"
    assert msg.text == "too risky"
    expired = Event(
        ts=T0,
        type=EventType.APPROVAL_EXPIRED,
        incident_id=INCIDENT,
        run_id=RUN,
        payload={"step": 1, "outcome": "skipped"},
    )
    msg = build_message(expired)
    assert msg is not None and msg.title == "approval expired (step 1): skipped"


def test_no_message_for_alert_churn_or_notifications() -> None:
    for type_ in (
        EventType.ALERT_FIRED,
        EventType.ALERT_UPDATED,
        EventType.NOTIFICATION_QUEUED,
        EventType.REPORT_WRITTEN,
    ):
        assert build_message(Event(ts=T0, type=type_, payload={})) is None


def test_secrets_never_reach_a_message() -> None:
    failed = Event(
        ts=T0,
        type=EventType.ACTION_FAILED,
        incident_id=INCIDENT,
        run_id=RUN,
        payload={
            "step": 0,
            "error": f"401 from gateway: Authorization: Bearer {PLANTED_SECRET}",
            "retryable": False,
        },
    )
    for event in [*lifecycle(), failed]:
        msg = build_message(event)
        if msg is not None:
            assert PLANTED_SECRET not in msg.model_dump_json()
    intended = build_message(_by_type(lifecycle(), EventType.ACTION_INTENDED))
    assert intended is not None and "api_secret=<redacted>" in intended.title
    assert "team-a-1" in redact("api_key=team-a-1")  # aliases stay readable
    assert safe_params({"key": "team-a-1", "token": "abc"}) == {
        "key": "team-a-1",
        "token": "<redacted>",
    }
