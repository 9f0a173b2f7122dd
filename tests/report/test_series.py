"""SeriesRecorder: what it records for open incidents, from frames and history, and its bounds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from gatewarden.aggregate import SeriesHistory, aggregate
from gatewarden.errors import StoreError
from gatewarden.ingest.request_log import records_frame
from gatewarden.models import Event, EventType, fingerprint
from gatewarden.protocols import Stage, Tick
from gatewarden.report.impact import compute_impact, impact_rows
from gatewarden.report.series import SeriesRecorder, alert_series_id, impact_id, load_series
from gatewarden.store.sqlite import SQLiteStore

T0 = 1_750_000_000.0
STEP = 15.0
INC = "inc-series"
OPENAI = {"provider": "openai"}
GPT4O = {"provider": "openai", "model": "gpt-4o"}
ROOT_FP = fingerprint("error_rate", OPENAI)
CHILD_FP = fingerprint("error_rate", GPT4O)


def calls(
    ts: float, provider: str, n: int, errors: int = 0, cost: float = 0.01
) -> list[dict[str, Any]]:
    """``n`` calls in the tick ending at ``ts``; the first ``errors`` fail, keys k0, k1, k2."""
    return [
        {
            "ts": ts - STEP + 1 + i * 0.01,
            "request_id": f"{provider}-{ts}-{i}",
            "api_key": f"k{i % 3}",
            "team": f"team{i % 3}",
            "workflow": "chat",
            "provider": provider,
            "model": "gpt-4o" if provider == "openai" else "claude",
            "requested_model": "gpt-4o",
            "status": 500 if i < errors else 200,
            "latency_ms": 900.0 if i < errors else 400.0,
            "ttft_ms": 100.0,
            "input_tokens": 10,
            "output_tokens": 10,
            "cost_usd": cost,
            "fallback": False,
            "retries": 0,
        }
        for i in range(n)
    ]


class Driver:
    """Runs the recorder as the pipeline would: aggregate, history push (detect), events
    appended (correlate), then the recorder."""

    def __init__(self, store: SQLiteStore, recorder: SeriesRecorder, history: SeriesHistory):
        self.store, self.recorder, self.history = store, recorder, history
        self.now = T0

    def tick(self, records: list[dict[str, Any]], events: Sequence[Event] = ()) -> Tick:
        frame = records_frame(records)
        tick = Tick(now=self.now, start=self.now - STEP, records=frame)
        tick.frames.update(aggregate(frame, start=tick.start, end=tick.now))
        self.history.push(tick.now, tick.frames)
        tick.events.extend(
            self.store.append([e.model_copy(update={"ts": self.now}) for e in events])
        )
        self.recorder.run(tick)
        self.now += STEP
        return tick

    def healthy(self, n: int) -> None:
        for _ in range(n):
            self.tick(calls(self.now, "openai", 10) + calls(self.now, "anthropic", 5))


def fired(fp: str, scope: dict[str, str], metric: str = "error_rate") -> Event:
    evidence = {"metric": metric, "observed": 0.6, "expected": 0.0, "score": 9, "window_s": 15}
    payload = {"fingerprint": fp, "kind": "error_rate", "scope": scope, "evidence": evidence}
    return Event(ts=0, type=EventType.ALERT_FIRED, payload=payload)


def opened() -> Event:
    payload = {
        "kinds": ["error_rate"],
        "scope": OPENAI,
        "severity": "critical",
        "title": "error rate on provider=openai",
        "root_cause": ROOT_FP,
        "alerts": [ROOT_FP],
    }
    return Event(ts=0, type=EventType.INCIDENT_OPENED, incident_id=INC, payload=payload)


def inhibited() -> Event:
    payload = {"fingerprint": CHILD_FP, "kind": "error_rate", "scope": GPT4O, "by": INC}
    return Event(ts=0, type=EventType.ALERT_INHIBITED, incident_id=INC, payload=payload)


def resolved() -> Event:
    return Event(ts=0, type=EventType.INCIDENT_RESOLVED, incident_id=INC, payload={"reason": "ok"})


@pytest.fixture
def driver() -> Driver:
    store, history = SQLiteStore(":memory:"), SeriesHistory(maxlen=10)
    recorder = SeriesRecorder(store, history, lookback_ticks=4)
    assert isinstance(recorder, Stage)
    return Driver(store, recorder, history)


def test_records_lookback_members_and_stops_after_resolution(driver: Driver) -> None:
    driver.healthy(5)
    assert driver.store.get_state(f"series:{INC}") is None  # nothing open, nothing recorded
    opened_at = driver.now
    driver.tick(
        calls(driver.now, "openai", 10, errors=6) + calls(driver.now, "anthropic", 5),
        [fired(ROOT_FP, OPENAI), opened()],
    )
    doc = load_series(driver.store, INC)
    assert doc is not None
    root = doc.get(alert_series_id(ROOT_FP, "error_rate"))
    assert root is not None and root.role == "alert" and root.scope == OPENAI
    # Lookback: the 3 healthy ticks before, then the opening tick itself (4 = lookback_ticks).
    assert root.t == [opened_at - 3 * STEP, opened_at - 2 * STEP, opened_at - STEP, opened_at]
    assert root.y == [0.0, 0.0, 0.0, 0.6]
    # The symptom joins a tick later, with its own lookback from the history.
    driver.tick(
        calls(driver.now, "openai", 10, errors=5) + calls(driver.now, "anthropic", 5),
        [fired(CHILD_FP, GPT4O), inhibited()],
    )
    # Failover: openai gets no traffic. A ratio has no value; a count is zero, not unknown.
    driver.tick(calls(driver.now, "anthropic", 15))
    resolved_at = driver.now
    driver.tick(calls(driver.now, "anthropic", 15), [resolved()])
    driver.tick(calls(driver.now, "anthropic", 15))  # after resolution: not recorded
    doc = load_series(driver.store, INC)
    assert doc is not None
    root = doc.get(alert_series_id(ROOT_FP, "error_rate"))
    child = doc.get(alert_series_id(CHILD_FP, "error_rate"))
    assert root is not None and child is not None
    assert root.y[-4:] == [0.6, 0.5, None, None] and root.t[-1] == resolved_at
    assert child.t[0] == opened_at - 2 * STEP and child.y[-3:] == [0.5, None, None]
    requests = doc.impact("requests", OPENAI)
    errors = doc.impact("errors", OPENAI)
    everywhere = doc.impact("requests", {})
    assert requests is not None and errors is not None and everywhere is not None
    assert requests.y == [10, 10, 10, 10, 10, 0, 0]
    assert errors.y == [0, 0, 0, 6, 5, 0, 0]
    assert everywhere.y == [15] * 7
    assert doc.affected["api_key"] == {"k0": 4, "k1": 4, "k2": 3}  # the 11 failed calls only
    assert doc.affected["team"] == {"team0": 4, "team1": 4, "team2": 3}
    assert driver.recorder.open_incidents() == []

    impact = compute_impact(doc, scope=OPENAI, start=opened_at, end=resolved_at)
    assert impact.requests == 20 and impact.failed_requests == 11
    assert impact.baseline_error_rate == 0.0 and impact.failed_above_baseline == 11
    assert impact.cost_usd == pytest.approx(0.2) and impact.extra_cost_usd == pytest.approx(-0.2)
    assert impact.latency_p95_baseline_ms == 400.0 and impact.latency_p95_peak_ms == 900.0
    rows = dict(impact_rows(impact))
    assert rows["Failed requests"].startswith("11 of 20 requests (11 above the baseline")
    assert rows["API keys affected"] == "3: k0 (4), k1 (4), k2 (3)"
    assert rows["Spend above baseline"].startswith("none: $0.20 spent in the window")


def test_restart_resumes_the_same_document(driver: Driver) -> None:
    driver.healthy(2)
    driver.tick(calls(driver.now, "openai", 10, errors=6), [fired(ROOT_FP, OPENAI), opened()])
    before = load_series(driver.store, INC)
    assert before is not None
    restarted = SeriesRecorder(driver.store, driver.history, lookback_ticks=4)
    assert restarted.open_incidents() == [INC]
    driver.recorder = restarted
    driver.tick(calls(driver.now, "openai", 10, errors=2))
    after = load_series(driver.store, INC)
    assert after is not None
    root_before = before.get(alert_series_id(ROOT_FP, "error_rate"))
    root_after = after.get(alert_series_id(ROOT_FP, "error_rate"))
    assert root_before is not None and root_after is not None
    assert root_after.t == [*root_before.t, driver.now - STEP]
    assert root_after.y == [*root_before.y, 0.2]


def test_bounded_points_and_series(driver: Driver) -> None:
    driver.recorder = SeriesRecorder(
        driver.store, driver.history, lookback_ticks=4, max_points=3, max_series=2
    )
    driver.healthy(3)
    driver.tick(calls(driver.now, "openai", 10, errors=6), [fired(ROOT_FP, OPENAI), opened()])
    for _ in range(4):
        driver.tick(calls(driver.now, "openai", 10, errors=6))
    doc = load_series(driver.store, INC)
    assert doc is not None
    assert len(doc.series) == 2 and doc.skipped_series > 0
    for series in doc.series:
        assert len(series.t) == len(series.y) == 3
        assert series.dropped == 5  # 4 lookback points (opening tick included) + 4 ticks, 3 kept
        assert series.t[-1] == driver.now - STEP
    impact = compute_impact(doc, scope=OPENAI, start=T0 + 3 * STEP, end=None)
    assert any("lower bounds" in note for note in impact.notes)


def test_scopes_without_a_level_are_skipped_and_bad_state_is_ignored(driver: Driver) -> None:
    source = {"source": "request_log"}
    fp = fingerprint("gateway_unreachable", source)
    payload = {
        "kinds": ["gateway_unreachable"],
        "scope": source,
        "severity": "critical",
        "root_cause": fp,
        "alerts": [fp],
    }
    event = Event(ts=0, type=EventType.INCIDENT_OPENED, incident_id="inc-src", payload=payload)
    driver.tick([], [event])
    doc = load_series(driver.store, "inc-src")
    assert doc is not None
    # No frame has a "source" label: only all-traffic impact series are recorded.
    assert {s.id for s in doc.series} == {impact_id(m, {}) for m in ("requests", "errors", "cost")}
    driver.store.put_state("series:inc-broken", "{not json")
    assert load_series(driver.store, "inc-broken") is None


def test_invalid_bounds() -> None:
    with pytest.raises(ValueError):
        SeriesRecorder(SQLiteStore(":memory:"), None, max_points=0)


def test_reopened_incident_fills_the_ticks_it_missed(driver: Driver) -> None:
    driver.healthy(2)
    driver.tick(calls(driver.now, "openai", 10, errors=6), [fired(ROOT_FP, OPENAI), opened()])
    driver.tick(calls(driver.now, "openai", 10), [resolved()])
    quiet_at = driver.now
    driver.tick(calls(driver.now, "openai", 7))  # resolved: not recorded as it happens
    reopened = Event(ts=0, type=EventType.INCIDENT_REOPENED, incident_id=INC, payload={})
    driver.tick(calls(driver.now, "openai", 10, errors=4), [fired(ROOT_FP, OPENAI), reopened])
    doc = load_series(driver.store, INC)
    assert doc is not None
    requests = doc.impact("requests", OPENAI)
    assert requests is not None
    assert requests.t[-2:] == [quiet_at, quiet_at + STEP] and requests.y[-2:] == [7, 10]
    assert driver.recorder.open_incidents() == [INC]


class FlakyStore(SQLiteStore):
    """A real store whose keyed-state writes fail while ``full`` (a full disk)."""

    full = False

    def put_state(self, name: str, value: str) -> None:
        if self.full:
            raise StoreError("database or disk is full")
        super().put_state(name, value)


def test_a_failed_write_is_survived_and_caught_up() -> None:
    store, history = FlakyStore(":memory:"), SeriesHistory(maxlen=10)
    driver = Driver(store, SeriesRecorder(store, history, lookback_ticks=2), history)
    driver.healthy(2)
    driver.tick(calls(driver.now, "openai", 10, errors=6), [fired(ROOT_FP, OPENAI), opened()])
    store.full = True
    driver.tick(calls(driver.now, "openai", 10, errors=5))  # must not raise
    store.full = False
    driver.tick(calls(driver.now, "openai", 10, errors=4))
    doc = load_series(store, INC)
    assert doc is not None
    errors = doc.impact("errors", OPENAI)
    assert errors is not None and errors.y == [0, 6, 5, 4]
