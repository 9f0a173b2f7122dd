"""A real headless browser (Debian's chromium, driven by Playwright) clicks Approve in the
console of the assembled daemon and sees the playbook act.

The assembly is ``gatewarden.daemon.build`` against the simulator on a stepped VirtualClock, as
``gatewarden demo`` runs it, but with ``demo_auto_approve`` off: only the click can unblock the
failover. The console is the daemon's own (``Daemon.start_web``), with per-user tokens from the
config (``console.users``): whoever logs in decides as themselves, and the shared ``web.token``
only views. CI must install chromium first (``tests/console/ensure_browser.sh``); the test is
skipped only when ``GATEWARDEN_SKIP_BROWSER=1``, never silently.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gatewarden.config import WebConfig
from gatewarden.daemon import Daemon
from gatewarden.models import EventType
from tests.report.harness import Harness, short_outage, start

if os.environ.get("GATEWARDEN_SKIP_BROWSER") == "1":
    pytest.skip("GATEWARDEN_SKIP_BROWSER=1", allow_module_level=True)

# Imported after the opt-out so that a machine without playwright can still opt out.
from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEW_TOKEN = "browser-view-token-42"  # web.token: view-only
APPROVER, INTRUDER = "U-ONCALL-1", "U-INTRUDER"
TOKENS = {APPROVER: "browser-oncall-token-7f3e", INTRUDER: "browser-intruder-token-c21a"}
USERS = f"""console:
  users:
    {APPROVER}: {{env: GW_CONSOLE_ONCALL}}
    {INTRUDER}: {{env: GW_CONSOLE_INTRUDER}}
"""
WAIT_MS = 30_000  # generous for a loaded 2-core CI machine; a pass never waits this long


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Harness, str]]:
    assert Path(CHROMIUM).exists(), (
        "chromium is missing: run tests/console/ensure_browser.sh (or GATEWARDEN_SKIP_BROWSER=1)"
    )
    harness = start(
        tmp_path / "daemon",
        short_outage(start_min=3),
        auto_approve=False,
        approvers=[APPROVER],
        detector_files=["error-rate.yaml"],
        extra=USERS,
        env={"GW_CONSOLE_ONCALL": TOKENS[APPROVER], "GW_CONSOLE_INTRUDER": TOKENS[INTRUDER]},
    )
    daemon = Daemon(harness.assembly, interval_s=1, web=WebConfig(port=0), console_token=VIEW_TOKEN)
    try:
        url = daemon.start_web()
        assert url is not None
        yield harness, url
    finally:
        if daemon.web_server is not None:
            daemon.web_server.stop()
        harness.close()


def _events(harness: Harness, type_: EventType) -> list[Any]:
    return harness.assembly.store.events(types=[type_])


def _log_in(page: Page, url: str, token: str) -> None:
    page.goto(f"{url}/console/")
    assert "/console/login" in page.url  # everything needs a token
    page.fill("#token", token)
    page.click("#login")
    page.wait_for_selector("table.incidents")


def _log_out(page: Page) -> None:
    page.click("form.logout button")
    page.wait_for_selector("#token")


def test_click_approve_and_watch_the_failover(daemon: tuple[Harness, str]) -> None:
    harness, url = daemon
    harness.run_until(lambda: bool(_events(harness, EventType.APPROVAL_REQUESTED)), max_ticks=60)
    for _ in range(2):  # nobody decides: the playbook waits, the gateway is untouched
        harness.step()
    assert harness.admin_calls() == []
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            # A CSP violation is logged as "Refused to ..."; failed loads (the favicon, the 403
            # answer to the refused decision) are expected and not counted.
            page.on("console", lambda m: problems.append(m.text) if "Refused" in m.text else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            # The shared token shows everything and decides nothing.
            _log_in(page, url, VIEW_TOKEN)
            assert "1 approval" in page.inner_text("table.incidents")
            page.click("table.incidents a")
            form = page.locator("form.approval")
            assert "Allowed approvers: U-ONCALL-1." in form.inner_text()
            assert "view-only" in form.inner_text() and form.locator("button").count() == 0
            incident = page.url
            _log_out(page)

            # Someone the playbook does not list decides as themselves, and is refused.
            _log_in(page, url, TOKENS[INTRUDER])
            page.goto(incident)
            assert page.inner_text("#who") == INTRUDER
            assert page.locator("form.approval input[name=by]").count() == 0  # no typed ids
            page.click("form.approval button.approve")
            assert "U-INTRUDER is not an approver" in page.inner_text("#decision-error")
            assert _events(harness, EventType.APPROVAL_GRANTED) == []
            _log_out(page)

            _log_in(page, url, TOKENS[APPROVER])
            page.goto(incident)
            assert f"You decide as {APPROVER}." in page.inner_text("form.approval")
            page.fill("form.approval input[name=reason]", "openai is down, fail over")
            page.click("form.approval button.approve")
            page.wait_for_selector("text=Approval recorded.")
            granted = _events(harness, EventType.APPROVAL_GRANTED)
            assert [(g.payload["by"], g.payload["reason"]) for g in granted] == [
                (APPROVER, "openai is down, fail over")
            ]
            assert page.locator("#approvals").count() == 0

            # The engine acts on its next tick; the page follows by itself (polling).
            harness.run_until(lambda: bool(_events(harness, EventType.ACTION_APPLIED)), max_ticks=3)
            row = page.wait_for_selector("tr[data-type='action.applied']", timeout=WAIT_MS)
            assert row is not None and "HTTP 200" in row.inner_text()
            assert "failover_provider" in page.inner_text("tr[data-type='action.intended']")
            assert f"by {APPROVER}" in page.inner_text("#response")
            image = page.locator("#charts img").first
            image.wait_for(state="visible", timeout=WAIT_MS)
            page.wait_for_function(
                "img => img.complete && img.naturalWidth > 0",
                arg=image.element_handle(),
                timeout=WAIT_MS,
            )
        finally:
            browser.close()
    calls = harness.admin_calls()
    assert ("POST", "/model/update") in calls  # the simulator received the failover
    assert problems == []  # no script error, no CSP violation
