"""Helpers for the Slack tests: requests signed exactly as Slack signs them, payload builders,
a series source fed from real aggregation frames, and a hand-made approval gate."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import pandas as pd

from gatewarden.aggregate import SeriesHistory
from gatewarden.clock import VirtualClock
from gatewarden.models import Event, EventType
from gatewarden.protocols import Tick
from gatewarden.store.sqlite import SQLiteStore
from tests.notify.factory import INCIDENT, RUN, T0
from tests.notify.slack_standin import CHANNEL_ID

TOKEN = "xoxb-PLANTED-SECRET-0123456789"
SIGNING_SECRET = "8f14e45fceea167a5a36dedd4bea2543-PLANTED"
TEAM = "T0GATEWARDEN"


def tick(clock: VirtualClock, events: list[Event] | None = None) -> Tick:
    return Tick(now=clock.now(), start=clock.now(), records=pd.DataFrame(), events=events or [])


# -- signing ---------------------------------------------------------------------------------
def form_body(payload: Mapping[str, Any]) -> bytes:
    """How Slack sends interactions: ``application/x-www-form-urlencoded`` with ``payload``."""
    return urlencode({"payload": json.dumps(payload)}).encode()


def signed_headers(body: bytes, ts: int, secret: str = SIGNING_SECRET) -> dict[str, str]:
    """``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}`` under the signing secret."""
    base = b"v0:" + str(ts).encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": f"v0={digest}",
    }


def block_action(
    action_id: str,
    value: Mapping[str, Any],
    *,
    user: str = "U1",
    team: str = TEAM,
    action_ts: str = "1700000001.000100",
    trigger_id: str = "1337.42.abcdef",
) -> dict[str, Any]:
    """A ``block_actions`` payload shaped like Slack's (fields we do not read included)."""
    return {
        "type": "block_actions",
        "team": {"id": team, "domain": "gatewarden-test"},
        "user": {"id": user, "username": user.lower(), "team_id": team},
        "api_app_id": "A0GATEWARDEN",
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": "1700000002.000002",
            "channel_id": CHANNEL_ID,
            "is_ephemeral": False,
        },
        "trigger_id": trigger_id,
        "channel": {"id": CHANNEL_ID, "name": "ops"},
        "response_url": "https://hooks.slack.com/actions/T0GATEWARDEN/1/abc",
        "actions": [
            {
                "action_id": action_id,
                "block_id": "approval",
                "text": {"type": "plain_text", "text": action_id, "emoji": True},
                "value": json.dumps(value, separators=(",", ":")),
                "type": "button",
                "action_ts": action_ts,
            }
        ],
    }


def view_submission(
    view: Mapping[str, Any], decision: str, reason: str, *, user: str = "U1"
) -> dict[str, Any]:
    """The ``view_submission`` Slack sends when the reason modal is submitted."""
    state = {
        "decision": {"decision": {"type": "radio_buttons", "selected_option": {"value": decision}}},
        "reason": {"reason": {"type": "plain_text_input", "value": reason}},
    }
    return {
        "type": "view_submission",
        "team": {"id": TEAM},
        "user": {"id": user, "team_id": TEAM},
        "view": {**view, "id": "V0001", "state": {"values": state}},
    }


# -- data --------------------------------------------------------------------------------------
class FrameSeries:
    """``SeriesHistory`` fed with real provider-level frames: a healthy baseline, then errors."""

    def __init__(self, *, ticks: int = 40, bad_from: int = 30) -> None:
        self.history = SeriesHistory()
        for i in range(ticks):
            errors = 90 if i >= bad_from else 2
            frame = pd.DataFrame(
                {
                    "provider": ["openai"],
                    "requests": [300],
                    "errors": [errors],
                    "error_rate": [errors / 300],
                    "cost": [1.5],
                }
            )
            self.history.push(T0 - (ticks - 1 - i) * 15, {"provider": frame})

    def values(
        self, metric: str, where: Mapping[str, str], level: str | None = None, *, ticks: int
    ) -> Sequence[float | None]:
        return self.history.values(metric, where, level, ticks=ticks)


def approval_gate(
    store: SQLiteStore,
    *,
    approvers: list[str],
    quorum: int = 1,
    run_id: str = RUN,
    incident_id: str = INCIDENT,
    t0: float = T0,
) -> list[Event]:
    """An opened incident and a run waiting on step 0, as the engine would have written them."""
    return store.append(
        [
            Event(
                ts=t0,
                type=EventType.INCIDENT_OPENED,
                incident_id=incident_id,
                key=f"open:{incident_id}",
                payload={
                    "kinds": ["error_rate"],
                    "scope": {"provider": "openai"},
                    "severity": "critical",
                    "title": "error_rate on provider=openai",
                    "root_cause": None,
                    "alerts": [],
                },
            ),
            Event(
                ts=t0 + 15,
                type=EventType.PLAYBOOK_STARTED,
                incident_id=incident_id,
                run_id=run_id,
                key=f"run:{run_id}",
                payload={"playbook": "provider-failover", "mode": "approve"},
            ),
            Event(
                ts=t0 + 15,
                type=EventType.APPROVAL_REQUESTED,
                incident_id=incident_id,
                run_id=run_id,
                key=f"approval:{run_id}:0",
                payload={
                    "step": 0,
                    "approvers": approvers,
                    "quorum": quorum,
                    "expires_at": t0 + 615,
                    "on_timeout": "deny",
                },
            ),
        ]
    )
