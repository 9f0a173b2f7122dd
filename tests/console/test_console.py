"""The console over real HTTP on 127.0.0.1: authentication, CSRF, approvals, escaping, JSON."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from gatewarden.clock import VirtualClock
from gatewarden.console import console_routes, pending_approvals
from gatewarden.console.auth import safe_next
from gatewarden.httpserve import ThreadedServer
from gatewarden.models import Event, EventType
from gatewarden.store.sqlite import SQLiteStore
from gatewarden.web import StatusSnapshot, create_app
from tests.report.lifecycle import INC, SECRET, T0, lifecycle

TOKEN = "console-token-0123"
PAGE = f"/console/incidents/{INC}"


def _waiting() -> list[Event]:
    """The lifecycle up to run-1's approval request: one approval pending (U1 or U2)."""
    events = lifecycle()
    cut = next(i for i, e in enumerate(events) if e.type is EventType.APPROVAL_REQUESTED)
    return events[: cut + 1]


def _status() -> StatusSnapshot:
    return StatusSnapshot(
        now=T0, tick_seconds=15, ticks=1, last_tick_at=T0, last_tick_duration_s=0.1,
        records=0, malformed=0, overruns=0, sources=(), detector_series=0, open_incidents=1,
        outbox_depth=0, action_failures=0, store_ok=True,
    )  # fmt: skip


@pytest.fixture
def store() -> SQLiteStore:
    s = SQLiteStore(":memory:")
    s.append(_waiting())
    return s


@pytest.fixture
def url(store: SQLiteStore) -> Iterator[str]:
    app = create_app(_status, extra_routes=console_routes(store, VirtualClock(T0 + 60), TOKEN))
    with ThreadedServer(app, name="console-test") as server:
        yield server.url


def _login(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url)
    response = client.post("/console/login", data={"token": TOKEN, "next": PAGE})
    assert response.status_code == 303 and response.headers["location"] == PAGE
    cookies = response.headers.get_list("set-cookie")
    assert any(c.startswith("gatewarden_token=") for c in cookies)
    assert all("HttpOnly" in c and "SameSite=strict" in c and "Path=/console" in c for c in cookies)
    return client


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert match, "form without a CSRF token"
    return match.group(1)


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
    client = _login(url)
    csrf = _csrf(client.get(PAGE).text)
    form = {"run_id": "run-1", "step": "0", "decision": "approve", "by": "U2", "reason": "ok"}
    assert client.post(f"{PAGE}/decide", data=form).status_code == 403  # no CSRF token
    assert client.post(f"{PAGE}/decide", data={**form, "csrf": "0" * 64}).status_code == 403
    foreign = client.post(
        f"{PAGE}/decide", data={**form, "csrf": csrf}, headers={"Origin": "http://evil.example"}
    )
    assert foreign.status_code == 400
    intruder = client.post(f"{PAGE}/decide", data={**form, "csrf": csrf, "by": "U9"})
    assert intruder.status_code == 403 and "U9 is not an approver" in intruder.text
    assert store.events(types=[EventType.APPROVAL_GRANTED]) == []
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


def test_bearer_clients_decide_without_csrf_and_deny(url: str, store: SQLiteStore) -> None:
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"})
    form = {"run_id": "run-1", "step": "0", "decision": "deny", "by": "U1"}
    response = client.post(f"{PAGE}/decide", data=form)
    assert response.status_code == 303
    denied = store.events(types=[EventType.APPROVAL_DENIED])
    assert [(e.payload["by"], e.payload["reason"]) for e in denied] == [
        ("U1", "via console (deny)")
    ]
    bad = client.post(f"{PAGE}/decide", data={**form, "decision": "maybe"})
    assert bad.status_code == 400


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
