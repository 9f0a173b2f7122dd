"""Slack against the assembled daemon: ``daemon.build`` on the simulator (a scripted OpenAI
outage, a stepped simulated clock), the Slack stand-in as its Web API, the daemon's own web
server for ``POST /slack/interactions`` and a local WebSocket for Socket Mode.

Covers the audit's gaps end to end: a playbook approver given as a Slack user group, resolved
by the daemon's own wiring; signatures checked on the wall clock while the daemon runs simulated
time; Socket Mode envelopes through the same handler; the failover's traffic-share preview.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatewarden.config import WebConfig
from gatewarden.daemon import Daemon
from gatewarden.models import Event, EventType
from gatewarden.notify.slack.modal import reason_modal
from tests.notify.slack_standin import CHANNEL_ID, SlackStandin
from tests.notify.slackkit import (
    SIGNING_SECRET,
    TEAM,
    TOKEN,
    block_action,
    form_body,
    signed_headers,
    view_submission,
)
from tests.notify.socket_standin import SocketModeStandin
from tests.notify.test_slack_incident import texts
from tests.report.harness import Harness, short_outage, start

GROUP = "S0ONCALL01"
APP_TOKEN = "xapp-1-A0GATEWARDEN-PLANTED-0123456789"
ENV = {"GATEWARDEN_SLACK_TOKEN": TOKEN, "GATEWARDEN_SLACK_SIGNING_SECRET": SIGNING_SECRET}


@pytest.fixture
def slack() -> Iterator[SlackStandin]:
    with SlackStandin(TOKEN, usergroups={GROUP: ["U7", "U8"]}, app_token=APP_TOKEN) as standin:
        yield standin


def _daemon(
    tmp_path: Path, slack: SlackStandin, approvers: list[str], *, socket: bool = False
) -> Harness:
    options = ", socket_mode: true" if socket else ""
    notify = (
        f'{{console: true, slack: {{channel: {CHANNEL_ID}, base_url: "{slack.base_url}", '
        f"team_id: {TEAM}{options}}}}}"
    )
    # Socket Mode needs no signing secret: give it only the bot and app-level tokens.
    env = {"GATEWARDEN_SLACK_TOKEN": TOKEN, "GATEWARDEN_SLACK_APP_TOKEN": APP_TOKEN}
    return start(
        tmp_path / "daemon",
        short_outage(start_min=3),
        auto_approve=False,
        approvers=approvers,
        detector_files=["error-rate.yaml"],
        notify=notify,
        env=env if socket else ENV,
    )


def _events(h: Harness, type_: EventType) -> list[Event]:
    return h.assembly.store.events(types=[type_])


def _approval_requested(h: Harness) -> Event:
    h.run_until(lambda: bool(_events(h, EventType.APPROVAL_REQUESTED)), max_ticks=60)
    (request,) = _events(h, EventType.APPROVAL_REQUESTED)
    return request


def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Ephemeral replies are sent after the answer (background work): wait for them."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def _replies(slack: SlackStandin, user: str) -> list[str]:
    return [e["text"] for e in slack.ephemerals if e["user"] == user]


def _click(url: str, run_id: str, user: str, *, action_ts: str, ts: int | None = None) -> Any:
    value = {"run_id": run_id, "step": "0"}
    body = form_body(block_action("approve", value, user=user, team=TEAM, action_ts=action_ts))
    when = int(time.time()) if ts is None else ts  # Slack signs with its (real) time
    return httpx.post(
        f"{url}/slack/interactions", content=body, headers=signed_headers(body, when), timeout=10
    )


def _share(h: Harness, group: str, provider: str, ticks: int = 20) -> int:
    """The preview's figure computed here from the kept frames: requests the provider served
    for the group's model over all requests for the group, over the last ``ticks`` ticks."""
    moved = total = 0.0
    for ago in range(min(ticks, len(h.assembly.history))):
        entry = h.assembly.history.entry(ago)
        assert entry is not None
        served, asked = entry.frames["model"], entry.frames["requested_model"]
        moved += served[(served.provider == provider) & (served.model == group)].requests.sum()
        total += asked[asked.requested_model == group].requests.sum()
    return round(100 * moved / total)


@pytest.mark.parametrize("entry", [GROUP, f"group:{GROUP}"])
def test_a_group_member_s_signed_click_lets_the_playbook_act(
    tmp_path: Path, slack: SlackStandin, entry: str
) -> None:
    h = _daemon(tmp_path, slack, [entry])
    daemon = Daemon(h.assembly, interval_s=1, web=WebConfig(port=0))
    url = daemon.start_web()
    assert url is not None
    try:
        request = _approval_requested(h)
        # The daemon's wiring listed the group when the approval was requested.
        assert request.payload["approvers"] == ["U7", "U8"]
        assert [c.params["usergroup"] for c in slack.ok_calls("usergroups.users.list")] == [GROUP]
        run_id = str(request.run_id)

        refused = _click(url, run_id, "U9", action_ts="1.1")  # not a member
        assert refused.status_code == 200
        _eventually(lambda: bool(_replies(slack, "U9")))
        assert _replies(slack, "U9")[0].startswith("Not allowed: U9 is not an approver")
        # Signed at the daemon's simulated time, a request is stale for the wall clock.
        stale = _click(url, run_id, "U7", action_ts="1.2", ts=int(h.clock.now()))
        assert stale.status_code == 401 and stale.json() == {"error": "stale"}
        h.step()
        assert _events(h, EventType.APPROVAL_GRANTED) == [] and h.admin_calls() == []

        assert _click(url, run_id, "U7", action_ts="1.3").status_code == 200
        (grant,) = _events(h, EventType.APPROVAL_GRANTED)
        assert grant.payload["by"] == "U7" and grant.ts == h.clock.now()  # the daemon's time
        h.run_until(lambda: bool(_events(h, EventType.ACTION_APPLIED)), max_ticks=3)
        assert ("POST", "/model/update") in h.admin_calls()

        # The preview names the share of each moved group's recent traffic, from the frames.
        (intended,) = _events(h, EventType.ACTION_INTENDED)
        preview = str(intended.payload["preview"])
        shares = {"gpt-4o": _share(h, "gpt-4o", "openai")}
        shares["gpt-4o-mini"] = _share(h, "gpt-4o-mini", "openai")
        assert preview == (
            "will move model groups gpt-4o, gpt-4o-mini from openai to azure: "
            f"{shares['gpt-4o']} % of gpt-4o's traffic, "
            f"{shares['gpt-4o-mini']} % of gpt-4o-mini's traffic in the last 5 min"
        )
        assert all(0 < s <= 100 for s in shares.values())
        h.step()  # the notify stage rewrites the root and the gate from the events
        gate = next(p for p in slack.posts() if "approval needed" in p.params["text"])
        assert "approved by <@U7>" in texts(slack.message(gate.response["ts"])["blocks"])
        # the approvers saw the impact before deciding, as of the request (shares move on)
        asked = str(request.payload["preview"])
        assert re.fullmatch(
            r"will move model groups gpt-4o, gpt-4o-mini from openai to azure: "
            r"\d+ % of gpt-4o's traffic, \d+ % of gpt-4o-mini's traffic in the last 5 min",
            asked,
        )
        assert asked in texts(gate.params["blocks"])
        applying = next(p for p in slack.posts() if p.params["text"].startswith("INFO applying"))
        assert preview in texts(applying.params["blocks"])
        assert f"*Remediation:* {preview}" in texts(slack.messages[0]["blocks"])
    finally:
        if daemon.web_server is not None:
            daemon.web_server.stop()
        h.close()


def test_socket_mode_envelopes_go_to_the_same_handler_and_are_acknowledged(
    tmp_path: Path, slack: SlackStandin
) -> None:
    with SocketModeStandin() as ws:
        slack.socket_url = ws.url
        h = _daemon(tmp_path, slack, [GROUP], socket=True)
        try:
            parts = h.assembly.slack
            assert parts is not None and parts.socket_mode is not None
            assert parts.http_routes() == []  # no public endpoint, no signing secret
            parts.start()
            assert parts.socket_mode.wait_connected(15) and ws.wait_connected(15)
            (opened,) = slack.ok_calls("apps.connections.open")
            assert opened.headers["Authorization"] == f"Bearer {APP_TOKEN}"
            assert ws.handshakes[0]["request-line"].startswith("GET /link/?ticket=standin-ticket")
            run_id = str(_approval_requested(h).run_id)
            value = {"run_id": run_id, "step": "0"}

            ignored = ws.send_envelope("events_api", {"event": {"type": "app_mention"}})
            assert ws.next_ack() == {"envelope_id": ignored}
            intruder = ws.send_envelope(
                "interactive", block_action("approve", value, user="U9", team=TEAM)
            )
            assert ws.next_ack() == {"envelope_id": intruder}
            _eventually(lambda: bool(_replies(slack, "U9")))
            assert _replies(slack, "U9")[0].startswith("Not allowed: U9 is not an approver")
            view = reason_modal(run_id, 0, channel=CHANNEL_ID)
            modal = ws.send_envelope(
                "interactive",
                view_submission(view, "granted", "fail over", user="U9"),
                accepts_response_payload=True,
            )
            answer = ws.next_ack()
            assert answer["envelope_id"] == modal
            assert answer["payload"]["response_action"] == "errors"  # shown in the modal
            assert _events(h, EventType.APPROVAL_GRANTED) == []

            member = ws.send_envelope(
                "interactive", block_action("approve", value, user="U7", team=TEAM)
            )
            assert ws.next_ack() == {"envelope_id": member}
            (grant,) = _events(h, EventType.APPROVAL_GRANTED)
            assert grant.payload["by"] == "U7"
            h.run_until(lambda: bool(_events(h, EventType.ACTION_APPLIED)), max_ticks=3)
            assert ("POST", "/model/update") in h.admin_calls()
            _eventually(lambda: bool(_replies(slack, "U7")))
            assert _replies(slack, "U7")[0].startswith("Recorded: you approved step 0")
            assert ws.errors == []
            assert parts.socket_mode.envelopes == {"ignored": 1, "acknowledged": 3}
        finally:
            h.close()
    assert not re.search(re.escape(APP_TOKEN), h.out.getvalue())
