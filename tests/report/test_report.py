from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest

from gatewarden.clock import VirtualClock
from gatewarden.models import Event, EventType
from gatewarden.notify.console import ConsoleNotifier
from gatewarden.notify.outbox import NotifyStage
from gatewarden.protocols import Stage, Tick
from gatewarden.report import (
    IncidentNotFound,
    ReportStage,
    build_timeline,
    render,
    timeline_json,
    write_report,
)
from gatewarden.report.render import md_escape
from gatewarden.store.sqlite import SQLiteStore
from tests.notify.factory import INCIDENT, PLANTED_SECRET, T0, lifecycle

EXPECTED = [
    (
        T0,
        "alert.fired",
        "alert fired: error_rate on provider=openai (observed 0.31 vs expected 0.01 over 5m)",
        "detector:robust_z",
    ),
    (
        T0,
        "incident.opened",
        "incident opened: error_rate on provider=openai — error_rate 0.31 vs baseline 0.01",
        "gatewarden",
    ),
    (
        T0 + 30,
        "alert.fired",
        "alert fired: ttft on provider=openai,model=gpt-4o "
        "(observed 4,200 vs expected 800 over 5m)",
        "detector:robust_z",
    ),
    (
        T0 + 30,
        "alert.grouped",
        "alert joined: ttft on provider=openai,model=gpt-4o — "
        "related to error_rate on provider=openai",
        "gatewarden",
    ),
    (
        T0 + 30,
        "incident.severity_changed",
        "severity changed to CRITICAL — ttft alert",
        "gatewarden",
    ),
    (
        T0 + 45,
        "playbook.started",
        "playbook provider_failover started (approve mode)",
        "playbook:provider_failover",
    ),
    (
        T0 + 45,
        "approval.requested",
        "approval needed: step 0 of run run-1",
        "playbook:provider_failover",
    ),
    (T0 + 120, "approval.granted", "approval granted by U123 (step 0) — looks right", "U123"),
    (
        T0 + 121,
        "action.intended",
        "applying step 0: route_fallback(provider=openai, "
        "to=anthropic, api_secret=<redacted>) — route provider=openai to anthropic",
        "playbook:provider_failover",
    ),
    (T0 + 122, "action.applied", "applied step 0 — fallback enabled", "playbook:provider_failover"),
    (
        T0 + 180,
        "verification.passed",
        "verification passed (step 0) — error_rate 0.01 below 0.05",
        "playbook:provider_failover",
    ),
    (T0 + 180, "incident.mitigated", "mitigated by route_fallback", "playbook:provider_failover"),
    (T0 + 181, "playbook.finished", "playbook finished: succeeded", "playbook:provider_failover"),
    (
        T0 + 600,
        "incident.resolved",
        "incident resolved — every member alert resolved",
        "gatewarden",
    ),
]


@pytest.fixture
def store() -> SQLiteStore:
    s = SQLiteStore(":memory:")
    s.append(lifecycle())
    s.append(lifecycle("inc-other", T0 + 5))  # another incident must not leak in
    return s


def test_timeline_order_and_figures(store: SQLiteStore) -> None:
    timeline = build_timeline(store, INCIDENT)
    assert [(e.ts, e.type, e.summary, e.actor) for e in timeline.entries] == EXPECTED
    f = timeline.figures
    assert f.first_anomalous_at == T0 - 60
    assert f.time_to_detect_s == 60
    assert f.time_to_acknowledge_s == 120
    assert f.time_to_mitigate_s == 180
    assert f.time_to_resolve_s == 600
    assert f.impact_duration_s == 660
    assert timeline.incident.severity.value == "critical"
    assert timeline.impact["Root cause"] == "error_rate on provider=openai"
    assert timeline.impact["Observed"] == "0.31"
    assert [r.state.value for r in timeline.runs] == ["succeeded"]


def test_acknowledged_event_counts_when_earlier_than_approval(store: SQLiteStore) -> None:
    store.append(
        [
            Event(
                ts=T0 + 20,
                type=EventType.INCIDENT_ACKNOWLEDGED,
                incident_id=INCIDENT,
                payload={"by": "U777"},
            )
        ]
    )
    timeline = build_timeline(store, INCIDENT)
    assert timeline.figures.time_to_acknowledge_s == 20
    ack = next(e for e in timeline.entries if e.type == "incident.acknowledged")
    assert ack.actor == "U777" and ack.summary == "acknowledged by U777"


def test_open_incident_has_no_resolution_figures() -> None:
    s = SQLiteStore(":memory:")
    s.append(lifecycle()[:5])
    f = build_timeline(s, INCIDENT).figures
    assert f.time_to_detect_s == 60
    assert f.time_to_acknowledge_s is None and f.time_to_resolve_s is None
    assert "| Time to resolve | — |" in render(build_timeline(s, INCIDENT))


def test_unknown_incident(store: SQLiteStore) -> None:
    with pytest.raises(IncidentNotFound):
        build_timeline(store, "inc-missing")


def test_write_report_markdown_contains_every_entry(store: SQLiteStore, tmp_path: Path) -> None:
    clock = VirtualClock(T0 + 700)
    path = write_report(store, INCIDENT, tmp_path, clock=clock)
    assert path == tmp_path / f"incident-{INCIDENT}.md"
    text = path.read_text()
    for _ts, type_, summary, actor in EXPECTED:
        assert f"`{type_}` | {md_escape(summary)} | {md_escape(actor)} |" in text
    assert "| Time to detect | 60s |" in text
    assert "| Time to acknowledge | 2m |" in text
    assert "| Time to mitigate | 3m |" in text
    assert "| Time to resolve | 10m |" in text
    assert "# Incident inc-1: error_rate on provider=openai" in text
    assert "api_secret=&lt;redacted&gt;" in text
    assert PLANTED_SECRET not in text
    written = store.events(types=[EventType.REPORT_WRITTEN.value])
    assert len(written) == 1
    assert written[0].payload == {"path": str(path), "format": "md"}
    assert written[0].ts == T0 + 700
    write_report(store, INCIDENT, tmp_path, clock=clock)  # same state: no second record
    assert len(store.events(types=[EventType.REPORT_WRITTEN.value])) == 1
    assert not list(tmp_path.glob(".incident-*"))  # no temp files left behind


def test_timeline_json(store: SQLiteStore) -> None:
    data = json.loads(timeline_json(store, INCIDENT))
    assert data["figures"]["time_to_resolve_s"] == 600
    assert [e["type"] for e in data["entries"]] == [t for _, t, _, _ in EXPECTED]
    assert PLANTED_SECRET not in json.dumps(data)


def test_report_stage_writes_on_resolution_and_skips_notifications(tmp_path: Path) -> None:
    store, clock = SQLiteStore(":memory:"), VirtualClock(T0 + 600)
    notify = NotifyStage(store, [ConsoleNotifier(io.StringIO())], clock)
    stage = ReportStage(store, tmp_path / "reports", clock)
    assert isinstance(stage, Stage)
    tick = Tick(
        now=clock.now(), start=clock.now(), records=pd.DataFrame(), events=store.append(lifecycle())
    )
    notify.run(tick)
    stage.run(tick)
    assert tick.events[-1].type is EventType.REPORT_WRITTEN
    report = (tmp_path / "reports" / f"incident-{INCIDENT}.md").read_text()
    assert "notification." not in report
    assert "12 delivered, 0 failed attempts, 12 queued." in report
    quiet = Tick(now=clock.now(), start=clock.now(), records=pd.DataFrame(), events=[])
    stage.run(quiet)
    assert quiet.events == []


def test_unknown_format_and_unsafe_ids(store: SQLiteStore, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        ReportStage(store, tmp_path, VirtualClock(T0), fmt="pdf")
    s = SQLiteStore(":memory:")
    s.append(lifecycle("../evil/inc"))
    path = write_report(s, "../evil/inc", tmp_path, clock=VirtualClock(T0))
    assert path.parent == tmp_path and path.name == "incident-.._evil_inc.md"


def test_templates_autoescape_html_not_markdown() -> None:
    from gatewarden.report.render import environment

    env = environment()
    assert env.from_string("{{ x }}").render(x="<b>") == "<b>"
    assert env.autoescape("report.html.j2") is True  # type: ignore[operator]
    assert env.autoescape("report.md.j2") is False  # type: ignore[operator]
