"""Turn events into notification messages (pure functions; no I/O).

Message ids are derived from the event, never random, so re-running a tick (or a whole backtest)
produces the same ids and the outbox's idempotent keys stop a second post. Every follow-up of an
incident sets ``thread_of`` to :func:`root_message_id`, the ``incident.opened`` message, so chat
notifiers keep one thread per incident. Payloads are read per the conventions table in
:mod:`gatewarden.projections`; free text goes through :func:`redact` because payloads are written
by many hands.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from gatewarden.models import Event, EventType, Message, Severity, scope_key
from gatewarden.notify.redact import redact, safe_params

#: Looks up the most recent ``alert.fired`` payload of a fingerprint (for evidence figures).
AlertLookup = Callable[[str], Mapping[str, Any] | None]

APPROVE = "approve"
DENY = "deny"

#: ``Message.kind`` of a chart of the triggering series (posted in the incident thread).
CHART_KIND = "incident.chart"
#: ``Message.kind`` of an in-place rewrite: ``thread_of`` names the message to rewrite.
UPDATE_KIND = "message.update"
#: A field holding machine-readable JSON for renderers (routing labels, series, approval state).
#: ``Message`` has no free-form slot, and fields starting with ``_`` are never shown to people.
META_FIELD = "_meta"


def meta_of(message: Message) -> dict[str, Any]:
    """The message's machine-readable metadata ({} when it has none or it is unreadable)."""
    raw = message.fields.get(META_FIELD)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def with_meta(message: Message, meta: Mapping[str, Any]) -> Message:
    """A copy of ``message`` with ``meta`` merged into its metadata (redacted like every field)."""
    merged = {**meta_of(message), **meta}
    text = redact(json.dumps(merged, sort_keys=True, separators=(",", ":"), default=str))
    return message.model_copy(update={"fields": {**message.fields, META_FIELD: text}})


def visible_fields(message: Message) -> dict[str, str]:
    """The fields meant for people (metadata fields left out)."""
    return {k: v for k, v in message.fields.items() if not k.startswith("_")}


def is_update(message: Message) -> bool:
    return message.kind == UPDATE_KIND


def root_message_id(incident_id: str) -> str:
    """Id of an incident's opening message: the thread every follow-up joins."""
    return f"msg:incident:{incident_id}"


def message_id(event: Event) -> str:
    """Deterministic message id for an event (its key, else its seq, else a content hash)."""
    if event.type is EventType.INCIDENT_OPENED and event.incident_id:
        return root_message_id(event.incident_id)
    if event.key:
        return f"msg:{event.key}"
    if event.seq is not None:
        return f"msg:seq:{event.seq}"
    body = [event.ts, event.type.value, event.incident_id, event.run_id, event.payload]
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    return f"msg:h:{digest[:16]}"


def action_id(verb: str, run_id: str, step: int | str) -> str:
    """Id of an approval button; carries the run and step so a click maps back to its gate."""
    return f"{verb}:{run_id}:{step}"


# -- formatting helpers ------------------------------------------------------------------------
def fmt_number(value: object) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return redact(str(value))
    x = float(value)
    if x != x:  # NaN
        return "n/a"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}".rstrip("0").rstrip(".")
    return f"{x:.3g}"


def fmt_duration(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return str(seconds)
    s = round(float(seconds))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        m, r = divmod(s, 60)
        return f"{m}m" if r == 0 else f"{m}m{r}s"
    h, r = divmod(s, 3600)
    return f"{h}h" if r < 60 else f"{h}h{r // 60}m"


def fmt_time(ts: object) -> str:
    if not isinstance(ts, int | float):
        return str(ts)
    return datetime.fromtimestamp(float(ts), tz=UTC).strftime("%H:%M:%S UTC")


def describe_scope(scope: object) -> str:
    if isinstance(scope, Mapping) and scope:
        return scope_key({str(k): str(v) for k, v in scope.items()})
    return "all traffic"


def describe_action(action: object) -> str:
    """``block_key(key=team-a-1)`` for a GatewayAction dump, the text itself for a string."""
    if isinstance(action, Mapping):
        params = action.get("params")
        args = ""
        if isinstance(params, Mapping):
            args = ", ".join(f"{k}={v}" for k, v in safe_params(params).items())
        return f"{action.get('type', 'action')}({args})"
    return redact(str(action)) if action is not None else "action"


def evidence_fields(evidence: object) -> dict[str, str]:
    """Observed vs expected over a window: the figures a human needs to check the claim."""
    if not isinstance(evidence, Mapping):
        return {}
    out: dict[str, str] = {}
    metric = evidence.get("metric")
    if metric:
        out["Metric"] = str(metric)
    if "observed" in evidence:
        out["Observed"] = fmt_number(evidence["observed"])
    if "expected" in evidence:
        out["Expected"] = fmt_number(evidence["expected"])
    if "window_s" in evidence:
        out["Window"] = fmt_duration(evidence["window_s"])
    if evidence.get("volume"):
        out["Requests"] = fmt_number(evidence["volume"])
    return out


# -- builders ----------------------------------------------------------------------------------
def _msg(
    event: Event,
    title: str,
    *,
    text: str = "",
    fields: Mapping[str, str] | None = None,
    severity: Severity = Severity.INFO,
    actions: tuple[dict[str, str], ...] = (),
) -> Message:
    root = event.type is EventType.INCIDENT_OPENED
    thread_of = root_message_id(event.incident_id) if event.incident_id and not root else None
    return Message(
        id=message_id(event),
        incident_id=event.incident_id,
        ts=event.ts,
        kind=event.type.value,
        severity=severity,
        title=redact(title),
        text=redact(text),
        fields={k: redact(v) for k, v in (fields or {}).items()},
        thread_of=thread_of,
        actions=actions,
    )


def _severity(value: object, default: Severity = Severity.WARNING) -> Severity:
    try:
        return Severity(str(value))
    except ValueError:
        return default


def _opened(event: Event, lookup: AlertLookup | None) -> Message:
    p = event.payload
    kinds = [str(k) for k in p.get("kinds", [])] or ["anomaly"]
    scope = describe_scope(p.get("scope"))
    severity = _severity(p.get("severity"))
    root_fp = p.get("root_cause")
    root = lookup(str(root_fp)) if lookup is not None and root_fp else None
    fields = {"Severity": severity.value.upper(), "Scope": scope}
    if root is not None:
        fields["Root cause"] = f"{root.get('kind', '?')} on {describe_scope(root.get('scope'))}"
        if root.get("detector"):
            fields["Detector"] = str(root["detector"])
    elif root_fp:
        fields["Root cause"] = f"alert {root_fp}"
    evidence = p.get("evidence") or (root.get("evidence") if root is not None else None)
    fields.update(evidence_fields(evidence))
    alerts = p.get("alerts") or []
    if len(alerts) > 1:
        fields["Alerts"] = str(len(alerts))
    text = ""
    if isinstance(evidence, Mapping) and evidence.get("detail"):
        text = str(evidence["detail"])
    # The correlator's title names the root cause; ours is the fallback for a bare payload.
    subject = str(p.get("title") or f"{', '.join(kinds)} on {scope}")
    title = f"incident opened: {subject}"
    return _msg(event, title, text=text, fields=fields, severity=severity)


def _approval_requested(event: Event) -> Message:
    p = event.payload
    step = p.get("step", 0)
    run_id = event.run_id or str(p.get("run_id", "?"))
    fields = {"Run": run_id, "Step": str(step)}
    approvers = p.get("approvers")
    if approvers:
        names = approvers if isinstance(approvers, list) else [approvers]
        fields["Approvers"] = ", ".join(str(a) for a in names)
    if p.get("expires_at") is not None:
        fields["Expires"] = fmt_time(p["expires_at"])
    text = str(p.get("preview") or "")
    if p.get("action") is not None:
        fields["Action"] = describe_action(p["action"])
    actions = tuple(
        {
            "id": action_id(verb, run_id, step),
            "action_id": verb,
            "label": verb.capitalize(),
            "style": "primary" if verb == APPROVE else "danger",
            "run_id": run_id,
            "step": str(step),
        }
        for verb in (APPROVE, DENY)
    )
    title = f"approval needed: step {step} of run {run_id}"
    return _msg(event, title, text=text, fields=fields, severity=Severity.WARNING, actions=actions)


def _step(event: Event) -> str:
    return str(event.payload.get("step", "?"))


def _outcome_text(outcome: object) -> tuple[str, dict[str, str]]:
    # Only ``detail`` and ``status`` are shown: ``response`` is the gateway's raw body.
    if not isinstance(outcome, Mapping):
        return (str(outcome) if outcome is not None else "", {})
    fields = {}
    if outcome.get("status") is not None:
        fields["Status"] = str(outcome["status"])
    return str(outcome.get("detail") or ""), fields


def _follow_up(event: Event) -> Message | None:
    p = event.payload
    t = event.type
    if t is EventType.INCIDENT_SEVERITY:
        sev = _severity(p.get("severity"))
        return _msg(
            event,
            f"severity changed to {sev.value.upper()}",
            text=str(p.get("reason", "")),
            severity=sev,
        )
    if t is EventType.INCIDENT_ACKNOWLEDGED:
        return _msg(event, f"acknowledged by {p.get('by', '?')}", text=str(p.get("reason", "")))
    if t is EventType.ALERT_GROUPED:
        title = f"alert joined: {p.get('kind', '?')} on {describe_scope(p.get('scope'))}"
        text = str(p.get("reason", ""))
        if p.get("root_cause"):
            text = f"{text}\nnew root cause: {p.get('title') or p['root_cause']}".strip()
        return _msg(event, title, text=text)
    if t is EventType.PLAYBOOK_STARTED:
        title = f"playbook {p.get('playbook', '?')} started ({p.get('mode', 'approve')} mode)"
        return _msg(event, title, fields={"Run": event.run_id or "?"})
    if t is EventType.PLAYBOOK_FINISHED:
        state = str(p.get("state", "?"))
        bad = state in ("failed", "rolled_back", "denied")
        return _msg(
            event,
            f"playbook finished: {state}",
            fields={"Run": event.run_id or "?"},
            severity=Severity.WARNING if bad else Severity.INFO,
        )
    if t is EventType.APPROVAL_REQUESTED:
        return _approval_requested(event)
    if t in (EventType.APPROVAL_GRANTED, EventType.APPROVAL_DENIED):
        verb = "granted" if t is EventType.APPROVAL_GRANTED else "denied"
        return _msg(
            event,
            f"approval {verb} by {p.get('by', '?')} (step {_step(event)})",
            text=str(p.get("reason", "")),
        )
    if t is EventType.APPROVAL_EXPIRED:
        if p.get("outcome") == "escalate" and p.get("escalated_to"):
            who = ", ".join(str(a) for a in p["escalated_to"])
            title = f"approval not given in time (step {_step(event)}): escalated to {who}"
            until = p.get("expires_at")
            text = f"they may decide until {fmt_time(float(until))}" if until else ""
            return _msg(event, title, text=text, severity=Severity.WARNING)
        title = f"approval expired (step {_step(event)}): {p.get('outcome', 'not applied')}"
        return _msg(event, title, severity=Severity.WARNING)
    if t is EventType.ACTION_INTENDED:
        return _msg(
            event,
            f"applying step {_step(event)}: {describe_action(p.get('action'))}",
            text=str(p.get("preview", "")),
        )
    if t is EventType.ACTION_APPLIED:
        detail, fields = _outcome_text(p.get("outcome"))
        return _msg(event, f"applied step {_step(event)}", text=detail, fields=fields)
    if t is EventType.ACTION_FAILED:
        fields = {"Retryable": "yes" if p.get("retryable") else "no"}
        return _msg(
            event,
            f"action failed at step {_step(event)}",
            text=str(p.get("error", "")),
            fields=fields,
            severity=Severity.WARNING,
        )
    if t is EventType.ACTION_ROLLED_BACK:
        detail, fields = _outcome_text(p.get("outcome"))
        title = f"rolled back step {_step(event)}: {describe_action(p.get('action'))}"
        return _msg(event, title, text=detail, fields=fields, severity=Severity.WARNING)
    if t in (EventType.VERIFICATION_PASSED, EventType.VERIFICATION_FAILED):
        ok = t is EventType.VERIFICATION_PASSED
        return _msg(
            event,
            f"verification {'passed' if ok else 'failed'} (step {_step(event)})",
            text=str(p.get("detail", "")),
            severity=Severity.INFO if ok else Severity.WARNING,
        )
    if t is EventType.INCIDENT_MITIGATED:
        return _msg(
            event,
            f"mitigated by {describe_action(p.get('action'))}",
            fields={"Run": str(p.get("run_id") or event.run_id or "?")},
        )
    if t is EventType.INCIDENT_REOPENED:
        return _msg(
            event, "incident reopened", text=str(p.get("reason", "")), severity=Severity.WARNING
        )
    if t is EventType.INCIDENT_RESOLVED:
        return _msg(event, "incident resolved", text=str(p.get("reason", "")))
    return None


def build_message(event: Event, *, alert_lookup: AlertLookup | None = None) -> Message | None:
    """The message an event deserves, or None (alert churn, notifications, reports)."""
    if event.type is EventType.INCIDENT_OPENED:
        return _opened(event, alert_lookup)
    return _follow_up(event)
