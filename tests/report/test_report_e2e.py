"""Reports of real incidents: the demo's (daemon assembly, simulator, auto-approved failover)
and a multi-fault replay (backtest-style: detection and correlation only), each checked against
the event log and, for the replay, against the raw request records."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gatewarden.aggregate import PROVIDER_LEVELS, AggregateStage, SeriesHistory, level_for
from gatewarden.clock import VirtualClock
from gatewarden.correlate import CorrelateStage
from gatewarden.detect import DetectStage, load_detector_specs
from gatewarden.detect.spec import DetectorSpec
from gatewarden.ingest.request_log import records_frame
from gatewarden.models import EventType, Incident, IncidentStatus
from gatewarden.pipeline import Pipeline
from gatewarden.projections import incidents_from_events
from gatewarden.protocols import Batch, Store
from gatewarden.report import ReportStage, SeriesRecorder, build_timeline, write_report
from gatewarden.simulator import KeySurge, ProviderOutage, Scenario, Simulator, TtftDegradation
from gatewarden.store.sqlite import SQLiteStore
from tests.report.checks import (
    PNG_MAGIC,
    assert_entries_match_events,
    assert_self_contained,
    incident_events,
    png_size,
)
from tests.report.harness import REPO, Harness, short_outage, start

TICK = 15.0


def reports_of(store: Store, incident_id: str) -> dict[str, Path]:
    written = store.events(incident_id=incident_id, types=[EventType.REPORT_WRITTEN])
    return {e.payload["format"]: Path(e.payload["path"]) for e in written}


def check_files(store: Store, incident: Incident, secrets: list[str]) -> None:
    """md links real PNGs next to it, html is one self-contained file, json is the timeline."""
    paths = reports_of(store, incident.id)
    assert set(paths) == {"md", "html", "json"}, incident.id
    timeline = build_timeline(store, incident.id)
    md = paths["md"].read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", md)
    assert links, "a report without charts"
    for link in links:
        png = (paths["md"].parent / link).read_bytes()
        assert png[:8] == PNG_MAGIC and len(png) > 5000 and png_size(png)[0] >= 400
    images = assert_self_contained(paths["html"].read_text())
    assert len(images) == len(links)
    document = json.loads(paths["json"].read_text())
    assert [e["seq"] for e in document["entries"]] == [e.seq for e in timeline.entries]
    assert document["incident"]["id"] == incident.id
    for path in paths.values():
        text = path.read_text()
        for secret in secrets:
            assert secret not in text, (secret, path)


# -- the demo's incident -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """The demo's configuration (shipped detectors and playbooks, demo auto-approval) and its
    OpenAI outage, moved earlier so fewer quiet ticks precede it."""
    harness = start(tmp_path_factory.mktemp("demo"), short_outage(minutes=25), auto_approve=True)

    def done() -> bool:
        openai = [i for i in incidents(harness.assembly.store) if i.scope == {"provider": "openai"}]
        return bool(openai) and bool(reports_of(harness.assembly.store, openai[0].id))

    try:
        harness.run_until(done, max_ticks=120)
        yield harness
    finally:
        harness.close()


def incidents(store: Store) -> list[Incident]:
    return incidents_from_events(store.events())


def test_demo_incident_report(demo: Harness) -> None:
    store = demo.assembly.store
    incident = next(i for i in incidents(store) if i.scope == {"provider": "openai"})
    assert incident.status is IncidentStatus.RESOLVED
    timeline = build_timeline(store, incident.id)
    assert_entries_match_events(timeline, incident_events(store, incident.id))
    types = [e.type for e in timeline.entries]
    for milestone in (
        "anomaly.first",
        "incident.opened",
        "approval.requested",
        "approval.granted",
        "action.intended",
        "action.applied",
        "verification.passed",
        "incident.mitigated",
        "incident.resolved",
    ):
        assert milestone in types, milestone
    granted = next(e for e in timeline.entries if e.type == "approval.granted")
    assert granted.actor == "demo-auto-approver"
    applied = next(e for e in timeline.entries if e.type == "action.applied")
    assert applied.summary.endswith("HTTP 200")
    assert ("POST", "/model/update") in demo.admin_calls()
    f = timeline.figures
    assert f.acknowledged_by == "demo-auto-approver" and f.time_to_mitigate_s is not None
    # Impact: from the recorded series, consistent with them and with the correlator's tally.
    impact = timeline.impact
    assert impact.failed_requests is not None and impact.failed_requests > 0
    assert impact.requests is not None and impact.requests >= impact.failed_requests
    assert impact.latency_p95_baseline_ms is not None and impact.extra_cost_usd is not None
    assert impact.affected.get("api_key"), "keys affected were recorded"
    check_files(store, incident, [demo.scenario.master_key])


def test_every_demo_incident_renders(demo: Harness, tmp_path: Path) -> None:
    store = demo.assembly.store
    found = incidents(store)
    assert found
    for incident in found:
        assert_entries_match_events(
            build_timeline(store, incident.id), incident_events(store, incident.id)
        )
        if incident.status is IncidentStatus.OPEN:  # still open when the demo stops: on demand
            path = write_report(store, incident.id, tmp_path, fmt="html", clock=demo.clock)
            assert_self_contained(path.read_text())
        else:
            check_files(store, incident, [demo.scenario.master_key])


# -- a multi-fault replay ------------------------------------------------------------------------
class ReplaySource:
    """Serves a ts-sorted records frame: each pull returns the records in ``[last, until)``."""

    name = "replay"

    def __init__(self, records: pd.DataFrame) -> None:
        self.records = records.sort_values("ts", kind="stable").reset_index(drop=True)
        self._ts = self.records["ts"].to_numpy()
        self._pos = 0

    def pull(self, until: float) -> Batch:
        end = int(np.searchsorted(self._ts, until, side="left"))
        batch = Batch(records=self.records.iloc[self._pos : end])
        self._pos = end
        return batch


@dataclass
class Replay:
    store: SQLiteStore
    records: pd.DataFrame
    scenario: Scenario


#: A TTFT and a traffic spec from the committed building blocks, so this test exercises reports
#: of several incident kinds whatever the shipped detectors/ holds.
EXTRA_SPECS = """
- name: model-ttft
  kind: ttft
  level: model
  metric: ttft_p95
  algorithm: robust_ewma
  params: {alpha: 0.1, warmup: 8, rel_floor: 0.2}
  filter: {threshold: 6, min_volume: 10}
  severity: warning
- name: key-traffic
  kind: traffic
  level: api_key
  metric: requests
  algorithm: robust_ewma
  params: {alpha: 0.1, warmup: 8, rel_floor: 0.3, abs_floor: 2}
  filter: {threshold: 8, min_value: 20}
  severity: warning
"""


def _multi_kind_specs(directory: Path) -> list[DetectorSpec]:
    (directory / "error-rate.yaml").write_text((REPO / "detectors" / "error-rate.yaml").read_text())
    (directory / "extra.yaml").write_text(EXTRA_SPECS)
    return load_detector_specs(directory)


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Replay:
    scenario = Scenario(
        name="multi-fault",
        seed=11,
        duration_s=32 * 60,
        base_rps=8.0,
        faults=[
            ProviderOutage(start=4 * 60, duration=6 * 60, provider="openai", error_rate=0.5),
            TtftDegradation(start=14 * 60, duration=6 * 60, provider="anthropic", factor=3.0),
            KeySurge(start=24 * 60, duration=5 * 60, api_key="support-web", factor=15.0),
        ],
    )
    records = records_frame(
        Simulator(scenario, metrics=False).generate(scenario.start, scenario.end)
    )
    store, clock, history = SQLiteStore(":memory:"), VirtualClock(scenario.start), SeriesHistory()
    source = ReplaySource(records)
    pipeline = Pipeline(
        [source],
        [
            AggregateStage(),
            DetectStage(_multi_kind_specs(tmp_path_factory.mktemp("detectors")), history=history),
            CorrelateStage(store),
            SeriesRecorder(store, history),
            ReportStage(store, tmp_path_factory.mktemp("reports"), clock),
        ],
        clock,
        tick_seconds=TICK,
    )
    now = scenario.start
    while now < scenario.end + 6 * 60:  # a quiet tail lets the last incident resolve
        now += TICK
        clock.set(now)
        pipeline.tick(now)
    return Replay(store, source.records, scenario)


def _recount(
    records: pd.DataFrame, scope: dict[str, str], start: float, end: float
) -> tuple[int, int]:
    """Requests and failed requests of ``scope`` in the ticks ``start..end``, from the raw log:
    the tick at ``t`` holds the records of ``[t - 15, t)``."""
    rows = records[(records["ts"] >= start - TICK) & (records["ts"] < end)]
    for label, value in scope.items():
        rows = rows[rows[label] == value]
    if level_for(scope) in PROVIDER_LEVELS:
        rows = rows[rows["provider"] != "gateway"]  # gateway rejections never reached one
    failed = ((rows["status"] >= 500) | (rows["status"] == 429)) & (rows["provider"] != "gateway")
    return len(rows), int(failed.sum())


def test_multi_fault_reports(replay: Replay) -> None:
    found = incidents(replay.store)
    kinds = {kind for incident in found for kind in incident.kinds}
    assert len(found) >= 2 and "error_rate" in kinds and len(kinds) >= 2, found
    for incident in found:
        assert incident.status is IncidentStatus.RESOLVED, incident.id
        timeline = build_timeline(replay.store, incident.id)
        assert_entries_match_events(timeline, incident_events(replay.store, incident.id))
        check_files(replay.store, incident, [])
        impact = timeline.impact
        start, end = impact.window_start, impact.window_end
        assert start is not None and end is not None
        if impact.requests is None:
            continue  # a scope no frame has: the report says "not known"
        assert (impact.requests, impact.failed_requests) == _recount(
            replay.records, dict(incident.scope), start, end
        ), incident.id
        keys = impact.affected.get("api_key", {})
        assert all(name in set(replay.records["api_key"]) for name in keys)
