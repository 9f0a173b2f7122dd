"""Issue 4 rules: inhibition by learned topology, merging, root cause, silences, impact."""

from __future__ import annotations

import pytest

from gatewarden.correlate import CorrelateConfig, CorrelateStage
from gatewarden.correlate.impact import ImpactConfig
from gatewarden.correlate.silence import Matcher, create_silence, expire_silence
from gatewarden.models import EventType, IncidentStatus, Severity, fingerprint
from gatewarden.projections import incidents_from_events
from gatewarden.store import SQLiteStore

from .helpers import alert, calls, frame, tick

KEYS = [(f"key{i}", f"team{i % 3}") for i in range(12)]


def outage_records(ts: float):  # type: ignore[no-untyped-def]
    """openai failing for every key; the gpt-4o group's primary calls fail and fall back."""
    rows = []
    for key, team in KEYS:
        rows += calls(3, ts, api_key=key, team=team, status=500)
        rows += calls(
            2,
            ts,
            api_key=key,
            team=team,
            status=200,
            provider="anthropic",
            model="claude-sonnet",
            fallback=True,
        )
    rows += calls(20, ts, api_key="other", team="t9", provider="azure", model="gpt-4o")
    return frame(rows)


@pytest.fixture
def store() -> SQLiteStore:
    return SQLiteStore(":memory:")


def _outage_alerts(ts: float) -> list:  # type: ignore[type-arg]
    return [
        alert("error_rate", ts, Severity.CRITICAL, provider="openai"),
        alert("error_rate", ts, provider="openai", model="gpt-4o"),
        alert("fallback_storm", ts, requested_model="gpt-4o"),
        *[alert("error_rate", ts, team=t, api_key=k) for k, t in KEYS],
    ]


def test_provider_outage_is_one_incident_and_symptoms_are_inhibited(store: SQLiteStore) -> None:
    stage = CorrelateStage(store)
    tick(stage, 100, _outage_alerts(100), records=outage_records(90))
    events = store.events()
    incidents = incidents_from_events(events)
    assert len(incidents) == 1
    inc = incidents[0]
    assert inc.scope == {"provider": "openai"}
    assert inc.root_cause == fingerprint("error_rate", {"provider": "openai"})
    assert set(inc.kinds) == {"error_rate", "fallback_storm"}
    fired = [e for e in events if e.type is EventType.ALERT_FIRED]
    inhibited = [e for e in events if e.type is EventType.ALERT_INHIBITED]
    assert len(fired) == 15 and len(inc.alerts) == 15
    assert len(fired) / len(incidents) >= 10  # the noise-reduction target
    assert {e.payload["fingerprint"] for e in inhibited} == {
        e.payload["fingerprint"] for e in fired
    } - {inc.root_cause}
    storm = next(e for e in inhibited if e.payload["kind"] == "fallback_storm")
    assert "went through provider=openai" in storm.payload["reason"]


def test_symptoms_first_then_cause_merges_into_one_incident(store: SQLiteStore) -> None:
    stage = CorrelateStage(store)
    keys = [alert("error_rate", 100, team=t, api_key=k) for k, t in KEYS[:6]]
    tick(stage, 100, keys, records=outage_records(90))
    assert len(store.events(types=[EventType.INCIDENT_OPENED])) >= 2  # teams differ
    tick(
        stage,
        115,
        [*keys, alert("error_rate", 115, Severity.CRITICAL, provider="openai")],
        records=outage_records(105),
    )
    incidents = incidents_from_events(store.events())
    open_ = [i for i in incidents if i.status is IncidentStatus.OPEN]
    assert len(open_) == 1
    assert all(i.merged_into == open_[0].id for i in incidents if i is not open_[0])
    assert open_[0].root_cause == fingerprint("error_rate", {"provider": "openai"})
    assert open_[0].scope == {"provider": "openai"}
    assert len(open_[0].alerts) == 7
    merged = [
        e for e in store.events(types=[EventType.INCIDENT_RESOLVED]) if e.payload.get("merged_into")
    ]
    assert merged and all(e.payload["merged_into"] == open_[0].id for e in merged)


def test_overlapping_unrelated_faults_stay_separate(store: SQLiteStore) -> None:
    stage = CorrelateStage(store)
    rows = calls(
        30, 90, provider="anthropic", model="claude-sonnet", ttft_ms=4000.0, api_key="kA", team="tA"
    )
    rows += calls(200, 90, api_key="leaked", team="tB")  # the surging key, served by openai
    alerts = [
        alert("ttft", 100, provider="anthropic", model="claude-sonnet"),
        alert("traffic", 100, team="tB", api_key="leaked"),
    ]
    tick(stage, 100, alerts, records=frame(rows))
    incidents = incidents_from_events(store.events())
    assert sorted(i.kinds[0] for i in incidents) == ["traffic", "ttft"]


def test_inhibited_symptom_keeps_the_incident_open(store: SQLiteStore) -> None:
    stage = CorrelateStage(store, CorrelateConfig(resolve_after_ticks=2))
    root = alert("error_rate", 100, Severity.CRITICAL, provider="openai")
    key = alert("error_rate", 100, team="team0", api_key="key0")
    tick(stage, 100, [root, key], records=outage_records(90))
    for now in (115, 130, 145):  # the cause recovers, the key keeps failing
        tick(
            stage,
            now,
            [alert("error_rate", now, team="team0", api_key="key0")],
            clear={root.fingerprint},
        )
    inc = incidents_from_events(store.events())[0]
    assert inc.status is IncidentStatus.OPEN
    for now in (160, 175):
        tick(stage, now, [], clear={key.fingerprint})
    assert incidents_from_events(store.events())[0].status is IncidentStatus.RESOLVED


def test_price_change_on_one_model_is_the_root_of_workflow_cost_alerts(store: SQLiteStore) -> None:
    stage = CorrelateStage(store)
    rows = calls(50, 90, workflow="rag", model="gpt-4o", cost_usd=0.05)
    rows += calls(50, 90, workflow="rag", model="gpt-4o-mini", cost_usd=0.001)
    rows += calls(40, 90, workflow="chat", model="gpt-4o", cost_usd=0.05)
    tick(
        stage,
        100,
        [
            alert("cost", 100, workflow="rag"),
            alert("cost", 100, workflow="chat"),
            alert("cost", 100, provider="openai", model="gpt-4o"),
        ],
        records=frame(rows),
    )
    incidents = incidents_from_events(store.events())
    live = [i for i in incidents if i.merged_into is None]
    assert len(live) == 1
    assert live[0].scope == {"provider": "openai", "model": "gpt-4o"}
    assert live[0].root_cause == fingerprint("cost", {"provider": "openai", "model": "gpt-4o"})
    assert all(i.merged_into == live[0].id for i in incidents if i is not live[0])
    assert len(live[0].alerts) == 3


def test_leaked_key_is_the_root_of_its_team_surge(store: SQLiteStore) -> None:
    stage = CorrelateStage(store)
    tick(stage, 100, [alert("traffic", 100, team="tB")], records=frame(calls(5, 90)))
    tick(
        stage,
        115,
        [alert("traffic", 115, team="tB", api_key="leaked")],
        records=frame(calls(5, 105)),
    )
    [inc] = incidents_from_events(store.events())
    assert inc.scope == {"team": "tB", "api_key": "leaked"}


def test_silence_mutes_then_releases_on_expiry(store: SQLiteStore) -> None:
    stage = CorrelateStage(store)
    silence = create_silence(
        store,
        matchers=[Matcher.parse("provider=openai"), Matcher.parse("kind=~error.*")],
        starts_at=0,
        ends_at=200,
        by="alice",
        reason="planned maintenance",
        now=50,
    )
    tick(stage, 100, [alert("error_rate", 100, provider="openai")])
    tick(stage, 100.5, [alert("ttft", 100, provider="openai")])  # kind does not match
    silenced = store.events(types=[EventType.ALERT_SILENCED])
    assert [e.payload["silence_id"] for e in silenced] == [silence.id]
    assert [i.kinds for i in incidents_from_events(store.events())] == [("ttft",)]
    expire_silence(store, silence.id, by="alice", reason="done early", now=110)
    tick(stage, 115, [alert("error_rate", 115, provider="openai")])
    incidents = incidents_from_events(store.events())
    assert any("error_rate" in i.kinds for i in incidents)


def test_matcher_parsing() -> None:
    assert Matcher.parse("team!=a").matches({"team": "b"})
    assert not Matcher.parse("api_key=~sk-.*").matches({"api_key": "prod"})
    with pytest.raises(ValueError, match="not a matcher"):
        Matcher.parse("no operator")
    with pytest.raises(ValueError, match="bad regex"):
        Matcher.parse("a=~(")


def test_severity_escalates_from_impact(store: SQLiteStore) -> None:
    config = CorrelateConfig(impact=ImpactConfig(critical_failed_requests=100))
    stage = CorrelateStage(store, config)
    a = alert("error_rate", 100, provider="openai")
    tick(stage, 100, [a], records=frame(calls(60, 90, status=503)))
    assert incidents_from_events(store.events())[0].severity is Severity.WARNING
    tick(
        stage,
        115,
        [alert("error_rate", 115, provider="openai")],
        records=frame(calls(60, 105, status=503)),
    )
    [inc] = incidents_from_events(store.events())
    assert inc.severity is Severity.CRITICAL
    [change] = store.events(types=[EventType.INCIDENT_SEVERITY])
    assert change.payload["reason"] == "impact: 120 failed requests"
    assert change.payload["impact"]["keys"] == 1


def test_a_key_carrying_most_failures_does_not_explain_its_provider(store: SQLiteStore) -> None:
    """The tail of an outage: one busy key carries most of the provider's few failures, and its
    alert fired first. A client cannot make a provider fail: the provider is the root."""
    stage = CorrelateStage(store)
    rows = calls(20, 90, api_key="busy", team="t1", status=500)
    rows += calls(2, 90, api_key="quiet", team="t2", status=500)
    rows += calls(30, 90, api_key="quiet", team="t2")
    tick(stage, 100, [alert("error_rate", 100, team="t1", api_key="busy")], records=frame(rows))
    tick(
        stage,
        115,
        [
            alert("error_rate", 115, team="t1", api_key="busy"),
            alert("error_rate", 115, Severity.CRITICAL, provider="openai"),
        ],
        records=frame(rows),
    )
    [inc] = incidents_from_events(store.events())
    provider = fingerprint("error_rate", {"provider": "openai"})
    assert inc.root_cause == provider and inc.scope == {"provider": "openai"}
    [joined] = [
        e
        for e in store.events(types=[EventType.ALERT_GROUPED, EventType.ALERT_INHIBITED])
        if e.payload["fingerprint"] == provider
    ]
    assert joined.type is EventType.ALERT_GROUPED
    assert joined.payload["reason"] == "explains error rate on team=t1, api_key=busy"


def test_a_recurring_member_keeps_its_onset_and_the_root_stays(store: SQLiteStore) -> None:
    """Two models of one provider slow down together; the incident resolves, and only the
    first one's TTFT comes back. The recurrence must not hand the root to the resolved sibling
    just because its onset is now older."""
    stage = CorrelateStage(store, CorrelateConfig(resolve_after_ticks=2, reopen_window_s=600))
    haiku = alert("ttft", 100, provider="anthropic", model="claude-haiku")
    sonnet = alert("ttft", 100, provider="anthropic", model="claude-sonnet")
    tick(stage, 100, [haiku, sonnet])
    for now in (115, 130):
        tick(stage, now, [], clear={haiku.fingerprint, sonnet.fingerprint})
    assert incidents_from_events(store.events())[0].status is IncidentStatus.RESOLVED
    tick(stage, 400, [alert("ttft", 400, provider="anthropic", model="claude-haiku")])
    [inc] = incidents_from_events(store.events())
    assert inc.status is IncidentStatus.OPEN
    assert inc.root_cause == haiku.fingerprint
    assert inc.scope == {"provider": "anthropic", "model": "claude-haiku"}
    restarted = CorrelateStage(store, CorrelateConfig(resolve_after_ticks=2))
    assert restarted.incidents[inc.id].root == haiku.fingerprint
    assert restarted.incidents[inc.id].members[haiku.fingerprint].onset == 100
