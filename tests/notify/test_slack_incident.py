"""The incident thread in Slack: enriched root rewritten in place, charts, routing, approvals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from gatewarden.clock import VirtualClock
from gatewarden.models import Event, EventType
from gatewarden.notify.outbox import NotifyStage
from gatewarden.notify.slack import RenderOptions, RouteRule, SlackNotifier
from gatewarden.store.sqlite import SQLiteStore
from tests.notify.factory import INCIDENT, RUN, T0, lifecycle
from tests.notify.slack_standin import CHANNEL_ID, SlackStandin
from tests.notify.slackkit import TOKEN, FrameSeries, approval_gate, tick

PAGER, SEARCH = "C0PAGER", "C0SEARCH"


@pytest.fixture
def slack() -> Iterator[SlackStandin]:
    channels = {"#ops": CHANNEL_ID, "#pager": PAGER, "#search": SEARCH}
    with SlackStandin(TOKEN, channels=channels) as standin:
        yield standin


def notifier(slack: SlackStandin, **kwargs: Any) -> SlackNotifier:
    options = kwargs.pop("options", RenderOptions(snooze_s=3600))
    return SlackNotifier(TOKEN, CHANNEL_ID, base_url=slack.base_url, options=options, **kwargs)


def texts(blocks: list[dict[str, Any]]) -> str:
    """Every text of a message's blocks, one per line (for readable assertions)."""
    out = []
    for block in blocks:
        if isinstance(block.get("text"), dict):
            out.append(block["text"]["text"])
        out.extend(f["text"] for f in block.get("fields", []))
        for element in block.get("elements", []):
            text = element.get("text", "")
            out.append(text["text"] if isinstance(text, dict) else text)
    return "\n".join(str(t) for t in out)


def buttons(blocks: list[dict[str, Any]]) -> list[str]:
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


def enriched_lifecycle() -> list[Event]:
    """The factory lifecycle with example ids in the evidence, and a report at the end."""
    events = lifecycle()
    fired = events[0]
    evidence = {**fired.payload["evidence"], "sample_ids": ["req-1", "req-2"]}
    events[0] = fired.model_copy(update={"payload": {**fired.payload, "evidence": evidence}})
    resolved = events[-1]
    impact = {"failed_requests": 1234, "cost_usd": 56.5, "keys": 7, "requests": 9000}
    events[-1] = resolved.model_copy(update={"payload": {**resolved.payload, "impact": impact}})
    return events


def test_root_is_enriched_then_rewritten_in_place_until_resolution(slack: SlackStandin) -> None:
    store, clock = SQLiteStore(":memory:"), VirtualClock(T0)
    stage = NotifyStage(store, [notifier(slack)], clock, series=FrameSeries(), tick_seconds=15)
    events = enriched_lifecycle()
    stage.run(tick(clock, store.append(events[:2])))  # the incident opens
    root = slack.posts()[0]
    first = texts(root.params["blocks"])
    assert "*Root cause*\nerror_rate on provider=openai" in first
    assert "*Observed*\n0.31" in first and "*Baseline*\n0.01" in first
    assert "*Since*\n22:12:20 UTC" in first  # first anomalous tick, a minute before opening
    # Over the kept series since the first anomalous tick: 5 ticks of 90 errors and $1.50.
    assert "*Failed requests*\n450" in first and "*Spend*\n$7.50" in first
    assert "Examples: req-1, req-2" in first
    assert buttons(root.params["blocks"]) == ["snooze"]
    clock.advance(15)
    stage.run(tick(clock, store.append(events[2:])))  # everything else, up to resolution
    stage.run(tick(clock, store.append(_report_written())))  # the report stage, a tick later
    final = slack.message(root.response["ts"])
    shown = texts(final["blocks"])
    assert final["blocks"][0]["text"]["text"].startswith(":rotating_light: CRITICAL incident")
    assert "incident resolved: error_rate on provider=openai" in final["text"]
    assert "*Status*\nresolved" in shown
    assert "• ttft on provider=openai,model=gpt-4o — 4,200 vs 800" in shown  # the symptom
    assert "*Remediation:* route provider=openai to anthropic" in shown
    assert "*Current step:* incident resolved" in shown
    assert "*Report:* var/reports/incident-inc-1.md" in shown
    assert "*Failed requests*\n1,234" in shown and "*Keys affected*\n7" in shown
    assert buttons(final["blocks"]) == []  # no snooze on a resolved incident
    replies = [p for p in slack.posts() if p.params.get("thread_ts") == root.response["ts"]]
    resolution = next(p for p in replies if "incident resolved" in p.params["text"])
    assert "*Time to mitigate*\n3m" in texts(resolution.params["blocks"])
    report = next(p for p in replies if "report written" in p.params["text"])
    assert "*Path*\nvar/reports/incident-inc-1.md" in texts(report.params["blocks"])


def _report_written() -> list[Event]:
    return [
        Event(
            ts=T0 + 601,
            type=EventType.REPORT_WRITTEN,
            incident_id=INCIDENT,
            key=f"report:{INCIDENT}:markdown:1",
            payload={"path": "var/reports/incident-inc-1.md", "format": "markdown"},
        )
    ]


def test_charts_are_uploaded_into_the_thread_with_files_v2(slack: SlackStandin) -> None:
    store, clock = SQLiteStore(":memory:"), VirtualClock(T0)
    stage = NotifyStage(store, [notifier(slack)], clock, series=FrameSeries(), tick_seconds=15)
    slack.fail_next_upload(1)  # the upload URL answers 503 once: retried, never doubled
    stage.run(tick(clock, store.append(lifecycle()[:2])))
    failed = store.events(types=[EventType.NOTIFICATION_FAILED.value])
    assert len(failed) == 1 and failed[0].payload["retryable"] is True
    clock.advance(60)
    stage.run(tick(clock))
    methods = [c.method for c in slack.calls if c.method.startswith("files.")]
    assert methods == ["files.getUploadURLExternal"] * 2 + ["files.completeUploadExternal"]
    complete = slack.ok_calls("files.completeUploadExternal")[0]
    root_ts = slack.posts()[0].response["ts"]
    assert complete.params["channel_id"] == CHANNEL_ID and complete.params["thread_ts"] == root_ts
    shared = [m for m in slack.messages if m.get("files")]
    assert len(shared) == 1 and shared[0]["thread_ts"] == root_ts
    (title,) = [f["title"] for f in shared[0]["files"]]
    assert title == "error_rate on provider=openai, last 15m"
    png = slack.files[shared[0]["files"][0]["id"]]["data"]
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    chart = json.loads(
        next(
            q.payload["message"]["fields"]["_meta"]
            for q in store.events(types=[EventType.NOTIFICATION_QUEUED.value])
            if q.payload["message"]["kind"] == "incident.chart"
        )
    )
    values = [v for _, v in chart["points"]]
    assert len(values) == 60 and values[:20] == [None] * 20  # 40 ticks kept of the 60 asked
    assert values[20] == pytest.approx(2 / 300) and values[-1] == pytest.approx(0.3)


def test_roots_are_routed_by_scope_and_severity_and_replies_follow(slack: SlackStandin) -> None:
    rules = [
        RouteRule(channel=SEARCH, match={"team": "search*"}),
        RouteRule(channel=PAGER, min_severity="critical"),  # type: ignore[arg-type]
    ]
    store, clock = SQLiteStore(":memory:"), VirtualClock(T0)
    stage = NotifyStage(store, [notifier(slack, routes=rules)], clock)
    opened = [
        ("inc-team", {"team": "search-api", "api_key": "k1"}, "warning"),
        ("inc-crit", {"provider": "openai"}, "critical"),
        ("inc-warn", {"provider": "azure"}, "warning"),
    ]
    events = [
        Event(
            ts=T0,
            type=EventType.INCIDENT_OPENED,
            incident_id=iid,
            key=f"open:{iid}",
            payload={"kinds": ["cost"], "scope": scope, "severity": sev, "title": iid},
        )
        for iid, scope, sev in opened
    ]
    events.append(
        Event(
            ts=T0 + 1,
            type=EventType.INCIDENT_RESOLVED,
            incident_id="inc-crit",
            payload={"reason": "recovered"},
        )
    )
    stage.run(tick(clock, store.append(events)))
    posts = slack.posts()
    assert [p.params["channel"] for p in posts[:3]] == [SEARCH, PAGER, CHANNEL_ID]
    assert posts[3].params["channel"] == PAGER  # the reply joins its root's thread
    assert posts[3].params["thread_ts"] == posts[1].response["ts"]


def test_quorum_is_shown_and_the_gate_closes_when_met(slack: SlackStandin) -> None:
    store, clock = SQLiteStore(":memory:"), VirtualClock(T0)
    stage = NotifyStage(store, [notifier(slack)], clock)
    stage.run(tick(clock, approval_gate(store, approvers=["U1", "U2", "U3"], quorum=2)))
    gate = next(p for p in slack.posts() if "approval needed" in p.params["text"])
    ts = gate.response["ts"]
    assert "*Approvals*\n0 of 2" in texts(gate.params["blocks"])
    assert "*Approvers*\n<@U1>, <@U2>, <@U3>" in texts(gate.params["blocks"])
    assert buttons(slack.message(ts)["blocks"]) == ["approve", "deny", "reason"]
    for by in ("U1", "U2"):
        clock.advance(15)
        grant = _decision(EventType.APPROVAL_GRANTED, by, clock.now())
        stage.run(tick(clock, store.append([grant])))
        if by == "U1":
            assert "*Approvals*\n1 of 2 (U1)" in texts(slack.message(ts)["blocks"])
            assert buttons(slack.message(ts)["blocks"]) == ["approve", "deny", "reason"]
    blocks = slack.message(ts)["blocks"]
    assert buttons(blocks) == []
    assert ":white_check_mark: *approved by <@U1>, <@U2>* · buttons disabled" in texts(blocks)
    assert slack.message(ts)["edited"] is True
    rewrites = [
        q.payload["message"]
        for q in store.events(types=[EventType.NOTIFICATION_QUEUED.value])
        if q.payload["message"]["thread_of"] == f"msg:approval:{RUN}:0"
    ]
    assert [len(r["actions"]) for r in rewrites] == [2, 0]  # the settled gate offers nothing


def _decision(type_: EventType, by: str, ts: float, **extra: Any) -> Event:
    return Event(
        ts=ts,
        type=type_,
        incident_id=INCIDENT,
        run_id=RUN,
        key=f"decision:{RUN}:0:{by}",
        payload={"step": 0, "by": by, "reason": "", **extra},
    )


def test_expiry_disables_the_buttons_and_posts_the_outcome(slack: SlackStandin) -> None:
    store, clock = SQLiteStore(":memory:"), VirtualClock(T0)
    stage = NotifyStage(store, [notifier(slack)], clock)
    stage.run(tick(clock, approval_gate(store, approvers=["U1"])))
    ts = next(p for p in slack.posts() if "approval needed" in p.params["text"]).response["ts"]
    clock.advance(600)
    expired = Event(
        ts=clock.now(),
        type=EventType.APPROVAL_EXPIRED,
        incident_id=INCIDENT,
        run_id=RUN,
        key=f"expired:{RUN}:0",
        payload={"step": 0, "outcome": "deny"},
    )
    stage.run(tick(clock, store.append([expired])))
    blocks = slack.message(ts)["blocks"]
    assert buttons(blocks) == []
    assert ":hourglass: *expired at 22:23:20 UTC, outcome: deny* · buttons disabled" in texts(
        blocks
    )
    outcome = slack.posts()[-1]
    assert outcome.params["text"] == "WARNING approval expired (step 0): deny"
    assert outcome.params["thread_ts"] == slack.posts()[0].response["ts"]


def test_without_interactivity_the_gate_says_how_to_decide(slack: SlackStandin) -> None:
    store, clock = SQLiteStore(":memory:"), VirtualClock(T0)
    quiet = notifier(slack, options=RenderOptions(interactive=False, snooze_s=3600))
    NotifyStage(store, [quiet], clock).run(tick(clock, approval_gate(store, approvers=["U1"])))
    root = slack.posts()[0]
    gate = next(p for p in slack.posts() if "approval needed" in p.params["text"])
    assert buttons(root.params["blocks"]) == [] and buttons(gate.params["blocks"]) == []
    assert f"gatewarden approve|deny {RUN} --step 0" in texts(gate.params["blocks"])


def test_report_link_when_reports_are_served(slack: SlackStandin) -> None:
    store, clock = SQLiteStore(":memory:"), VirtualClock(T0)
    options = RenderOptions(reports_url="https://ops.example.com/reports/")
    stage = NotifyStage(store, [notifier(slack, options=options)], clock)
    stage.run(tick(clock, store.append([*lifecycle()[:2], *_report_written()])))
    report = slack.posts()[-1]
    link = "<https://ops.example.com/reports/incident-inc-1.md|incident-inc-1.md>"
    assert f"*Report:* {link}" in texts(report.params["blocks"])
    assert f"*Report:* {link}" in texts(slack.messages[0]["blocks"])  # the rewritten root too
