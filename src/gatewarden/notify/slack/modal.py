"""The "decide with a reason" modal (``views.open``) and reading its submission back."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gatewarden.models import ApprovalDecision

CALLBACK_ID = "gatewarden_decision"
DECISION = "decision"
REASON = "reason"
REASON_MAX = 500
_METADATA_MAX = 3000


@dataclass(frozen=True)
class Submission:
    run_id: str
    step: int
    decision: ApprovalDecision
    reason: str
    channel: str | None


def reason_modal(run_id: str, step: int, *, channel: str | None) -> dict[str, Any]:
    metadata = json.dumps({"run_id": run_id, "step": step, "channel": channel})
    if len(metadata) > _METADATA_MAX:
        raise ValueError("run id too long for a modal's private_metadata")

    def text(value: str) -> dict[str, Any]:
        return {"type": "plain_text", "text": value}

    options = [
        {"text": text("Approve"), "value": ApprovalDecision.GRANTED.value},
        {"text": text("Deny"), "value": ApprovalDecision.DENIED.value},
    ]
    return {
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "title": text("Approval decision"),
        "submit": text("Record"),
        "close": text("Cancel"),
        "private_metadata": metadata,
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"Step {step} of run `{run_id}`"[:3000]},
            },
            {
                "type": "input",
                "block_id": DECISION,
                "label": text("Decision"),
                "element": {"type": "radio_buttons", "action_id": DECISION, "options": options},
            },
            {
                "type": "input",
                "block_id": REASON,
                "label": text("Reason"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON,
                    "multiline": True,
                    "max_length": REASON_MAX,
                },
            },
        ],
    }


def parse_submission(view: Any) -> Submission:
    """The decision in a ``view_submission`` payload's view; ValueError if it is not ours."""
    if not isinstance(view, dict) or view.get("callback_id") != CALLBACK_ID:
        raise ValueError("not a gatewarden decision view")
    try:
        meta = json.loads(str(view.get("private_metadata") or ""))
        values = view["state"]["values"]
        choice = values[DECISION][DECISION]["selected_option"]["value"]
        reason = values[REASON][REASON].get("value") or ""
        run_id, step = meta["run_id"], meta["step"]
    except (ValueError, RecursionError, KeyError, TypeError, AttributeError) as exc:
        # ValueError also covers int literals past 4300 digits; RecursionError, metadata nested
        # deeper than the interpreter allows.
        raise ValueError(f"malformed decision view: {type(exc).__name__}") from None
    if not isinstance(run_id, str) or not isinstance(step, int):
        raise ValueError("malformed decision view: run or step")
    channel = meta.get("channel")
    return Submission(
        run_id=run_id,
        step=step,
        decision=ApprovalDecision(choice),
        reason=str(reason)[:REASON_MAX],
        channel=str(channel) if channel else None,
    )
