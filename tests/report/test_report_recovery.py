"""No report is lost: a resolution whose report was never written (the daemon died in between)
is reported when the daemon starts again, including through ``daemon.build``."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pandas as pd
import pytest

from gatewarden.clock import VirtualClock
from gatewarden.config import DaemonConfig
from gatewarden.daemon import build
from gatewarden.gateways import InMemoryGateway
from gatewarden.models import Event, EventType
from gatewarden.protocols import Tick
from gatewarden.report import ReportStage, unreported, write_reports
from gatewarden.store.sqlite import SQLiteStore
from tests.report.lifecycle import INC, T0, lifecycle

REPO = Path(__file__).resolve().parents[2]
NOW = T0 + 2000


def _quiet(clock: VirtualClock) -> Tick:
    return Tick(now=clock.now(), start=clock.now(), records=pd.DataFrame(), events=[])


def _written(store: SQLiteStore) -> list[tuple[str | None, str]]:
    events = store.events(types=[EventType.REPORT_WRITTEN.value])
    return [(e.incident_id, e.payload["format"]) for e in events]


def _event(type_: EventType, ts: float, incident: str = INC) -> Event:
    return Event(ts=ts, type=type_, incident_id=incident, payload={"reason": "test"})


def test_a_resolution_left_without_a_report_is_reported_on_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, clock = SQLiteStore(":memory:"), VirtualClock(NOW)
    store.append(lifecycle())  # resolved at T0 + 900; the daemon died before the report
    assert unreported(store) == [INC]
    stage = ReportStage(store, tmp_path / "reports", clock)
    tick = _quiet(clock)
    with caplog.at_level(logging.WARNING):
        stage.run(tick)
    assert "1 resolved incident(s) have no report yet" in caplog.text
    assert [(e.type, e.payload["format"]) for e in tick.events] == [
        (EventType.REPORT_WRITTEN, "md"),
        (EventType.REPORT_WRITTEN, "html"),
        (EventType.REPORT_WRITTEN, "json"),
    ]
    assert (tmp_path / "reports" / f"incident-{INC}.html").is_file()
    assert unreported(store) == []
    again = _quiet(clock)
    ReportStage(store, tmp_path / "reports", clock).run(again)  # a second restart
    assert again.events == []


def test_a_report_cut_short_between_formats_is_finished(tmp_path: Path) -> None:
    store, clock = SQLiteStore(":memory:"), VirtualClock(NOW)
    store.append(lifecycle())
    write_reports(store, INC, tmp_path, formats=["md"], clock=clock)  # then the crash
    assert unreported(store) == [INC]
    assert unreported(store, ["md"]) == []
    ReportStage(store, tmp_path, clock).run(_quiet(clock))
    # The md of the same incident state is the same record (its key), the others are new.
    assert sorted(fmt for _, fmt in _written(store)) == ["html", "json", "md"]
    assert unreported(store) == []


def test_only_the_latest_resolution_counts(tmp_path: Path) -> None:
    store, clock = SQLiteStore(":memory:"), VirtualClock(NOW)
    store.append(lifecycle())
    write_reports(store, INC, tmp_path, clock=clock)  # reported...
    store.append([_event(EventType.INCIDENT_REOPENED, T0 + 1000)])  # ...reopened
    assert unreported(store) == []  # open again: nothing to report yet
    store.append([_event(EventType.INCIDENT_RESOLVED, T0 + 1500)])  # resolved, then the crash
    assert unreported(store) == [INC]
    stage = ReportStage(store, tmp_path, clock)
    stage.run(_quiet(clock))
    assert len(_written(store)) == 6 and unreported(store) == []


def test_a_failed_write_is_retried_later_not_lost(tmp_path: Path) -> None:
    store, clock = SQLiteStore(":memory:"), VirtualClock(NOW)
    store.append(lifecycle())
    blocker = tmp_path / "reports"
    blocker.write_text("a file where the directory should be")
    stage = ReportStage(store, blocker, clock)
    stage.run(_quiet(clock))
    assert _written(store) == []
    blocker.unlink()  # the disk is fixed
    clock.advance(30)
    stage.run(_quiet(clock))
    assert _written(store) == []  # backing off: the first retry is a minute later
    clock.advance(60)
    stage.run(_quiet(clock))
    assert len(_written(store)) == 3


def test_the_assembled_daemon_reports_what_the_last_run_left_unreported(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "gw.db"))
    # The fixture's outbox records are abbreviated (reports only count them): left out here,
    # where the real notify stage reads the outbox.
    store.append([e for e in lifecycle() if not e.type.value.startswith("notification.")])
    config = DaemonConfig.model_validate(
        {
            "detectors_dir": str(REPO / "detectors"),
            "playbooks_dir": str(REPO / "playbooks"),
            "reports_dir": str(tmp_path / "reports"),
            "notify": {"console": False},
        }
    )
    clock = VirtualClock(NOW)
    assembly = build(
        config,
        clock=clock,
        env={},
        stream=io.StringIO(),
        sources=[],
        gateway=InMemoryGateway(),
        store=store,
    )
    try:
        assembly.pipeline.tick()
        assert sorted(_written(store)) == [(INC, "html"), (INC, "json"), (INC, "md")]
        assert (tmp_path / "reports" / f"incident-{INC}.md").is_file()
    finally:
        assembly.close()
