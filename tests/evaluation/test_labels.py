"""Scoring incidents against fault labels: the matching rule and every figure, on hand-built
documents whose right answers are known."""

from __future__ import annotations

from typing import Any

import pytest

from gatewarden.evaluation.labels import (
    compatible,
    evaluate_backtest,
    format_scores,
    matches,
    score_incidents,
)
from gatewarden.projections import incident_members

DAY = 86_400.0


def label(
    kind: str, scope: dict[str, str], start: float, end: float, **extra: Any
) -> dict[str, Any]:
    return {"kind": kind, "scope": scope, "start": start, "end": end, "fault": kind, **extra}


def incident(
    kinds: list[str], scope: dict[str, str], opened: float, **extra: Any
) -> dict[str, Any]:
    return {"id": f"inc-{opened}", "kinds": kinds, "scope": scope, "opened_at": opened, **extra}


OUTAGE = label("error_rate", {"provider": "openai"}, 1000.0, 1600.0)


@pytest.mark.parametrize(
    ("a", "b", "ok"),
    [
        ({"provider": "openai"}, {"provider": "openai", "model": "gpt-4o"}, True),
        ({"provider": "openai"}, {"provider": "azure"}, False),
        ({"team": "search"}, {"api_key": "search-prod"}, False),  # nothing shared
        ({"team": "s", "api_key": "k"}, {"api_key": "k"}, True),
        ({}, {"provider": "openai"}, False),
    ],
)
def test_scope_compatibility(a: dict[str, str], b: dict[str, str], ok: bool) -> None:
    assert compatible(a, b) is ok
    assert compatible(b, a) is ok


def test_matching_needs_kind_scope_and_window() -> None:
    assert matches(incident(["error_rate", "fallback_storm"], {"provider": "openai"}, 1100), OUTAGE)
    assert not matches(incident(["ttft"], {"provider": "openai"}, 1100), OUTAGE)
    assert not matches(incident(["error_rate"], {"provider": "azure"}, 1100), OUTAGE)
    assert matches(incident(["error_rate"], {"provider": "openai"}, 940), OUTAGE)  # 60 s early
    assert not matches(incident(["error_rate"], {"provider": "openai"}, 939), OUTAGE)
    assert matches(incident(["error_rate"], {"provider": "openai"}, 1600), OUTAGE)
    assert not matches(incident(["error_rate"], {"provider": "openai"}, 1601), OUTAGE)


def test_member_alerts_count_for_their_kind() -> None:
    storm = label("fallback_storm", {"requested_model": "gpt-4o"}, 1000, 1500)
    filed_under_cause = incident(
        ["error_rate", "fallback_storm"],
        {"provider": "openai"},
        1050,
        members=[
            {"kind": "error_rate", "scope": {"provider": "openai"}},
            {"kind": "fallback_storm", "scope": {"requested_model": "gpt-4o"}},
        ],
    )
    assert matches(filed_under_cause, storm)
    wrong_kind_member = incident(
        ["error_rate", "fallback_storm"],
        {"provider": "openai"},
        1050,
        members=[{"kind": "error_rate", "scope": {"requested_model": "gpt-4o"}}],
    )
    assert not matches(wrong_kind_member, storm)


def test_figures() -> None:
    labels = [
        OUTAGE,
        label("ttft", {"provider": "anthropic", "model": "claude"}, 5000, 5600),
        label("traffic", {"api_key": "k1"}, 9000, 9600),  # never detected
        label("error_rate", {"provider": "azure"}, 7000, 7060, negative=True),
    ]
    incidents = [
        incident(["error_rate"], {"provider": "openai"}, 1090),  # ttd 90
        incident(["error_rate"], {"provider": "openai", "model": "gpt-4o"}, 1300),  # fragment
        incident(["ttft"], {"provider": "anthropic"}, 5030),  # ttd 30
        incident(["error_rate"], {"provider": "azure"}, 7010),  # hits the hard negative
        incident(["cost"], {"workflow": "w"}, 8000),  # false
        incident(["cost"], {"workflow": "w"}, 8100, merged_into="inc-8000"),  # not counted
    ]
    scores = score_incidents(incidents, labels, duration_s=DAY / 2)
    assert scores["faults"] == 3
    assert scores["detected"] == 2
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["incidents"] == 5
    assert scores["false_incidents"] == 2
    assert scores["precision"] == pytest.approx(3 / 5)
    assert scores["false_per_day"] == pytest.approx(4.0)
    assert scores["ttd_p50_s"] == pytest.approx(60.0)
    assert scores["ttd_p90_s"] == pytest.approx(30 + 0.9 * 60)
    assert scores["fragmentation"] == pytest.approx(1.5)
    assert scores["negatives"] == 1
    assert scores["negatives_hit"] == 1
    assert scores["by_kind"]["traffic"]["recall"] == 0.0
    assert scores["by_kind"]["error_rate"]["fragmentation"] == 2.0
    assert [u["scope"] for u in scores["unmatched"]] == [{"provider": "azure"}, {"workflow": "w"}]
    details = {d["kind"]: d for d in scores["details"]}
    assert details["ttft"]["ttd_s"] == 30.0
    assert details["traffic"]["detected"] is False


def test_early_detection_counts_as_zero_delay() -> None:
    scores = score_incidents(
        [incident(["error_rate"], {"provider": "openai"}, 980)], [OUTAGE], duration_s=3600
    )
    assert scores["ttd_p50_s"] == 0.0


def test_nothing_to_find_and_nothing_found() -> None:
    scores = score_incidents([], [], duration_s=3600)
    assert scores["recall"] is None and scores["precision"] is None
    assert scores["false_per_day"] == 0.0
    with pytest.raises(ValueError):
        score_incidents([], [], duration_s=0)


def test_evaluate_backtest_takes_the_labels_document() -> None:
    document = {"incidents": [incident(["error_rate"], {"provider": "openai"}, 1060)]}
    whole = {"start": 0.0, "end": DAY, "labels": [OUTAGE]}
    scores = evaluate_backtest(document, whole)
    assert scores["recall"] == 1.0
    assert scores["false_per_day"] == 0.0
    assert evaluate_backtest(document, [OUTAGE], duration_s=3600)["recall"] == 1.0
    with pytest.raises(ValueError, match="duration"):
        evaluate_backtest(document, [OUTAGE])
    text = format_scores(scores)
    assert text.startswith("recall 1.00  precision 1.00  false/day 0.00  ttd p50 60s")
    assert "error_rate" in text


def test_incident_members_from_events() -> None:
    from gatewarden.models import Event, EventType

    def event(type_: EventType, incident: str | None, kind: str, scope: dict[str, str]) -> Event:
        return Event(
            ts=1.0, type=type_, incident_id=incident, payload={"kind": kind, "scope": scope}
        )

    events = [
        event(EventType.ALERT_FIRED, "i1", "error_rate", {"provider": "openai"}),
        event(EventType.ALERT_INHIBITED, "i1", "fallback_storm", {"requested_model": "g"}),
        event(EventType.ALERT_FIRED, "i1", "error_rate", {"provider": "openai"}),  # again
        event(EventType.ALERT_GROUPED, "i2", "ttft", {"provider": "a"}),
        event(EventType.ALERT_RESOLVED, "i1", "cost", {"model": "m"}),  # not a membership
        event(EventType.ALERT_FIRED, None, "cost", {"model": "m"}),  # not filed
    ]
    assert incident_members(events) == {
        "i1": [
            {"kind": "error_rate", "scope": {"provider": "openai"}},
            {"kind": "fallback_storm", "scope": {"requested_model": "g"}},
        ],
        "i2": [{"kind": "ttft", "scope": {"provider": "a"}}],
    }
