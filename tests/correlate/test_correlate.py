"""Correlation rules on small hand-built alert streams, asserting the exact incidents."""

from __future__ import annotations

import pandas as pd
import pytest

from gatewarden.correlate import CorrelateConfig, CorrelateStage, related
from gatewarden.correlate.grouping import siblings
from gatewarden.models import Alert, EventType, Evidence, IncidentStatus, Severity, fingerprint
from gatewarden.projections import incidents_from_events
from gatewarden.protocols import Tick
from gatewarden.store import SQLiteStore


def alert(kind: str, ts: float, severity: Severity = Severity.WARNING, **scope: str) -> Alert:
    ev = Evidence(metric="error_rate", observed=0.4, expected=0.01, score=12.0, window_s=15)
    return Alert(kind=kind, scope=scope, detector="t", ts=ts, severity=severity, evidence=ev)


def tick(stage: CorrelateStage, now: float, alerts: list[Alert], clear: set[str]) -> Tick:
    t = Tick(now=now, start=now - 15, records=pd.DataFrame(), alerts=alerts, clear=clear)
    stage.run(t)
    return t


@pytest.fixture
def store() -> SQLiteStore:
    return SQLiteStore(":memory:")


def test_refiring_alert_is_deduplicated(store: SQLiteStore) -> None:
    stage = CorrelateStage(store)
    for i in range(10):
        tick(stage, 100.0 + 15 * i, [alert("error_rate", 100.0 + 15 * i, provider="openai")], set())
    fired = store.events(types=[EventType.ALERT_FIRED])
    assert len(fired) == 1
    assert len(incidents_from_events(store.events())) == 1


def test_provider_outage_groups_model_and_key_alerts_with_provider_as_root(
    store: SQLiteStore,
) -> None:
    stage = CorrelateStage(store)
    tick(stage, 100, [alert("error_rate", 100, provider="openai", model="gpt-4o")], set())
    tick(
        stage,
        115,
        [
            alert("error_rate", 115, provider="openai", model="gpt-4o"),
            alert("error_rate", 115, Severity.CRITICAL, provider="openai"),
            alert("fallback_storm", 115, provider="openai", requested_model="gpt-4o"),
        ],
        set(),
    )
    incidents = incidents_from_events(store.events())
    assert len(incidents) == 1
    inc = incidents[0]
    assert inc.scope == {"provider": "openai"}
    assert inc.root_cause == fingerprint("error_rate", {"provider": "openai"})
    assert set(inc.kinds) == {"error_rate", "fallback_storm"}
    assert len(inc.alerts) == 3
    assert inc.severity is Severity.CRITICAL


def test_unrelated_alerts_open_separate_incidents(store: SQLiteStore) -> None:
    stage = CorrelateStage(store)
    tick(
        stage,
        100,
        [alert("ttft", 100, provider="anthropic"), alert("traffic", 100, team="t1", api_key="k")],
        set(),
    )
    incidents = incidents_from_events(store.events())
    assert sorted(i.kinds[0] for i in incidents) == ["traffic", "ttft"]


def test_open_after_hysteresis_ignores_one_tick_blip(store: SQLiteStore) -> None:
    stage = CorrelateStage(store, CorrelateConfig(open_after_ticks=2))
    a = alert("error_rate", 100, provider="openai")
    tick(stage, 100, [a], set())
    tick(stage, 115, [], {a.fingerprint})
    assert store.events() == []
    tick(stage, 130, [alert("error_rate", 130, provider="openai")], set())
    tick(stage, 145, [alert("error_rate", 145, provider="openai")], set())
    assert len(store.events(types=[EventType.INCIDENT_OPENED])) == 1


def test_resolves_after_good_ticks_and_reopens_on_recurrence(store: SQLiteStore) -> None:
    stage = CorrelateStage(store, CorrelateConfig(resolve_after_ticks=3, reopen_window_s=300))
    a = alert("error_rate", 100, provider="openai")
    tick(stage, 100, [a], set())
    for i in range(1, 3):
        tick(stage, 100 + 15 * i, [], {a.fingerprint})
    assert incidents_from_events(store.events())[0].status is IncidentStatus.OPEN
    tick(stage, 145, [], {a.fingerprint})
    inc = incidents_from_events(store.events())[0]
    assert inc.status is IncidentStatus.RESOLVED and inc.resolved_at == 145
    tick(stage, 200, [alert("error_rate", 200, provider="openai")], set())
    incidents = incidents_from_events(store.events())
    assert len(incidents) == 1 and incidents[0].status is IncidentStatus.OPEN
    assert len(store.events(types=[EventType.INCIDENT_REOPENED])) == 1


def test_no_data_counts_toward_resolution(store: SQLiteStore) -> None:
    stage = CorrelateStage(store, CorrelateConfig(resolve_after_ticks=2))
    tick(stage, 100, [alert("error_rate", 100, provider="openai")], set())
    tick(stage, 115, [], set())
    tick(stage, 130, [], set())
    resolved = store.events(types=[EventType.ALERT_RESOLVED])
    assert [e.payload["reason"] for e in resolved] == ["no data"]


def test_restart_does_not_reopen_known_incident(store: SQLiteStore) -> None:
    stage = CorrelateStage(store)
    tick(stage, 100, [alert("error_rate", 100, provider="openai")], set())
    restarted = CorrelateStage(store)
    tick(restarted, 115, [alert("error_rate", 115, provider="openai")], set())
    tick(restarted, 130, [alert("error_rate", 130, provider="openai", model="gpt-4o")], set())
    assert len(store.events(types=[EventType.INCIDENT_OPENED])) == 1
    assert len(store.events(types=[EventType.ALERT_FIRED])) == 2


def test_related_topology() -> None:
    assert related({"provider": "openai"}, {"provider": "openai", "model": "gpt-4o"})
    assert not related({"provider": "openai"}, {"provider": "azure", "model": "gpt-4o"})
    assert related({"team": "a", "api_key": "k"}, {"team": "a"})
    assert not related({"team": "a"}, {"workflow": "w"})


def test_siblings_topology() -> None:
    assert siblings({"provider": "a", "model": "m1"}, {"provider": "a", "model": "m2"})
    assert siblings({"team": "t", "api_key": "k1"}, {"team": "t", "api_key": "k2"})
    assert not siblings({"provider": "a", "model": "m1"}, {"provider": "b", "model": "m2"})
    assert not siblings({"provider": "a", "model": "m1"}, {"provider": "a", "model": "m1"})
    assert not siblings({"provider": "a"}, {"provider": "a", "model": "m1"})
    assert not siblings({"model": "m1"}, {"model": "m2"})  # no parent label: unrelated


def test_same_kind_on_a_sibling_joins_a_different_kind_does_not(store: SQLiteStore) -> None:
    stage = CorrelateStage(store)
    tick(stage, 100, [alert("ttft", 100, provider="anthropic", model="haiku")], set())
    tick(stage, 160, [alert("ttft", 160, provider="anthropic", model="sonnet")], set())
    tick(stage, 175, [alert("cost", 175, provider="anthropic", model="opus")], set())
    incidents = incidents_from_events(store.events())
    assert sorted(i.kinds for i in incidents) == [("cost",), ("ttft",)]
    [ttft] = [i for i in incidents if i.kinds == ("ttft",)]
    assert len(ttft.alerts) == 2
