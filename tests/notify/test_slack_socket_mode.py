"""Socket Mode on its own: slack-sdk's built-in client against the Slack stand-in
(``apps.connections.open``) and a local WebSocket server playing Slack's side."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gatewarden.clock import VirtualClock
from gatewarden.models import EventType
from gatewarden.notify.config import NotifyConfig, SlackConfig, build_interactions
from gatewarden.notify.slack import SocketModeListener
from gatewarden.store.sqlite import SQLiteStore
from tests.notify.factory import RUN, T0
from tests.notify.slack_standin import CHANNEL_ID, SlackStandin
from tests.notify.slackkit import TEAM, TOKEN, approval_gate, block_action
from tests.notify.socket_standin import SocketModeStandin

APP_TOKEN = "xapp-1-A0GATEWARDEN-PLANTED-9876543210"
APPROVE = {"run_id": RUN, "step": "0"}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[SlackStandin, SocketModeStandin, SQLiteStore]]:
    with SocketModeStandin() as ws, SlackStandin(TOKEN, socket_url=ws.url) as slack:
        store = SQLiteStore(str(tmp_path / "events.db"))
        approval_gate(store, approvers=["U1"])
        yield slack, ws, store


def _listener(slack: SlackStandin, store: SQLiteStore) -> SocketModeListener:
    cfg = NotifyConfig(
        slack=SlackConfig(
            channel=CHANNEL_ID, base_url=slack.base_url, team_id=TEAM, socket_mode=True
        )
    )
    clock = VirtualClock(T0 + 100)
    handler = build_interactions(
        cfg, {"GATEWARDEN_SLACK_TOKEN": TOKEN}, store, clock, wall_clock=clock
    )
    assert handler is not None
    return SocketModeListener(handler, APP_TOKEN, base_url=slack.base_url, first_retry_s=0.05)


def test_connects_once_slack_accepts_the_app_token_and_acks_every_envelope(
    world: tuple[SlackStandin, SocketModeStandin, SQLiteStore], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    slack, ws, store = world
    listener = _listener(slack, store)
    try:
        listener.start()  # Slack refuses the app token (not installed yet): retried, backing off
        deadline = time.monotonic() + 10
        while listener.connect_failures < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert not listener.connected and not ws.wait_connected(0.1)
        slack.app_token = APP_TOKEN
        assert listener.wait_connected(15) and ws.wait_connected(15)
        assert listener.connected and listener.stats()["slack_socket_connected"] == 1.0

        elsewhere = ws.send_envelope(
            "interactive", block_action("approve", APPROVE, user="U1", team="T0ELSEWHERE")
        )
        assert ws.next_ack() == {"envelope_id": elsewhere}  # acknowledged, refused
        assert store.events(types=[EventType.APPROVAL_GRANTED.value]) == []
        ours = ws.send_envelope("interactive", block_action("approve", APPROVE, user="U1"))
        assert ws.next_ack() == {"envelope_id": ours}
        (grant,) = store.events(types=[EventType.APPROVAL_GRANTED.value])
        assert grant.payload["by"] == "U1" and grant.ts == T0 + 100
        assert listener.envelopes == {"refused": 1, "acknowledged": 1}
    finally:
        listener.close()
    assert not listener.connected
    refused = [c for c in slack.calls if c.method == "apps.connections.open"]
    assert [c.response["ok"] for c in refused][-1] is True
    assert all(c.headers["Authorization"] == f"Bearer {APP_TOKEN}" for c in refused)
    outputs = [caplog.text, repr(listener), json.dumps(listener.stats())]
    assert all(APP_TOKEN not in text and TOKEN not in text for text in outputs)


def test_an_empty_app_token_is_refused_at_once(
    world: tuple[SlackStandin, SocketModeStandin, SQLiteStore],
) -> None:
    slack, _, store = world
    handler = _listener(slack, store)._interactions
    with pytest.raises(ValueError, match="app-level token is empty"):
        SocketModeListener(handler, "  ", base_url=slack.base_url)
