"""Timeline, figures and rendering of a hand-built incident holding every kind of decision."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from gatewarden.clock import VirtualClock
from gatewarden.models import Event, EventType
from gatewarden.protocols import Stage, Tick
from gatewarden.report import (
    IncidentNotFound,
    ReportStage,
    build_timeline,
    render,
    timeline_json,
    write_report,
)
from gatewarden.report.render import environment, md_escape
from gatewarden.report.timeline import FIRST_ANOMALY
from gatewarden.store.sqlite import SQLiteStore
from tests.report.checks import (
    assert_entries_match_events,
    assert_self_contained,
    incident_events,
)
from tests.report.lifecycle import INC, KEY_FP, SECRET, SLACK_TOKEN, T0, lifecycle


@pytest.fixture
def store() -> SQLiteStore:
    s = SQLiteStore(":memory:")
    s.append(lifecycle())
    other = [e.model_copy(update={"incident_id": "inc-other"}) for e in lifecycle(T0 + 5)]
    s.append([e.model_copy(update={"key": None}) for e in other])  # must not leak in
    return s


def by_type(timeline_entries: tuple[object, ...], type_: str) -> list[object]:
    return [e for e in timeline_entries if getattr(e, "type", None) == type_]


def test_entries_match_the_events_in_order_with_actors(store: SQLiteStore) -> None:
    timeline = build_timeline(store, INC)
    assert_entries_match_events(timeline, incident_events(store, INC))
    first = timeline.entries[0]
    assert (first.type, first.ts, first.actor) == (
        FIRST_ANOMALY,
        T0 - 30,
        "detector:error_rate-detector",
    )
    # Alerts are filed without an incident id; all three members are found by fingerprint.
    assert len(by_type(timeline.entries, "alert.fired")) == 3
    assert {a.fingerprint for a in timeline.alerts} == set(timeline.incident.alerts)


def test_each_decision_reads_precisely(store: SQLiteStore) -> None:
    entries = {(e.type, e.run_id): e for e in build_timeline(store, INC).entries}
    granted = entries[("approval.granted", "run-1")]
    assert (granted.summary, granted.actor) == ("approval granted by U2 (step 0) — go", "U2")
    denied = entries[("approval.denied", "run-2")]
    assert (denied.summary, denied.actor) == ("approval denied by U1 (step 0) — no", "U1")
    assert entries[("approval.expired", "run-3")].summary == "approval of step 0 expired: deny"
    asked = entries[("approval.requested", "run-1")]
    assert asked.summary == "approval requested for step 0 from U1, U2"
    assert asked.detail["On timeout"] == "deny"
    intended = next(
        e
        for e in build_timeline(store, INC).entries
        if e.type == "action.intended" and "Inverse" in e.detail
    )
    assert intended.detail["Request"] == "failover_provider(provider=openai, api_secret=<redacted>)"
    assert intended.detail["Inverse"] == "set_deployment_orders(orders={'openai-gpt-4o': 1})"
    applied = entries[("action.applied", "run-1")]
    assert applied.summary == "applied step 1: HTTP 200"
    assert applied.detail["Response"] == (
        'HTTP 200 — fail over from provider openai — {"echo": "Bearer <redacted>", '
        '"updated": ["openai-gpt-4o"]}'
    )
    failed = entries[("verification.failed", "run-1")]
    assert failed.detail["Checks"] == (
        "0 healthy tick(s); error_rate[provider=openai]=0.2 >= 0.02; "
        "not healthy for 3 ticks within 300s"
    )
    rolled = entries[("action.rolled_back", "run-1")]
    assert rolled.summary == "rolled back step 1: set_deployment_orders"
    assert rolled.detail["Response"] == "HTTP 200 — orders restored"
    assert entries[("playbook.finished", "run-1")].summary == (
        "playbook provider-failover finished: rolled_back"
    )
    inhibited = entries[("alert.inhibited", None)]
    assert inhibited.summary == (
        "alert inhibited: ttft on provider=openai,model=gpt-4o by inc-1 — "
        "inside error_rate on provider=openai"
    )


def test_notifications_show_pages_and_failures_only(store: SQLiteStore) -> None:
    timeline = build_timeline(store, INC)
    notes = [(e.type, e.summary) for e in timeline.entries if e.type.startswith("notification")]
    assert notes == [
        (
            "notification.failed",
            "notification via slack failed (incident opened, attempt 1, will retry): "
            "timeout (token=<redacted>)",
        ),
        ("notification.delivered", "notified via slack: approval requested"),
        ("notification.delivered", "notified via slack: incident opened"),
        ("notification.delivered", "notified via slack: incident resolved"),
    ]
    assert timeline.notifications == {"slack": {"queued": 4, "delivered": 4, "failed": 1}}


def test_figures(store: SQLiteStore) -> None:
    f = build_timeline(store, INC).figures
    assert f.first_anomalous_at == T0 - 30
    assert (f.time_to_detect_s, f.time_to_acknowledge_s, f.acknowledged_by) == (30, 100, "U2")
    assert f.time_to_mitigate_s is None  # rolled back: never mitigated
    assert (f.time_to_resolve_s, f.impact_duration_s) == (900, 930)


def test_policy_grants_are_not_acknowledgements() -> None:
    s = SQLiteStore(":memory:")
    events = [e for e in lifecycle() if e.type is not EventType.APPROVAL_GRANTED]
    auto = Event(
        ts=T0 + 20,
        type=EventType.APPROVAL_GRANTED,
        incident_id=INC,
        run_id="run-1",
        payload={"step": 0, "by": "policy:auto", "reason": "auto mode"},
    )
    s.append([*events, auto])
    f = build_timeline(s, INC).figures
    assert (f.acknowledged_at, f.acknowledged_by) == (T0 + 450, "U1")  # the denial, a human


def test_open_incident_and_unknown_incident() -> None:
    s = SQLiteStore(":memory:")
    s.append(lifecycle()[:3])
    timeline = build_timeline(s, INC)
    assert timeline.figures.time_to_detect_s == 30
    assert timeline.figures.time_to_resolve_s is None
    text = render(timeline)
    assert "| Time to resolve | — |" in text
    assert "| Failed requests | not known |" in text
    assert "no series were recorded for this incident" in text
    with pytest.raises(IncidentNotFound):
        build_timeline(s, "inc-missing")


def test_markdown_html_json_write_and_record(store: SQLiteStore, tmp_path: Path) -> None:
    clock = VirtualClock(T0 + 1000)
    timeline = build_timeline(store, INC)
    md = write_report(store, INC, tmp_path, clock=clock)
    assert md == tmp_path / f"incident-{INC}.md"
    text = md.read_text()
    for entry in timeline.entries:
        assert f"| {md_escape(entry.summary)}" in text
    assert "| Time to detect | 30s |" in text and "| Time to acknowledge | 100s |" in text
    counted = "520 failed requests, 4,000 requests, $1.50 spent, 12 keys"
    assert f"| Counted by the correlator from opening | {counted} |" in text
    html = write_report(store, INC, tmp_path, fmt="html", clock=clock).read_text()
    assert_self_contained(html)
    assert "approval granted by U2 (step 0) — go" in html
    document = json.loads(write_report(store, INC, tmp_path, fmt="json", clock=clock).read_text())
    assert document["schema"] == "gatewarden.incident-timeline/v1"
    assert [e["seq"] for e in document["entries"]] == [e.seq for e in timeline.entries]
    assert document["figures"]["time_to_resolve_s"] == 900
    assert json.loads(timeline_json(store, INC))["entries"] == document["entries"]
    for body in (text, html, json.dumps(document)):
        assert SECRET not in body and SLACK_TOKEN not in body
    written = store.events(types=[EventType.REPORT_WRITTEN.value])
    assert [(e.payload["format"], e.ts) for e in written] == [
        ("md", T0 + 1000),
        ("html", T0 + 1000),
        ("json", T0 + 1000),
    ]
    write_report(store, INC, tmp_path, clock=clock)  # same state: no second record
    assert len(store.events(types=[EventType.REPORT_WRITTEN.value])) == 3
    assert not list(tmp_path.glob(".incident-*"))  # no temp files left behind


def test_raw_key_in_a_scope_is_redacted_everywhere(store: SQLiteStore) -> None:
    timeline = build_timeline(store, INC)
    row = next(a for a in timeline.alerts if a.fingerprint == KEY_FP)
    assert row.scope == "team=search,api_key=<redacted>"
    assert timeline.impact.affected["api_key"] == {"<redacted>": 0}
    for fmt in ("md", "html", "json"):
        assert SECRET not in render(timeline, fmt=fmt)


def test_report_stage_writes_every_format_on_resolution(tmp_path: Path) -> None:
    store, clock = SQLiteStore(":memory:"), VirtualClock(T0 + 900)
    stage = ReportStage(store, tmp_path / "reports", clock)
    assert isinstance(stage, Stage)
    tick = Tick(
        now=clock.now(), start=clock.now(), records=pd.DataFrame(), events=store.append(lifecycle())
    )
    stage.run(tick)
    assert [(e.type, e.payload["format"]) for e in tick.events[-3:]] == [
        (EventType.REPORT_WRITTEN, "md"),
        (EventType.REPORT_WRITTEN, "html"),
        (EventType.REPORT_WRITTEN, "json"),
    ]
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == [
        f"incident-{INC}.html",
        f"incident-{INC}.json",
        f"incident-{INC}.md",
    ]
    quiet = Tick(now=clock.now(), start=clock.now(), records=pd.DataFrame(), events=[])
    stage.run(quiet)
    assert quiet.events == []


def test_unwritable_directory_is_logged_not_fatal(tmp_path: Path) -> None:
    store, clock = SQLiteStore(":memory:"), VirtualClock(T0 + 900)
    blocker = tmp_path / "reports"
    blocker.write_text("a file where the directory should be")
    stage = ReportStage(store, blocker, clock)
    tick = Tick(
        now=clock.now(), start=clock.now(), records=pd.DataFrame(), events=store.append(lifecycle())
    )
    before = len(tick.events)
    stage.run(tick)
    assert len(tick.events) == before
    assert store.events(types=[EventType.REPORT_WRITTEN.value]) == []


def test_unknown_format_and_unsafe_ids(store: SQLiteStore, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        ReportStage(store, tmp_path, VirtualClock(T0), formats=["pdf"])
    with pytest.raises(ValueError):
        render(build_timeline(store, INC), fmt="pdf")
    s = SQLiteStore(":memory:")
    s.append([e.model_copy(update={"incident_id": "../evil/inc"}) for e in lifecycle()])
    path = write_report(s, "../evil/inc", tmp_path, clock=VirtualClock(T0))
    assert path.parent == tmp_path and path.name == "incident-.._evil_inc.md"


def test_templates_autoescape_html_not_markdown() -> None:
    env = environment()
    assert env.from_string("{{ x }}").render(x="<b>") == "<b>"
    assert env.autoescape("report.html.j2") is True  # type: ignore[operator]
    assert env.autoescape("report.md.j2") is False  # type: ignore[operator]


def test_markup_in_payloads_is_escaped() -> None:
    s = SQLiteStore(":memory:")
    events = lifecycle()
    events[1] = events[1].model_copy(
        update={"payload": {**events[1].payload, "title": "<script>alert(1)</script> | pipe"}}
    )
    s.append(events)
    timeline = build_timeline(s, INC)
    html = render(timeline, fmt="html")
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    md = render(timeline, fmt="md")
    assert "<script>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt; \\| pipe" in md
