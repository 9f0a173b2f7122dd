"""``POST /slack/interactions``: signed requests only, approvers only, each decision once."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp

from gatewarden.clock import VirtualClock
from gatewarden.errors import ConfigError
from gatewarden.httpserve import ThreadedServer
from gatewarden.models import Event, EventType
from gatewarden.notify.config import NotifyConfig, SlackConfig, build_interactions
from gatewarden.notify.slack import SlackInteractions, slack_routes
from gatewarden.store.sqlite import SQLiteStore
from gatewarden.web import StatusSnapshot, create_app
from tests.notify.factory import INCIDENT, RUN, T0
from tests.notify.slack_standin import CHANNEL_ID, SlackStandin
from tests.notify.slackkit import (
    SIGNING_SECRET,
    TEAM,
    TOKEN,
    approval_gate,
    block_action,
    form_body,
    signed_headers,
    view_submission,
)

NOW = T0 + 100
GROUP = "S0ONCALL01"
ENV = {"GATEWARDEN_SLACK_TOKEN": TOKEN, "GATEWARDEN_SLACK_SIGNING_SECRET": SIGNING_SECRET}
APPROVE = {"run_id": RUN, "step": "0"}


def _status() -> StatusSnapshot:
    return StatusSnapshot(
        now=NOW,
        tick_seconds=15,
        ticks=1,
        last_tick_at=NOW,
        last_tick_duration_s=0.01,
        records=0,
        malformed=0,
        overruns=0,
        sources=(),
        detector_series=0,
        open_incidents=1,
        outbox_depth=0,
        action_failures=0,
        store_ok=True,
    )


class AppClient:
    """Requests straight into the ASGI app; the answer returns once its background tasks ran
    (the ephemeral replies), so tests need no waiting."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    def post(
        self, url: str, *, content: bytes, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self._app)
            async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:
                return await client.post(url, content=content, headers=headers)

        return asyncio.run(send())


@dataclass
class World:
    slack: SlackStandin
    store: SQLiteStore
    clock: VirtualClock
    handler: SlackInteractions
    client: AppClient

    def post(self, payload: dict[str, Any], *, ts: int | None = None, **kw: Any) -> httpx.Response:
        body = form_body(payload)
        headers = signed_headers(body, int(self.clock.now()) if ts is None else ts, **kw)
        return self.client.post("/slack/interactions", content=body, headers=headers)

    def decisions(self) -> list[Event]:
        types = [EventType.APPROVAL_GRANTED.value, EventType.APPROVAL_DENIED.value]
        return self.store.events(types=types)


def make_world(slack: SlackStandin, store: SQLiteStore, clock: VirtualClock) -> World:
    cfg = NotifyConfig(slack=SlackConfig(channel=CHANNEL_ID, base_url=slack.base_url, team_id=TEAM))
    handler = build_interactions(cfg, ENV, store, clock, wall_clock=clock)
    assert handler is not None
    app = create_app(_status, extra_routes=slack_routes(handler))
    return World(slack, store, clock, handler, AppClient(app))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with SlackStandin(TOKEN, usergroups={GROUP: ["U7", "U8"]}) as slack:
        store = SQLiteStore(str(tmp_path / "events.db"))
        approval_gate(store, approvers=["U1", "U2", GROUP], quorum=2)
        yield make_world(slack, store, VirtualClock(NOW))


def test_a_signed_click_records_the_approver_and_the_time(world: World) -> None:
    response = world.post(block_action("approve", APPROVE, user="U1"))
    assert response.status_code == 200 and response.content == b""
    (grant,) = world.decisions()
    assert grant.type is EventType.APPROVAL_GRANTED
    assert grant.payload == {"step": 0, "by": "U1", "reason": ""}
    assert grant.ts == NOW and grant.run_id == RUN and grant.incident_id == INCIDENT
    (reply,) = world.slack.ephemerals
    assert reply == {
        "channel": CHANNEL_ID,
        "user": "U1",
        "text": f"Recorded: you approved step 0 of {RUN} (1 of 2 approvals).",
    }


def test_deny_is_recorded_too(world: World) -> None:
    world.post(block_action("deny", APPROVE, user="U2"))
    (denial,) = world.decisions()
    assert denial.type is EventType.APPROVAL_DENIED and denial.payload["by"] == "U2"


def test_forged_stale_and_malformed_requests_are_refused(world: World) -> None:
    now = int(NOW)
    click = block_action("approve", APPROVE)
    assert world.post(click, secret="not-the-signing-secret").status_code == 401
    body = form_body(click)
    tampered = body.replace(b"U1", b"U2")  # signed for U1, altered to U2
    headers = signed_headers(body, now)
    forged = world.client.post("/slack/interactions", content=tampered, headers=headers)
    assert forged.status_code == 401
    assert world.post(click, ts=now - 301).status_code == 401  # older than five minutes
    assert world.post(click, ts=now + 301).status_code == 401  # from the future
    bare = world.client.post("/slack/interactions", content=body)
    assert bare.status_code == 401
    junk = {**signed_headers(body, now), "X-Slack-Request-Timestamp": "yesterday"}
    assert world.client.post("/slack/interactions", content=body, headers=junk).status_code == 401
    not_form = b"payload=%7Bnot-json"
    refused = world.client.post(
        "/slack/interactions", content=not_form, headers=signed_headers(not_form, now)
    )
    assert refused.status_code == 400
    assert world.decisions() == [] and world.slack.ephemerals == []
    assert world.handler.verifier.rejections == {"forged": 2, "stale": 2, "malformed": 2}
    assert world.handler.refused == {"malformed": 1}
    assert world.post(click, ts=now - 300).status_code == 200  # the window's edge still counts


def test_a_replayed_request_is_refused_even_after_a_restart(world: World) -> None:
    body = form_body(block_action("deny", APPROVE, user="U2"))
    headers = signed_headers(body, int(NOW))
    first = world.client.post("/slack/interactions", content=body, headers=headers)
    assert first.status_code == 200 and len(world.decisions()) == 1
    replay = world.client.post("/slack/interactions", content=body, headers=headers)
    assert replay.status_code == 401 and replay.json() == {"error": "replayed"}
    world.store.close()
    restarted = make_world(world.slack, SQLiteStore(world.store.path), world.clock)
    again = restarted.client.post("/slack/interactions", content=body, headers=headers)
    assert again.status_code == 401 and again.json() == {"error": "replayed"}
    assert restarted.handler.stats() == {
        "slack_requests_rejected_replayed": 1.0,
        "slack_usergroup_lookups": 0.0,
        "slack_usergroup_lookup_failures": 0.0,
    }
    world.clock.advance(301)  # outside the window the request is stale anyway
    late = restarted.client.post("/slack/interactions", content=body, headers=headers)
    assert late.json() == {"error": "stale"}


def test_only_approvers_may_decide(world: World, caplog: pytest.LogCaptureFixture) -> None:
    world.post(block_action("approve", APPROVE, user="U9"))
    assert world.decisions() == []
    (reply,) = world.slack.ephemerals
    assert reply["user"] == "U9" and reply["text"].startswith("Not allowed: U9 is not an approver")
    assert world.handler.refused == {"not_allowed": 1}
    assert "U9" in caplog.text
    other = world.post(block_action("approve", APPROVE, user="U1", team="T0ELSEWHERE"))
    assert other.status_code == 403 and world.decisions() == []
    unknown = world.post(block_action("approve", {"run_id": "nope", "step": "0"}, user="U1"))
    assert unknown.status_code == 200 and world.decisions() == []


def test_user_group_members_may_decide_and_lookups_are_cached(world: World) -> None:
    world.post(block_action("approve", APPROVE, user="U7", action_ts="1.1"))
    world.post(block_action("approve", APPROVE, user="U9", action_ts="1.2"))  # not a member
    assert [e.payload["by"] for e in world.decisions()] == ["U7"]
    assert len(world.slack.ok_calls("usergroups.users.list")) == 1
    world.clock.advance(301)
    world.post(block_action("approve", APPROVE, user="U8", action_ts="1.3"))
    assert [e.payload["by"] for e in world.decisions()] == ["U7", "U8"]
    assert len(world.slack.ok_calls("usergroups.users.list")) == 2  # the TTL ran out
    world.slack.usergroups[GROUP] = ["U8"]  # U7 leaves the group
    world.post(block_action("deny", APPROVE, user="U7", action_ts="1.4"))
    assert world.slack.ephemerals[-1]["text"].startswith("You already approved")  # cached
    world.clock.advance(301)
    world.post(block_action("deny", APPROVE, user="U7", action_ts="1.5"))
    assert world.slack.ephemerals[-1]["text"].startswith("Not allowed: U7 is not an approver")
    assert len(world.slack.ok_calls("usergroups.users.list")) == 3
    assert len(world.decisions()) == 2


def test_double_clicks_record_once(world: World) -> None:
    first = world.post(block_action("approve", APPROVE, user="U1", action_ts="1.1"))
    second = world.post(block_action("approve", APPROVE, user="U1", action_ts="1.2"))
    changed = world.post(block_action("deny", APPROVE, user="U1", action_ts="1.3"))
    assert [r.status_code for r in (first, second, changed)] == [200, 200, 200]
    (grant,) = world.decisions()
    assert grant.type is EventType.APPROVAL_GRANTED
    texts = [e["text"] for e in world.slack.ephemerals]
    assert texts[1:] == [f"You already approved step 0 of {RUN}; nothing changed."] * 2
    assert world.handler.recorded == {"approved": 1, "repeated": 2}


def test_quorum_of_two_needs_two_people(world: World) -> None:
    world.post(block_action("approve", APPROVE, user="U1"))
    world.post(block_action("approve", APPROVE, user="U2"))
    assert [e.payload["by"] for e in world.decisions()] == ["U1", "U2"]
    assert world.slack.ephemerals[-1]["text"].endswith("(2 of 2 approvals).")


def test_the_reason_modal_opens_and_its_submission_is_recorded(world: World) -> None:
    world.post(block_action("reason", APPROVE, user="U2"))
    (view,) = world.slack.views  # validated by the stand-in like views.open would
    assert world.slack.ok_calls("views.open")[0].params["trigger_id"] == "1337.42.abcdef"
    assert world.decisions() == []
    refused = world.post(view_submission(view, "granted", "why not", user="U9"))
    errors = refused.json()["errors"]["decision"]
    assert refused.json()["response_action"] == "errors" and errors.startswith("Not allowed")
    done = world.post(view_submission(view, "denied", "azure is degraded too", user="U2"))
    assert done.json() == {"response_action": "clear"}
    (denial,) = world.decisions()
    assert denial.payload == {"step": 0, "by": "U2", "reason": "azure is degraded too"}
    assert world.slack.ephemerals[-1]["text"].startswith("Recorded: you denied step 0")


def test_snooze_silences_the_incident_and_acknowledges_it(world: World) -> None:
    world.post(block_action("snooze", {"incident_id": INCIDENT, "duration_s": 99}, user="U5"))
    world.post(block_action("snooze", {"incident_id": INCIDENT}, user="U5", action_ts="2.2"))
    (silence,) = world.store.events(types=[EventType.SILENCE_CREATED.value])
    assert silence.payload["starts_at"] == NOW and silence.payload["ends_at"] == NOW + 3600
    matchers = [f"{m['label']}{m['op']}{m['value']}" for m in silence.payload["matchers"]]
    assert matchers == ["provider=openai", "kind=~(?:error_rate)"]
    assert silence.payload["by"] == "U5"
    (ack,) = world.store.events(types=[EventType.INCIDENT_ACKNOWLEDGED.value])
    assert ack.payload["by"] == "U5" and "until 23:15:00 UTC" in ack.payload["reason"]
    assert world.slack.ephemerals[0]["text"].startswith(f"Snoozed {INCIDENT} until 23:15:00 UTC")
    world.post(block_action("snooze", {"incident_id": "inc-404"}, user="U5", action_ts="2.3"))
    assert world.slack.ephemerals[-1]["text"] == "Cannot snooze: no incident 'inc-404'."


def test_secrets_never_appear_in_any_output(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    responses = [
        world.post(block_action("approve", APPROVE, user="U1")),
        world.post(block_action("approve", APPROVE, user="U9", action_ts="3")),
        world.post(block_action("approve", APPROVE, user="U1"), secret="wrong"),
        world.post(block_action("approve", APPROVE, user="U1"), ts=int(NOW) - 999),
        world.post(block_action("reason", APPROVE, user="U1", action_ts="4")),
    ]
    outputs = [caplog.text, repr(world.handler), str(vars(world.handler))]
    outputs += [r.text for r in responses] + [json.dumps(world.handler.stats())]
    outputs += [json.dumps(e.payload) for e in world.store.events()]
    outputs += [str(world.store.get_state("slack.interactions.seen"))]
    outputs += [json.dumps(world.slack.ephemerals), json.dumps(world.slack.views)]
    for secret in (SIGNING_SECRET, TOKEN):
        assert all(secret not in text for text in outputs)


def test_served_by_the_daemons_web_app_under_uvicorn(world: World) -> None:
    app = create_app(_status, extra_routes=slack_routes(world.handler))
    with ThreadedServer(app, name="slack-test") as server, httpx.Client(base_url=server.url) as c:
        body = form_body(block_action("approve", APPROVE, user="U2"))
        headers = signed_headers(body, int(NOW))
        assert c.post("/slack/interactions", content=body, headers=headers).status_code == 200
        assert c.post("/slack/interactions", content=body, headers=headers).status_code == 401
        assert c.get("/slack/interactions").status_code == 405
        assert c.get("/healthz").status_code == 200
        huge = b"payload=" + b"x" * (300 * 1024)
        big = c.post("/slack/interactions", content=huge, headers=signed_headers(huge, int(NOW)))
        assert big.status_code == 413
    assert [e.payload["by"] for e in world.decisions()] == ["U2"]


def test_a_failed_group_lookup_refuses_and_is_counted(world: World) -> None:
    world.slack.fail_next(1, status=503)
    world.post(block_action("approve", APPROVE, user="U7"))
    assert world.decisions() == []
    assert world.slack.ephemerals[-1]["text"].startswith("Not allowed: U7 is not an approver")
    assert world.handler.stats()["slack_usergroup_lookup_failures"] == 1.0
    world.post(block_action("approve", APPROVE, user="U7", action_ts="2"))  # Slack is back
    assert [e.payload["by"] for e in world.decisions()] == ["U7"]


def test_interactivity_config(tmp_path: Path) -> None:
    store, clock = SQLiteStore(":memory:"), VirtualClock(NOW)
    base = SlackConfig(channel=CHANNEL_ID, base_url="http://127.0.0.1:9/api/")
    token_only = {"GATEWARDEN_SLACK_TOKEN": TOKEN}
    assert build_interactions(NotifyConfig(), ENV, store, clock, wall_clock=clock) is None
    quiet = NotifyConfig(slack=base.model_copy(update={"interactive": False}))
    assert build_interactions(quiet, ENV, store, clock, wall_clock=clock) is None
    with pytest.raises(ConfigError, match="GATEWARDEN_SLACK_SIGNING_SECRET"):
        build_interactions(NotifyConfig(slack=base), token_only, store, clock, wall_clock=clock)
    missing = base.model_copy(update={"signing_secret_file": tmp_path / "absent"})
    with pytest.raises(ConfigError, match="signing_secret_file: cannot read"):
        build_interactions(NotifyConfig(slack=missing), token_only, store, clock, wall_clock=clock)
    (tmp_path / "secret").write_text(SIGNING_SECRET + "\n", encoding="utf-8")
    from_file = base.model_copy(update={"signing_secret_file": tmp_path / "secret"})
    handler = build_interactions(
        NotifyConfig(slack=from_file), token_only, store, clock, wall_clock=clock
    )
    assert handler is not None
    body = form_body({"type": "view_closed", "user": {"id": "U1"}})
    assert handler.handle(body, signed_headers(body, int(NOW))).status == 200
    parsed = NotifyConfig.model_validate(
        {
            "slack": {
                "channel": "C1",
                "routes": [{"channel": "C2", "match": {"team": "a*"}, "min_severity": "critical"}],
            }
        }
    )
    assert parsed.slack is not None and parsed.slack.routes[0].channel == "C2"
    with pytest.raises(ValueError):
        NotifyConfig.model_validate({"slack": {"channel": "C1", "routes": [{"chan": "C2"}]}})


def test_signatures_are_checked_on_the_wall_clock_while_decisions_use_the_daemon_s(
    tmp_path: Path,
) -> None:
    """A daemon on simulated time (demo, drill, replay) still judges Slack's timestamps by the
    real time Slack signed them with; what it records stays on its own timeline."""
    simulated, wall = VirtualClock(T0 - 86_400), VirtualClock(NOW)
    with SlackStandin(TOKEN) as slack:
        store = SQLiteStore(str(tmp_path / "events.db"))
        approval_gate(store, approvers=["U1"], t0=simulated.now() - 60)
        cfg = NotifyConfig(slack=SlackConfig(channel=CHANNEL_ID, base_url=slack.base_url))
        handler = build_interactions(cfg, ENV, store, simulated, wall_clock=wall)
        assert handler is not None
        body = form_body(block_action("approve", APPROVE, user="U1"))
        stale = handler.handle(body, signed_headers(body, int(simulated.now())))
        assert stale.status == 401 and stale.body == {"error": "stale"}
        assert handler.handle(body, signed_headers(body, int(wall.now()))).status == 200
        (grant,) = store.events(types=[EventType.APPROVAL_GRANTED.value])
        assert grant.ts == simulated.now() and grant.payload["by"] == "U1"


def test_socket_mode_needs_no_signing_secret_and_serves_no_endpoint() -> None:
    store, clock = SQLiteStore(":memory:"), VirtualClock(NOW)
    socket = SlackConfig(channel=CHANNEL_ID, base_url="http://127.0.0.1:9/api/", socket_mode=True)
    token_only = {"GATEWARDEN_SLACK_TOKEN": TOKEN}
    handler = build_interactions(
        NotifyConfig(slack=socket), token_only, store, clock, wall_clock=clock
    )
    assert handler is not None and handler.verifier is None
    body = form_body(block_action("approve", APPROVE, user="U1"))
    refused = handler.handle(body, signed_headers(body, int(NOW)))  # even a signed request
    assert refused.status == 404 and store.events() == []
