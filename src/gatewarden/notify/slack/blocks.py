"""Block Kit for gatewarden messages: the incident root, approval gates, thread replies.

Pure functions of a :class:`~gatewarden.models.Message` and a few notifier options. Every text is
escaped for mrkdwn and cut to Block Kit's limits (https://api.slack.com/reference/block-kit), so a
long payload degrades to a truncated message instead of an ``invalid_blocks`` refusal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gatewarden.models import Message, Severity
from gatewarden.notify.messages import APPROVE, DENY, fmt_duration, meta_of, visible_fields

HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
FIELDS_PER_SECTION = 10
BUTTON_TEXT_MAX = 75
VALUE_MAX = 2000
ID_MAX = 255
BLOCKS_MAX = 50

REASON = "reason"
SNOOZE = "snooze"

_EMOJI = {
    Severity.CRITICAL: ":rotating_light:",
    Severity.WARNING: ":warning:",
    Severity.INFO: ":information_source:",
}
_STATE_EMOJI = {
    "approved": ":white_check_mark:",
    "denied": ":no_entry:",
    "expired": ":hourglass:",
    "closed": ":heavy_minus_sign:",
}
#: Fields of the root's "key figures" section; the rest go to its summary section.
_FIGURES = (
    "Metric",
    "Observed",
    "Expected",
    "Window",
    "Requests",
    "Failed requests",
    "Spend",
    "Keys affected",
    "Since",
)
_ROOT_PROSE = ("Remediation", "Current step", "Report")
_LABELS = {"Expected": "Baseline"}
_USER = re.compile(r"^[UW][A-Z0-9]+$")
_GROUP = re.compile(r"^S[A-Z0-9]{6,}$")


@dataclass(frozen=True)
class RenderOptions:
    """What the notifier adds around a message: buttons only when interactivity is served."""

    interactive: bool = True
    snooze_s: float = 0.0
    reports_url: str | None = None


def esc(text: str) -> str:
    """Escape mrkdwn control characters (Slack's three, nothing else)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mention(who: str) -> str:
    """``<@U123>`` for a Slack user id, ``<!subteam^S123>`` for a user group, else escaped."""
    if _USER.match(who):
        return f"<@{who}>"
    if _GROUP.match(who):
        return f"<!subteam^{who}>"
    return esc(who)


def fallback_text(message: Message) -> str:
    """Plain text for notifications and clients that do not render blocks."""
    return cut(f"{message.severity.value.upper()} {message.title}", SECTION_MAX)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": cut(text, SECTION_MAX)}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": cut(text, SECTION_MAX)}]}


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": cut(text, limit), "emoji": True}


def field_sections(fields: Mapping[str, str]) -> list[dict[str, Any]]:
    """``*Name*\\nvalue`` fields, at most ten per section (more become more sections)."""
    items = [
        {"type": "mrkdwn", "text": cut(f"*{esc(_LABELS.get(k, k))}*\n{esc(v)}", FIELD_MAX)}
        for k, v in fields.items()
    ]
    return [
        {"type": "section", "fields": items[i : i + FIELDS_PER_SECTION]}
        for i in range(0, len(items), FIELDS_PER_SECTION)
    ]


def button(
    action_id: str,
    label: str,
    value: Mapping[str, Any],
    *,
    style: str | None = None,
    confirm: str | None = None,
) -> dict[str, Any]:
    raw = json.dumps(dict(value), separators=(",", ":"))
    if len(raw) > VALUE_MAX:
        raise ValueError(f"button value of {len(raw)} chars exceeds Slack's {VALUE_MAX}")
    out: dict[str, Any] = {
        "type": "button",
        "action_id": cut(action_id, ID_MAX),
        "text": _plain(label, BUTTON_TEXT_MAX),
        "value": raw,
    }
    if style in ("primary", "danger"):
        out["style"] = style
    if confirm:
        out["confirm"] = {
            "title": _plain("Are you sure?", 100),
            "text": {"type": "mrkdwn", "text": cut(confirm, 300)},
            "confirm": _plain(label, 30),
            "deny": _plain("Cancel", 30),
        }
    return out


def _stamp(message: Message) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(message.ts, tz=UTC).strftime("%H:%M:%S UTC")
    kind = str(meta_of(message).get("target_kind") or message.kind)
    return _context(esc(f"gatewarden · {message.incident_id or 'no incident'} · {kind} · {stamp}"))


def _finish(blocks: list[dict[str, Any]], message: Message) -> list[dict[str, Any]]:
    blocks = blocks[: BLOCKS_MAX - 1]
    blocks.append(_stamp(message))
    return blocks


# -- layouts -------------------------------------------------------------------------------------
def build_blocks(
    message: Message, *, in_thread: bool = False, options: RenderOptions | None = None
) -> list[dict[str, Any]]:
    """Block Kit for one message, by its layout (incident root, approval gate, plain)."""
    opts = options or RenderOptions()
    layout = meta_of(message).get("layout")
    if layout == "incident" and not in_thread:
        return incident_blocks(message, opts)
    if layout == "approval":
        return approval_blocks(message, opts)
    return plain_blocks(message, in_thread=in_thread, options=opts)


def _title_block(message: Message, in_thread: bool) -> dict[str, Any]:
    emoji = _EMOJI.get(message.severity, "")
    if in_thread:
        return _section(f"{emoji} *{esc(message.title)}*")
    head = f"{emoji} {message.severity.value.upper()} {message.title}"
    return {"type": "header", "text": _plain(head, HEADER_MAX)}


def plain_blocks(
    message: Message, *, in_thread: bool = False, options: RenderOptions | None = None
) -> list[dict[str, Any]]:
    """Title (header, or a bold line in a thread), text, fields, buttons."""
    blocks = [_title_block(message, in_thread)]
    if message.text.strip():
        blocks.append(_section(esc(message.text.strip())))
    fields = visible_fields(message)
    if "Path" in fields and options is not None and options.reports_url:
        link = report_link(fields["Path"], options.reports_url)
        blocks.append(_section(f"*Report:* {link}"))
    blocks.extend(field_sections(fields))
    if message.actions:
        blocks.append(_generic_actions(message.actions))
    return _finish(blocks, message)


def report_link(path: str, base_url: str) -> str:
    name = path.rsplit("/", 1)[-1]
    url = base_url.rstrip("/") + "/" + name
    return f"<{url}|{esc(name)}>"


def _generic_actions(actions: Iterable[Mapping[str, str]]) -> dict[str, Any]:
    elements = []
    items = list(actions)[:25]
    for action in items:
        value = {k: v for k, v in action.items() if k not in ("id", "action_id", "label", "style")}
        elements.append(
            button(
                action.get("action_id", action.get("id", "action")),
                action.get("label", "?"),
                value,
                style=action.get("style"),
            )
        )
    first = items[0] if items else {}
    block_id = cut(f"approval:{first.get('run_id', '')}:{first.get('step', '')}", ID_MAX)
    return {"type": "actions", "block_id": block_id, "elements": elements}


def incident_blocks(message: Message, options: RenderOptions) -> list[dict[str, Any]]:
    """The root: header, cause and symptoms, summary, key figures, remediation, snooze."""
    meta = meta_of(message)
    blocks = [_title_block(message, in_thread=False)]
    if message.text.strip():
        blocks.append(_section(esc(message.text.strip())))
    fields = visible_fields(message)
    summary = {k: v for k, v in fields.items() if k not in _FIGURES and k not in _ROOT_PROSE}
    figures = {k: fields[k] for k in _FIGURES if k in fields}
    blocks.extend(field_sections(summary))
    if figures:
        blocks.append(_section("*Key figures*"))
        blocks.extend(field_sections(figures))
    prose = []
    if "Remediation" in fields:
        prose.append(f"*Remediation:* {esc(fields['Remediation'])}")
    if "Current step" in fields:
        prose.append(f"*Current step:* {esc(fields['Current step'])}")
    if "Report" in fields:
        path = fields["Report"]
        shown = report_link(path, options.reports_url) if options.reports_url else esc(path)
        prose.append(f"*Report:* {shown}")
    if prose:
        blocks.append(_section("\n".join(prose)))
    resolved = meta.get("status") == "resolved"
    if options.interactive and options.snooze_s > 0 and not resolved and message.incident_id:
        value = {"incident_id": message.incident_id, "duration_s": int(options.snooze_s)}
        label = f"Snooze {fmt_duration(options.snooze_s)}"
        warn = "Silences new alerts on this incident's scope and pages nobody for them until then."
        snooze = button(SNOOZE, label, value, confirm=warn)
        blocks.append({"type": "actions", "block_id": "incident", "elements": [snooze]})
    return _finish(blocks, message)


def approval_blocks(message: Message, options: RenderOptions) -> list[dict[str, Any]]:
    """An approval gate: what it would do, who may decide, the quorum, then buttons or outcome."""
    meta = meta_of(message)
    run_id, step = str(meta.get("run_id", "")), str(meta.get("step", ""))
    blocks = [_title_block(message, in_thread=True)]
    if message.text.strip():
        blocks.append(_section(esc(message.text.strip())))
    fields = visible_fields(message)
    fields.pop("Outcome", None)
    approvers = [str(a) for a in meta.get("approvers") or []]
    items = [
        {"type": "mrkdwn", "text": cut(f"*{esc(k)}*\n{esc(v)}", FIELD_MAX)}
        for k, v in fields.items()
        if k != "Approvers"
    ]
    if approvers:
        who = ", ".join(mention(a) for a in approvers)
        items.insert(0, {"type": "mrkdwn", "text": cut(f"*Approvers*\n{who}", FIELD_MAX)})
    for i in range(0, len(items), FIELDS_PER_SECTION):
        blocks.append({"type": "section", "fields": items[i : i + FIELDS_PER_SECTION]})
    state = str(meta.get("state", "pending"))
    if state == "pending" and options.interactive:
        value = {"run_id": run_id, "step": step}
        what = f"step {step} of run {run_id}"
        elements = [
            button(APPROVE, "Approve", value, style="primary", confirm=f"Approve {what}?"),
            button(DENY, "Deny", value, style="danger", confirm=f"Deny {what}?"),
            button(REASON, "Decide with a reason…", value),
        ]
        block_id = cut(f"approval:{run_id}:{step}", ID_MAX)
        blocks.append({"type": "actions", "block_id": block_id, "elements": elements})
    elif state == "pending":
        blocks.append(
            _context(esc(f"Decide from a shell: gatewarden approve|deny {run_id} --step {step}"))
        )
    else:
        emoji = _STATE_EMOJI.get(state, "")
        granted = [str(g) for g in meta.get("granted") or []]
        outcome = str(meta.get("outcome") or state)
        if state == "approved" and granted:
            outcome = "approved by " + ", ".join(mention(g) for g in granted)
        else:
            outcome = esc(outcome)
        blocks.append(_section(f"{emoji} *{outcome}* · buttons disabled"))
    return _finish(blocks, message)
