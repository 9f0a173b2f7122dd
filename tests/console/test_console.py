"""The console over real HTTP on 127.0.0.1: identity from credentials, CSRF, approvals under the
same approver rule as Slack (user groups included), escaping, JSON."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from slack_sdk import WebClient

from gatewarden.clock import VirtualClock
from gatewarden.config import ConsoleConfig, SecretRef
from gatewarden.console import console_routes, pending_approvals
from gatewarden.console.auth import safe_next
from gatewarden.errors import ConfigError
from gatewarden.httpserve import ThreadedServer
from gatewarden.models import Event, EventType
from gatewarden.notify.slack import ApproverDirectory, SlackGroupMap
from gatewarden.store.sqlite import SQLiteStore
from gatewarden.web import StatusSnapshot, create_app
from tests.notify.slack_standin import SlackStandin
from tests.report.lifecycle import INC, SECRET, T0, lifecycle

TOKEN = "console-token-0123"  # the daemon's web.token: view-only
USERS = {
    "U1": "u1-console-token-5e0c",
    "U2": "u2-console-token-77a1",
    "U7": "u7-console-token-c3d9",
    "U9": "u9-console-token-0b42",
}
PAGE = f"/console/incidents/{INC}"
GROUP = "S0ONCALL01"
SLACK_TOKEN = "xoxb-console-test-0123"


def _waiting(**request: Any) -> list[Event]:
    """The lifecycle up to run-1's approval request: one approval pending (U1 or U2), its
    request payload overridden by ``request``."""
    events = lifecycle()
    cut = next(i for i, e in enumerate(events) if e.type is EventType.APPROVAL_REQUESTED)
    asked = events[cut]
    events[cut] = asked.model_copy(update={"payload": {**asked.payload, **request}})
    return events[: cut + 1]


def _status() -> StatusSnapshot:
    return StatusSnapshot(
        now=T0, tick_seconds=15, ticks=1, last_tick_at=T0, last_tick_duration_s=0.1,
        records=0, malformed=0, overruns=0, sources=(), detector_series=0, open_incidents=1,
        outbox_depth=0, action_failures=0, store_ok=True,
    )  # fmt: skip


def _serve(store: SQLiteStore, **kw: Any) -> ThreadedServer:
    routes = console_routes(store, VirtualClock(T0 + 60), TOKEN, users=USERS, **kw)
    return ThreadedServer(create_app(_status, extra_routes=routes), name="console-test")


@pytest.fixture
def store() -> SQLiteStore:
    s = SQLiteStore(":memory:")
    s.append(_waiting())
    return s


@pytest.fixture
def url(store: SQLiteStore) -> Iterator[str]:
    with _serve(store) as server:
        yield server.url


def _login(url: str, token: str = USERS["U2"]) -> httpx.Client:
    client = httpx.Client(base_url=url)
    response = client.post("/console/login", data={"token": token, "next": PAGE})
    assert response.status_code == 303 and response.headers["location"] == PAGE
    cookies = response.headers.get_list("set-cookie")
    assert any(c.startswith("gatewarden_token=") for c in cookies)
    assert all("HttpOnly" in c and "SameSite=strict" in c and "Path=/console" in c for c in cookies)
    return client


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert match, "form without a CSRF token"
    return match.group(1)


def _decisions(store: SQLiteStore) -> list[tuple[str, Any, Any]]:
    types = [EventType.APPROVAL_GRANTED, EventType.APPROVAL_DENIED]
    return [
        (e.type.value, e.payload["by"], e.payload.get("via")) for e in store.events(types=types)
    ]


def test_everything_needs_the_token(url: str) -> None:
    anonymous = httpx.Client(base_url=url)
    for path in ("/console/", PAGE, "/console/static/console.js", f"{PAGE}/charts/1.png"):
        response = anonymous.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/console/login?next=")
    for path in ("/console/api/incidents", f"/console/api/incidents/{INC}"):
        assert anonymous.get(path).status_code == 401
    wrong = anonymous.post("/console/login", data={"token": "guess", "next": PAGE})
    assert wrong.status_code == 401 and "Wrong token." in wrong.text
    assert "gatewarden_token" not in wrong.headers.get("set-cookie", "")
    assert (
        anonymous.get(
            "/console/api/incidents", headers={"Authorization": f"Bearer {TOKEN}"}
        ).status_code
        == 200
    )
    login = anonymous.get("/console/login")
    assert "default-src 'none'" in login.headers["content-security-policy"]
    assert login.headers["x-content-type-options"] == "nosniff"


def test_no_configured_token_serves_nothing(store: SQLiteStore) -> None:
    app = create_app(_status, extra_routes=console_routes(store, VirtualClock(T0), None))
    with ThreadedServer(app, name="console-none") as server:
        client = httpx.Client(base_url=server.url)
        assert "No console token is configured." in client.get("/console/login").text
        assert client.post("/console/login", data={"token": ""}).status_code == 401
        bearer = {"Authorization": "Bearer anything"}
        assert client.get("/console/api/incidents", headers=bearer).status_code == 401


def test_pages_list_the_incident_and_its_pending_approval(url: str) -> None:
    client = _login(url)
    index = client.get("/console/")
    assert index.status_code == 200 and f'href="{PAGE}"' in index.text
    assert "1 approval" in index.text
    page = client.get(PAGE)
    assert page.status_code == 200
    assert 'data-run="run-1" data-step="0"' in page.text
    assert "Allowed approvers: U1, U2." in page.text
    assert SECRET not in page.text and "api_key=&lt;redacted&gt;" in page.text
    exported = client.get(f"/console/api/incidents/{INC}")
    assert SECRET not in exported.text and "team=search,api_key=<redacted>" in exported.text
    data = exported.json()
    assert [(p["run_id"], p["step"], p["approvers"]) for p in data["pending_approvals"]] == [
        ("run-1", 0, ["U1", "U2"])
    ]
    assert data["incident"]["id"] == INC and data["version"]
    version = client.get(f"/console/api/incidents/{INC}/version").json()["version"]
    assert version == data["version"]


def test_decisions_need_csrf_same_origin_and_an_allowed_approver(
    url: str, store: SQLiteStore
) -> None:
    client = _login(url)  # as U2
    page = client.get(PAGE).text
    assert 'id="who">U2<' in page and "You decide as <strong" in page
    assert 'name="by"' not in page  # nobody types an identity any more
    csrf = _csrf(page)
    form = {"run_id": "run-1", "step": "0", "decision": "approve", "reason": "ok"}
    assert client.post(f"{PAGE}/decide", data=form).status_code == 403  # no CSRF token
    assert client.post(f"{PAGE}/decide", data={**form, "csrf": "0" * 64}).status_code == 403
    foreign = client.post(
        f"{PAGE}/decide", data={**form, "csrf": csrf}, headers={"Origin": "http://evil.example"}
    )
    assert foreign.status_code == 400
    assert _decisions(store) == []
    granted = client.post(f"{PAGE}/decide", data={**form, "csrf": csrf})
    assert granted.status_code == 303 and granted.headers["location"] == f"{PAGE}?done=granted"
    events = store.events(types=[EventType.APPROVAL_GRANTED])
    assert [
        (e.run_id, e.payload["step"], e.payload["by"], e.payload["reason"]) for e in events
    ] == [("run-1", 0, "U2", "ok")]
    assert events[0].ts == T0 + 60  # the injected clock
    assert pending_approvals(store, INC) == []
    after = client.get(granted.headers["location"])
    assert "Approval recorded." in after.text and 'id="approvals"' not in after.text
    again = client.post(f"{PAGE}/decide", data={**form, "csrf": csrf})
    assert again.status_code == 409  # no longer pending
    assert len(store.events(types=[EventType.APPROVAL_GRANTED])) == 1


def test_a_user_who_is_not_an_approver_is_refused(url: str, store: SQLiteStore) -> None:
    client = _login(url, USERS["U9"])
    csrf = _csrf(client.get(PAGE).text)
    form = {"run_id": "run-1", "step": "0", "decision": "approve", "csrf": csrf}
    intruder = client.post(f"{PAGE}/decide", data=form)
    assert intruder.status_code == 403 and "U9 is not an approver" in intruder.text
    assert _decisions(store) == []


def test_the_shared_token_only_views(url: str, store: SQLiteStore) -> None:
    client = _login(url, TOKEN)
    page = client.get(PAGE).text
    assert "Allowed approvers: U1, U2." in page and 'id="who">view-only<' in page
    assert "This token is view-only" in page and 'class="approve"' not in page
    csrf = _csrf(page)
    form = {"run_id": "run-1", "step": "0", "decision": "approve", "csrf": csrf}
    for by in ("", "U1"):  # with or without claiming to be someone
        refused = client.post(f"{PAGE}/decide", data={**form, "by": by})
        assert refused.status_code == 403 and "view-only" in refused.text
    bearer = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.get(f"/console/api/incidents/{INC}").status_code == 200
    assert bearer.post(f"{PAGE}/decide", data={**form, "by": "U1"}).status_code == 403
    assert _decisions(store) == []


def test_one_token_cannot_meet_a_quorum_alone() -> None:
    quorum = SQLiteStore(":memory:")
    quorum.append(_waiting(approvers=["U1", "U2"], quorum=2))
    with _serve(quorum) as server:
        u1 = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {USERS['U1']}"})
        form = {"run_id": "run-1", "step": "0", "decision": "approve"}
        assert u1.post(f"{PAGE}/decide", data=form).status_code == 303
        posing = u1.post(f"{PAGE}/decide", data={**form, "by": "U2"})  # the old loophole
        assert posing.status_code == 403 and "You are U1, not U2." in posing.text
        again = u1.post(f"{PAGE}/decide", data={**form, "by": "U1"})  # a repeat: recorded once
        assert again.status_code == 303
        assert _decisions(quorum) == [("approval.granted", "U1", None)]
        (waiting,) = pending_approvals(quorum, INC)
        assert waiting.granted_by == ["U1"]
        u2 = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {USERS['U2']}"})
        assert u2.post(f"{PAGE}/decide", data=form).status_code == 303
    assert _decisions(quorum) == [
        ("approval.granted", "U1", None),
        ("approval.granted", "U2", None),
    ]
    assert pending_approvals(quorum, INC) == []


def test_slack_user_group_members_decide_by_the_same_rule_as_slack() -> None:
    """A Slack group that could not be listed when the approval was requested stays in the
    list; the console asks Slack (the stand-in) when a member decides, as Slack's handler does."""
    with SlackStandin(SLACK_TOKEN, usergroups={GROUP: ["U7"]}) as slack:
        client = WebClient(token=SLACK_TOKEN, base_url=slack.base_url)
        groups = SlackGroupMap(ApproverDirectory(client, VirtualClock(T0)))
        grouped = SQLiteStore(":memory:")
        grouped.append(_waiting(approvers=["U1", GROUP], quorum=1))
        with _serve(grouped, live_groups=groups) as server:

            def decide(user: str) -> httpx.Response:
                headers = {"Authorization": f"Bearer {USERS[user]}"}
                form = {"run_id": "run-1", "step": "0", "decision": "approve"}
                return httpx.post(f"{server.url}{PAGE}/decide", data=form, headers=headers)

            refused = decide("U9")
            assert refused.status_code == 403 and "U9 is not an approver" in refused.text
            assert decide("U7").status_code == 303
            bearer = {"Authorization": f"Bearer {USERS['U1']}"}
            page = httpx.get(f"{server.url}{PAGE}", headers=bearer).text
            assert f"<dt>As member of</dt><dd>{GROUP}</dd>" in page  # the timeline says why
        assert [c.params["usergroup"] for c in slack.ok_calls("usergroups.users.list")] == [GROUP]
    assert _decisions(grouped) == [("approval.granted", "U7", GROUP)]
    assert pending_approvals(grouped, INC) == []  # the grant counts, as for the engine


def test_csrf_tokens_belong_to_the_identity_that_got_them(url: str, store: SQLiteStore) -> None:
    client = _login(url, USERS["U1"])
    csrf = _csrf(client.get(PAGE).text)
    # Same session, another identity's token: the form rendered for U1 is no good to U2.
    client.cookies.set("gatewarden_token", USERS["U2"], path="/console")
    form = {"run_id": "run-1", "step": "0", "decision": "deny", "csrf": csrf}
    assert client.post(f"{PAGE}/decide", data=form).status_code == 403
    assert _decisions(store) == []


def test_bearer_clients_decide_as_themselves_without_csrf(url: str, store: SQLiteStore) -> None:
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {USERS['U1']}"})
    form = {"run_id": "run-1", "step": "0", "decision": "deny"}
    bad = client.post(f"{PAGE}/decide", data={**form, "decision": "maybe"})
    assert bad.status_code == 400
    response = client.post(f"{PAGE}/decide", data=form)
    assert response.status_code == 303
    denied = store.events(types=[EventType.APPROVAL_DENIED])
    assert [(e.payload["by"], e.payload["reason"]) for e in denied] == [
        ("U1", "via console (deny)")
    ]


def test_console_users_config_refuses_weak_or_shared_tokens() -> None:
    cfg = ConsoleConfig(users={"U1": SecretRef(env="T1"), "U2": SecretRef(env="T2")})
    assert cfg.tokens({"T1": USERS["U1"], "T2": USERS["U2"]}, shared=TOKEN) == {
        "U1": USERS["U1"],
        "U2": USERS["U2"],
    }
    cases = {
        "shorter than 16": {"T1": "short", "T2": USERS["U2"]},
        "U1, U2 share one token": {"T1": USERS["U1"], "T2": USERS["U1"]},
        "same token as web.token": {"T1": TOKEN, "T2": USERS["U2"]},
        "secret not set": {"T1": USERS["U1"]},
    }
    for problem, env in cases.items():
        with pytest.raises(ConfigError) as caught:
            cfg.tokens(env, shared=TOKEN)
        text = "\n".join(caught.value.problems)
        assert problem in text and all(t not in text for t in (*USERS.values(), TOKEN))
    with pytest.raises(ValueError, match="no spaces"):
        ConsoleConfig.model_validate({"users": {"U 1": {"env": "T1"}}})


def test_logout_clears_the_session(url: str) -> None:
    client = _login(url)
    csrf = _csrf(client.get("/console/").text)
    assert client.post("/console/logout", data={}).status_code == 403
    out = client.post("/console/logout", data={"csrf": csrf})
    assert out.status_code == 303
    assert client.get("/console/").status_code == 303  # back to the login form


def test_payload_markup_is_escaped(store: SQLiteStore, url: str) -> None:
    store.append(
        [
            Event(
                ts=T0 + 30,
                type=EventType.INCIDENT_ACKNOWLEDGED,
                incident_id=INC,
                payload={"by": "<img src=x onerror=alert(1)>"},
            )
        ]
    )
    text = _login(url).get(PAGE).text
    assert "<img src=x" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text


def test_unknown_incident_and_next_targets(url: str) -> None:
    client = _login(url)
    assert client.get("/console/incidents/inc-nope").status_code == 404
    assert client.get("/console/incidents/inc-nope/charts/1.png").status_code == 404
    assert safe_next("/console/incidents/x", "/console") == "/console/incidents/x"
    for target in ("https://evil.example/", "//evil.example/console/", "/other", None):
        assert safe_next(target, "/console") == "/console/"
