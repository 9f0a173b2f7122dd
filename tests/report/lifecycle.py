"""A hand-built incident with every kind of decision a report must show, in the event shapes the
correlator, the playbook engine and the outbox write (see ``gatewarden.projections``)."""

from __future__ import annotations

from typing import Any

from gatewarden.models import Event, EventType, fingerprint

T0 = 1_700_000_000.0
INC = "inc-1"
SECRET = "sk-live-PLANTED0123456789"
SLACK_TOKEN = "xoxb-PLANTED-0123456789"
ROOT = {"provider": "openai"}
CHILD = {"provider": "openai", "model": "gpt-4o"}
KEY = {"team": "search", "api_key": SECRET}  # a gateway that logged the key, not its alias
ROOT_FP, CHILD_FP, KEY_FP = (
    fingerprint("error_rate", ROOT),
    fingerprint("ttft", CHILD),
    fingerprint("error_rate", KEY),
)
E = EventType


def _evidence(metric: str, observed: float, expected: float) -> dict[str, Any]:
    return {
        "metric": metric,
        "observed": observed,
        "expected": expected,
        "score": 9.5,
        "window_s": 15.0,
        "volume": 120.0,
        "detail": f"{metric} {observed} vs baseline {expected}",
    }


def _fired(ts: float, fp: str, kind: str, scope: dict[str, str], first: float) -> Event:
    metric = "ttft_p95" if kind == "ttft" else "error_rate"
    return Event(
        ts=ts,
        type=E.ALERT_FIRED,  # appended before routing: no incident id
        payload={
            "fingerprint": fp,
            "kind": kind,
            "scope": scope,
            "detector": f"{kind}-detector",
            "severity": "warning",
            "evidence": _evidence(metric, 0.31, 0.01),
            "first_anomalous_ts": first,
        },
    )


def _note(ts: float, type_: EventType, msg: str, kind: str, **extra: Any) -> Event:
    payload: dict[str, Any] = {"notifier": "slack"}
    if type_ is E.NOTIFICATION_QUEUED:
        payload["message"] = {"id": msg, "kind": kind, "title": kind}
    else:
        payload["message_id"] = msg
    return Event(
        ts=ts, type=type_, incident_id=INC, key=f"{type_}:{msg}:{ts}", payload={**payload, **extra}
    )


def _run(ts: float, run: str, type_: EventType, key: str, **payload: Any) -> Event:
    return Event(ts=ts, type=type_, incident_id=INC, run_id=run, key=key, payload=payload)


def lifecycle(t0: float = T0) -> list[Event]:
    opened = "msg:incident:inc-1"
    asked = "msg:approval:run-1:0"
    done = "msg:resolved"
    action = {"type": "failover_provider", "params": {"provider": "openai", "api_secret": SECRET}}
    inverse = {"type": "set_deployment_orders", "params": {"orders": {"openai-gpt-4o": 1}}}
    return [
        _fired(t0, ROOT_FP, "error_rate", ROOT, t0 - 30),
        Event(
            ts=t0,
            type=E.INCIDENT_OPENED,
            incident_id=INC,
            key=f"open:{INC}",
            payload={
                "kinds": ["error_rate"],
                "scope": ROOT,
                "severity": "warning",
                "title": "error rate on provider=openai",
                "root_cause": ROOT_FP,
                "alerts": [ROOT_FP],
            },
        ),
        _note(t0, E.NOTIFICATION_QUEUED, opened, "incident.opened"),
        _note(
            t0 + 2,
            E.NOTIFICATION_FAILED,
            opened,
            "",
            error=f"timeout (token={SLACK_TOKEN})",
            retryable=True,
            attempt=1,
        ),
        _note(t0 + 20, E.NOTIFICATION_DELIVERED, opened, "", ref="C1:1.2"),
        _fired(t0 + 15, CHILD_FP, "ttft", CHILD, t0),
        Event(
            ts=t0 + 15,
            type=E.ALERT_INHIBITED,
            incident_id=INC,
            payload={
                "fingerprint": CHILD_FP,
                "kind": "ttft",
                "scope": CHILD,
                "by": INC,
                "reason": "inside error_rate on provider=openai",
            },
        ),
        _fired(t0 + 15, KEY_FP, "error_rate", KEY, t0 + 15),
        Event(
            ts=t0 + 15,
            type=E.ALERT_GROUPED,
            incident_id=INC,
            payload={
                "fingerprint": KEY_FP,
                "kind": "error_rate",
                "scope": KEY,
                "reason": "explained by error_rate on provider=openai (90% of its failed calls)",
            },
        ),
        Event(
            ts=t0 + 15,
            type=E.INCIDENT_SEVERITY,
            incident_id=INC,
            payload={"severity": "critical", "reason": "impact: 520 failed requests"},
        ),
        _run(
            t0 + 16,
            "run-1",
            E.PLAYBOOK_STARTED,
            "run:run-1",
            playbook="provider-failover",
            mode="approve",
        ),
        _run(
            t0 + 16,
            "run-1",
            E.APPROVAL_REQUESTED,
            "approval:run-1:0",
            step=0,
            approvers=["U1", "U2"],
            quorum=1,
            expires_at=t0 + 616,
            on_timeout="deny",
        ),
        _note(t0 + 16, E.NOTIFICATION_QUEUED, asked, "approval.requested"),
        _note(t0 + 17, E.NOTIFICATION_DELIVERED, asked, "", ref="C1:1.3"),
        _run(
            t0 + 100,
            "run-1",
            E.APPROVAL_GRANTED,
            "decision:run-1:0:U2",
            step=0,
            by="U2",
            reason="go",
        ),
        _note(t0 + 100, E.NOTIFICATION_QUEUED, "msg:granted", "approval.granted"),
        _note(t0 + 101, E.NOTIFICATION_DELIVERED, "msg:granted", "", ref="C1:1.4"),
        _run(
            t0 + 101,
            "run-1",
            E.ACTION_INTENDED,
            "intended:run-1:1",
            step=1,
            action=action,
            inverse=inverse,
            preview="move gpt-4o from openai to azure",
        ),
        _run(
            t0 + 102,
            "run-1",
            E.ACTION_APPLIED,
            "applied:run-1:1",
            step=1,
            outcome={
                "ok": True,
                "status": 200,
                "detail": "fail over from provider openai",
                "response": {"updated": ["openai-gpt-4o"], "echo": f"Bearer {SECRET}"},
            },
        ),
        _run(
            t0 + 400,
            "run-1",
            E.VERIFICATION_FAILED,
            "verify-failed:run-1:2",
            step=2,
            detail={
                "good_ticks": 0,
                "checks": [{"reason": "error_rate[provider=openai]=0.2 >= 0.02", "ok": False}],
                "reason": "not healthy for 3 ticks within 300s",
            },
        ),
        _run(
            t0 + 401,
            "run-1",
            E.ACTION_INTENDED,
            "rollback:run-1:1",
            step=1,
            action=inverse,
            inverse=None,
            preview="roll back: set_deployment_orders",
            rollback=True,
        ),
        _run(
            t0 + 402,
            "run-1",
            E.ACTION_ROLLED_BACK,
            "rolled_back:run-1:1",
            step=1,
            action=inverse,
            outcome={"ok": True, "status": 200, "detail": "orders restored"},
        ),
        _run(t0 + 403, "run-1", E.PLAYBOOK_FINISHED, "finished:run-1", state="rolled_back"),
        _run(
            t0 + 410,
            "run-2",
            E.PLAYBOOK_STARTED,
            "run:run-2",
            playbook="model-failover",
            mode="approve",
        ),
        _run(
            t0 + 410,
            "run-2",
            E.APPROVAL_REQUESTED,
            "approval:run-2:0",
            step=0,
            approvers=["U1"],
            quorum=1,
            expires_at=t0 + 1010,
        ),
        _run(
            t0 + 450,
            "run-2",
            E.APPROVAL_DENIED,
            "decision:run-2:0:U1",
            step=0,
            by="U1",
            reason="no",
        ),
        _run(t0 + 451, "run-2", E.PLAYBOOK_FINISHED, "finished:run-2", state="denied"),
        _run(
            t0 + 460,
            "run-3",
            E.PLAYBOOK_STARTED,
            "run:run-3",
            playbook="key-throttle",
            mode="approve",
        ),
        _run(
            t0 + 460,
            "run-3",
            E.APPROVAL_REQUESTED,
            "approval:run-3:0",
            step=0,
            approvers=["U1"],
            quorum=1,
            expires_at=t0 + 760,
        ),
        _run(t0 + 760, "run-3", E.APPROVAL_EXPIRED, "expired:run-3:0", step=0, outcome="deny"),
        _run(t0 + 761, "run-3", E.PLAYBOOK_FINISHED, "finished:run-3", state="denied"),
        *[
            Event(
                ts=t0 + 900,
                type=E.ALERT_RESOLVED,
                incident_id=INC,
                payload={"fingerprint": fp, "kind": kind, "scope": scope, "reason": "recovered"},
            )
            for fp, kind, scope in (
                (ROOT_FP, "error_rate", ROOT),
                (CHILD_FP, "ttft", CHILD),
                (KEY_FP, "error_rate", KEY),
            )
        ],
        Event(
            ts=t0 + 900,
            type=E.INCIDENT_RESOLVED,
            incident_id=INC,
            payload={
                "reason": "every member alert resolved",
                "impact": {"requests": 4000, "failed_requests": 520, "cost_usd": 1.5, "keys": 12},
            },
        ),
        _note(t0 + 900, E.NOTIFICATION_QUEUED, done, "incident.resolved"),
        _note(t0 + 901, E.NOTIFICATION_DELIVERED, done, "", ref="C1:1.9"),
    ]
