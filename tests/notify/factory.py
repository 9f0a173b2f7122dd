"""A hand-built incident lifecycle, shared by the notify and report tests."""

from __future__ import annotations

from typing import Any

from gatewarden.models import Event, EventType, fingerprint

T0 = 1_700_000_000.0
INCIDENT = "inc-1"
RUN = "run-1"
PLANTED_SECRET = "sk-live-PLANTED0123456789"
ROOT_SCOPE = {"provider": "openai"}
CHILD_SCOPE = {"provider": "openai", "model": "gpt-4o"}
ROOT_FP = fingerprint("error_rate", ROOT_SCOPE)
CHILD_FP = fingerprint("ttft", CHILD_SCOPE)


def _evidence(metric: str, observed: float, expected: float) -> dict[str, Any]:
    return {
        "metric": metric,
        "observed": observed,
        "expected": expected,
        "score": 9.5,
        "window_s": 300.0,
        "volume": 1200.0,
        "detail": f"{metric} {observed} vs baseline {expected}",
        "sample_ids": [],
    }


def lifecycle(incident_id: str = INCIDENT, t0: float = T0) -> list[Event]:
    """opened → grouped → severity → approval → action → verification → mitigated → resolved."""
    i, r = incident_id, RUN
    E = EventType
    return [
        Event(
            ts=t0,
            type=E.ALERT_FIRED,
            incident_id=i,
            payload={
                "fingerprint": ROOT_FP,
                "kind": "error_rate",
                "scope": ROOT_SCOPE,
                "detector": "robust_z",
                "severity": "warning",
                "evidence": _evidence("error_rate", 0.31, 0.01),
                "first_anomalous_ts": t0 - 60,
            },
        ),
        Event(
            ts=t0,
            type=E.INCIDENT_OPENED,
            incident_id=i,
            key=f"open:{i}",
            payload={
                "kinds": ["error_rate"],
                "scope": ROOT_SCOPE,
                "severity": "warning",
                "title": "error_rate on provider=openai",
                "root_cause": ROOT_FP,
                "alerts": [ROOT_FP],
            },
        ),
        Event(
            ts=t0 + 30,
            type=E.ALERT_FIRED,
            incident_id=i,
            payload={
                "fingerprint": CHILD_FP,
                "kind": "ttft",
                "scope": CHILD_SCOPE,
                "detector": "robust_z",
                "severity": "critical",
                "evidence": _evidence("ttft_p95_ms", 4200.0, 800.0),
                "first_anomalous_ts": t0 + 0,
            },
        ),
        Event(
            ts=t0 + 30,
            type=E.ALERT_GROUPED,
            incident_id=i,
            payload={
                "fingerprint": CHILD_FP,
                "kind": "ttft",
                "scope": CHILD_SCOPE,
                "reason": "related to error_rate on provider=openai",
            },
        ),
        Event(
            ts=t0 + 30,
            type=E.INCIDENT_SEVERITY,
            incident_id=i,
            payload={"severity": "critical", "reason": "ttft alert"},
        ),
        Event(
            ts=t0 + 45,
            type=E.PLAYBOOK_STARTED,
            incident_id=i,
            run_id=r,
            key=f"{r}:started",
            payload={"playbook": "provider_failover", "mode": "approve"},
        ),
        Event(
            ts=t0 + 45,
            type=E.APPROVAL_REQUESTED,
            incident_id=i,
            run_id=r,
            key=f"{r}:0:approval",
            payload={"step": 0, "approvers": ["U123"], "expires_at": t0 + 945},
        ),
        Event(
            ts=t0 + 120,
            type=E.APPROVAL_GRANTED,
            incident_id=i,
            run_id=r,
            key=f"{r}:0:granted",
            payload={"step": 0, "by": "U123", "reason": "looks right"},
        ),
        Event(
            ts=t0 + 121,
            type=E.ACTION_INTENDED,
            incident_id=i,
            run_id=r,
            key=f"{r}:0:intent",
            payload={
                "step": 0,
                "action": {
                    "type": "route_fallback",
                    "params": {
                        "provider": "openai",
                        "to": "anthropic",
                        "api_secret": PLANTED_SECRET,
                    },
                },
                "inverse": {"type": "clear_fallback", "params": {"provider": "openai"}},
                "preview": "route provider=openai to anthropic",
            },
        ),
        Event(
            ts=t0 + 122,
            type=E.ACTION_APPLIED,
            incident_id=i,
            run_id=r,
            key=f"{r}:0:applied",
            payload={
                "step": 0,
                "outcome": {
                    "ok": True,
                    "status": 200,
                    "detail": "fallback enabled",
                    "response": {"echo": f"Bearer {PLANTED_SECRET}"},
                },
            },
        ),
        Event(
            ts=t0 + 180,
            type=E.VERIFICATION_PASSED,
            incident_id=i,
            run_id=r,
            key=f"{r}:0:verified",
            payload={"step": 0, "detail": "error_rate 0.01 below 0.05"},
        ),
        Event(
            ts=t0 + 180,
            type=E.INCIDENT_MITIGATED,
            incident_id=i,
            run_id=r,
            payload={"run_id": r, "action": "route_fallback"},
        ),
        Event(
            ts=t0 + 181,
            type=E.PLAYBOOK_FINISHED,
            incident_id=i,
            run_id=r,
            key=f"{r}:finished",
            payload={"state": "succeeded"},
        ),
        Event(
            ts=t0 + 600,
            type=E.INCIDENT_RESOLVED,
            incident_id=i,
            payload={"reason": "every member alert resolved"},
        ),
    ]
