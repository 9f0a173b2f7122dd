"""Human wording of events and figures for reports and the console.

The report owns its wording (rather than reusing chat messages) because it must say more than a
notification does: each action's request and response, each grouping decision's reason, each
approval's approver. Everything that leaves here went through :func:`redact`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gatewarden.models import Event, EventType, scope_key
from gatewarden.notify.redact import REDACTED, is_secret_name, redact, safe_params

_MAX_RESPONSE = 160


def fmt_number(value: object) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return redact(str(value))
    x = float(value)
    if x != x:
        return "n/a"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}".rstrip("0").rstrip(".")
    return f"{x:.3g}"


def fmt_duration(seconds: float | None) -> str:
    """``45s``, ``2m``, ``3m20s``, ``1h5m``; ``—`` when the milestone was never reached."""
    if seconds is None:
        return "—"
    s = round(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        m, r = divmod(s, 60)
        return f"{m}m" if r == 0 else f"{m}m{r}s"
    h, r = divmod(s, 3600)
    return f"{h}h" if r < 60 else f"{h}h{r // 60}m"


def fmt_ts(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%H:%M:%S")


def scope_text(scope: object) -> str:
    if isinstance(scope, Mapping) and scope:
        return redact(scope_key({str(k): str(v) for k, v in scope.items()}))
    return "all traffic"


def alert_text(p: Mapping[str, Any]) -> str:
    return f"{p.get('kind', '?')} on {scope_text(p.get('scope'))}"


def action_text(action: object) -> str:
    """``failover_provider(provider=openai)``; secret-named params masked."""
    if isinstance(action, Mapping):
        params = action.get("params")
        args = ""
        if isinstance(params, Mapping):
            args = ", ".join(f"{k}={v}" for k, v in safe_params(params).items())
        return redact(f"{action.get('type', 'action')}({args})")
    return "—" if action is None else redact(str(action))


def _mask(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): REDACTED if is_secret_name(str(k)) else _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    return value


def response_text(outcome: object) -> str:
    """``HTTP 200 — fallback enabled — {"updated": …}``: status, detail and the body, shortened."""
    if not isinstance(outcome, Mapping):
        return redact(str(outcome)) if outcome is not None else "—"
    parts = []
    if outcome.get("status") is not None:
        parts.append(f"HTTP {outcome['status']}")
    elif "ok" in outcome:
        parts.append("ok" if outcome.get("ok") else "not ok")
    if outcome.get("detail"):
        parts.append(str(outcome["detail"]))
    body = outcome.get("response")
    if body:
        text = json.dumps(_mask(body), sort_keys=True, default=str)
        parts.append(text if len(text) <= _MAX_RESPONSE else text[: _MAX_RESPONSE - 1] + "…")
    return redact(" — ".join(parts)) if parts else "—"


def evidence_text(evidence: object) -> str:
    if not isinstance(evidence, Mapping) or "observed" not in evidence:
        return ""
    text = f"observed {fmt_number(evidence['observed'])}"
    if "expected" in evidence:
        text += f" vs expected {fmt_number(evidence['expected'])}"
    if evidence.get("window_s"):
        text += f" over {fmt_duration(float(evidence['window_s']))}"
    if evidence.get("volume"):
        text += f", {fmt_number(evidence['volume'])} requests"
    return text


def _checks(detail: object) -> str:
    if isinstance(detail, Mapping):
        checks = detail.get("checks")
        parts = [str(c.get("reason", "")) for c in checks or [] if isinstance(c, Mapping)]
        if detail.get("reason"):
            parts.append(str(detail["reason"]))
        if detail.get("good_ticks") is not None:
            parts.insert(0, f"{detail['good_ticks']} healthy tick(s)")
        return "; ".join(p for p in parts if p)
    return "" if detail is None else str(detail)


def _with(text: str, extra: object) -> str:
    return f"{text} — {extra}" if extra else text


def summarize(event: Event, *, playbook: str = "") -> tuple[str, dict[str, str]]:
    """One line per event plus labelled details (request, response, reason, checks)."""
    p, t = event.payload, event.type
    step = p.get("step", "?")
    detail: dict[str, str] = {}
    text: str
    if t is EventType.ALERT_FIRED:
        ev = evidence_text(p.get("evidence"))
        text = f"alert fired: {alert_text(p)}" + (f" ({ev})" if ev else "")
        evidence = p.get("evidence")
        if isinstance(evidence, Mapping) and evidence.get("detail"):
            detail["Evidence"] = str(evidence["detail"])
        if p.get("severity"):
            detail["Severity"] = str(p["severity"])
    elif t is EventType.ALERT_RESOLVED:
        text = f"alert resolved: {alert_text(p)}" + (f" ({p['reason']})" if p.get("reason") else "")
    elif t is EventType.ALERT_GROUPED:
        text = _with(f"alert grouped into the incident: {alert_text(p)}", p.get("reason"))
        if p.get("root_cause"):
            detail["New root cause"] = str(p.get("title") or p["root_cause"])
    elif t is EventType.ALERT_INHIBITED:
        text = _with(f"alert inhibited: {alert_text(p)} by {p.get('by', '?')}", p.get("reason"))
    elif t is EventType.INCIDENT_OPENED:
        kinds = ", ".join(map(str, p.get("kinds", []))) or "anomaly"
        title = p.get("title") or f"{kinds} on {scope_text(p.get('scope'))}"
        text = f"incident opened: {title} [{str(p.get('severity', '?')).upper()}]"
    elif t is EventType.INCIDENT_SEVERITY:
        text = _with(f"severity changed to {str(p.get('severity', '?')).upper()}", p.get("reason"))
    elif t is EventType.INCIDENT_ACKNOWLEDGED:
        text = f"acknowledged by {p.get('by', '?')}"
    elif t is EventType.INCIDENT_MITIGATED:
        text = f"incident mitigated by {p.get('action') or 'the playbook'}"
    elif t is EventType.INCIDENT_REOPENED:
        text = _with("incident reopened", p.get("reason"))
    elif t is EventType.INCIDENT_RESOLVED:
        text = _with("incident resolved", p.get("reason"))
    elif t is EventType.PLAYBOOK_STARTED:
        text = f"playbook {p.get('playbook', '?')} started ({p.get('mode', 'approve')} mode)"
        detail["Run"] = str(event.run_id)
    elif t is EventType.PLAYBOOK_FINISHED:
        text = f"playbook {playbook or '?'} finished: {p.get('state', '?')}"
    elif t is EventType.APPROVAL_REQUESTED:
        approvers = p.get("approvers") or []
        names = ", ".join(map(str, approvers)) if isinstance(approvers, list) else str(approvers)
        text = f"approval requested for step {step} from {names or 'nobody'}"
        detail["Quorum"] = str(p.get("quorum", 1))
        if p.get("expires_at") is not None:
            detail["Expires"] = fmt_ts(float(p["expires_at"]))
        if p.get("on_timeout"):
            detail["On timeout"] = str(p["on_timeout"])
        if p.get("preview"):  # what the approval would let happen, with its traffic share
            detail["Preview"] = str(p["preview"])
    elif t in (EventType.APPROVAL_GRANTED, EventType.APPROVAL_DENIED):
        verb = "granted" if t is EventType.APPROVAL_GRANTED else "denied"
        text = _with(f"approval {verb} by {p.get('by', '?')} (step {step})", p.get("reason"))
        if p.get("via"):
            detail["As member of"] = str(p["via"])
    elif t is EventType.APPROVAL_EXPIRED:
        text = f"approval of step {step} expired: {p.get('outcome', '?')}"
        if p.get("escalated_to"):
            detail["Escalated to"] = ", ".join(str(a) for a in p["escalated_to"])
    elif t is EventType.ACTION_INTENDED:
        verb = "rolling back" if p.get("rollback") else "requesting"
        action = p.get("action")
        name = action.get("type", "action") if isinstance(action, Mapping) else "action"
        text = f"{verb} step {step}: {name}"
        detail["Request"] = action_text(p.get("action"))
        if p.get("preview"):
            detail["Preview"] = str(p["preview"])
        if p.get("inverse"):
            detail["Inverse"] = action_text(p.get("inverse"))
        if p.get("dry_run"):
            detail["Dry run"] = "yes: nothing was applied"
    elif t is EventType.ACTION_APPLIED:
        outcome = p.get("outcome")
        status = outcome.get("status") if isinstance(outcome, Mapping) else None
        text = f"applied step {step}" + (f": HTTP {status}" if status is not None else "")
        detail["Response"] = response_text(p.get("outcome"))
    elif t is EventType.ACTION_FAILED:
        what = "rollback of step" if p.get("rollback") else "action failed at step"
        retry = "will retry" if p.get("retryable") else "final"
        text = f"{what} {step} (attempt {p.get('attempt', '?')}, {retry}): {p.get('error', '?')}"
    elif t is EventType.ACTION_ROLLED_BACK:
        action = p.get("action")
        name = action.get("type", "action") if isinstance(action, Mapping) else "action"
        text = f"rolled back step {step}: {name}"
        detail["Request"] = action_text(p.get("action"))
        detail["Response"] = response_text(p.get("outcome"))
    elif t in (EventType.VERIFICATION_PASSED, EventType.VERIFICATION_FAILED):
        verb = "passed" if t is EventType.VERIFICATION_PASSED else "failed"
        text = f"verification {verb} (step {step})"
        checks = _checks(p.get("detail"))
        if checks:
            detail["Checks"] = checks
    else:
        text = t.value
    return redact(text), {k: redact(v) for k, v in detail.items()}
