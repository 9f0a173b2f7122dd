"""Impact figures of an incident, computed from its recorded series and its alerts' evidence.

Every figure is measured on the incident's scope over the *impact window* (first anomalous
tick → resolution, or the last recorded tick while still open), against a *baseline*: the
median of the same series over the recorded ticks before the window. A figure that cannot be
computed from what was recorded is None with a note saying why; nothing is estimated.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gatewarden.models import scope_key
from gatewarden.notify.redact import redact
from gatewarden.report.describe import fmt_clock, fmt_number
from gatewarden.report.series import AFFECTED_LABELS, IncidentSeries, Series


class Impact(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    scope: str = Field(description="canonical scope the figures are measured on")
    window_start: float | None = None
    window_end: float | None = None
    ticks: int | None = Field(default=None, description="recorded ticks inside the window")
    requests: float | None = None
    failed_requests: float | None = None
    failed_above_baseline: float | None = None
    baseline_error_rate: float | None = None
    latency_p95_baseline_ms: float | None = None
    latency_p95_peak_ms: float | None = None
    extra_latency_p95_ms: float | None = Field(
        default=None, description="mean excess of p95 latency over its baseline in the window"
    )
    ttft_p95_baseline_ms: float | None = None
    ttft_p95_peak_ms: float | None = None
    cost_usd: float | None = None
    extra_cost_usd: float | None = Field(
        default=None, description="spend in the window minus the baseline spend per tick"
    )
    cost_all_usd: float | None = Field(default=None, description="all traffic, in the window")
    extra_cost_all_usd: float | None = Field(
        default=None, description="all traffic: spend minus the baseline spend per tick"
    )
    affected: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="label -> alias -> requests (failed ones for errors)"
    )
    affected_more: dict[str, int] = Field(default_factory=dict)
    evidence: dict[str, str] = Field(default_factory=dict)
    accounted: dict[str, float] = Field(
        default_factory=dict,
        description="the correlator's tally on the root scope while open (failed_requests, "
        "requests, cost_usd, keys, teams, workflows)",
    )
    notes: tuple[str, ...] = ()


def _window(series: Series, start: float, end: float) -> list[float | None]:
    return [y for t, y in zip(series.t, series.y, strict=True) if start <= t <= end]


def _baseline(series: Series, start: float) -> float | None:
    before = [y for t, y in zip(series.t, series.y, strict=True) if t < start and y is not None]
    return statistics.median(before) if before else None


def _known(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def _spend(cost: Series, start: float, stop: float) -> tuple[float, float | None]:
    """Spent in the window, and that minus the baseline spend per tick (None: no baseline)."""
    window = _window(cost, start, stop)
    spent = sum(_known(window))
    base = _baseline(cost, start)
    # A tick without data spent nothing: the baseline applies to every tick.
    return spent, None if base is None else spent - base * len(window)


def _covers(series: Series, start: float) -> bool:
    return bool(series.t) and series.t[0] <= start


def compute_impact(
    doc: IncidentSeries | None,
    *,
    scope: Mapping[str, str],
    start: float,
    end: float | None,
    root_evidence: Mapping[str, Any] | None = None,
    alert_scopes: Sequence[Mapping[str, str]] = (),
    accounted: Mapping[str, Any] | None = None,
) -> Impact:
    """Impact of the incident on ``scope`` between ``start`` and ``end`` (None = still open)."""
    notes: list[str] = []
    tally = {
        str(k): float(v)
        for k, v in (accounted or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    evidence = {
        str(k): fmt_number(v)
        for k, v in (root_evidence or {}).items()
        if k in ("metric", "observed", "expected", "score", "window_s", "volume")
    }
    affected: dict[str, dict[str, int]] = {}
    more: dict[str, int] = {}
    for alert_scope in alert_scopes:  # an alert on a key/team/workflow names it outright
        for label in AFFECTED_LABELS:
            if label in alert_scope:
                affected.setdefault(label, {}).setdefault(redact(str(alert_scope[label])), 0)
    if doc is None:
        notes.append("no series were recorded for this incident: impact figures are not known")
        return Impact(
            scope=scope_key(scope),
            window_start=start,
            window_end=end,
            affected=affected,
            evidence=evidence,
            accounted=tally,
            notes=tuple(notes),
        )
    for label, counts in doc.affected.items():
        bucket = affected.setdefault(label, {})
        for name, count in counts.items():
            key = redact(name)
            bucket[key] = bucket.get(key, 0) + count
    more = dict(doc.affected_overflow)
    series = {m: doc.impact(m, scope) for m in ("requests", "errors", "cost", "latency_p95")}
    ttft = doc.impact("ttft_p95", scope)
    any_series = next((s for s in series.values() if s is not None and s.t), None)
    if any_series is None:
        notes.append(f"no impact series were recorded on {scope_key(scope) or 'all traffic'}")
        return Impact(
            scope=scope_key(scope),
            window_start=start,
            window_end=end,
            affected=affected,
            affected_more=more,
            evidence=evidence,
            accounted=tally,
            notes=tuple(notes),
        )
    stop = end if end is not None else any_series.t[-1]
    if not _covers(any_series, start):
        notes.append(
            "recorded series start after the first anomalous tick: counts are lower bounds"
        )
    if any(s is not None and s.dropped for s in series.values()):
        notes.append("old points were dropped to bound storage: counts are lower bounds")
    fields: dict[str, Any] = {"ticks": len(_window(any_series, start, stop))}
    req, err, cost, lat = (series[m] for m in ("requests", "errors", "cost", "latency_p95"))
    if req is not None and err is not None:
        requests = _known(_window(req, start, stop))
        errors = _known(_window(err, start, stop))
        fields["requests"], fields["failed_requests"] = sum(requests), sum(errors)
        base_req, base_err = _baseline(req, start), _baseline(err, start)
        if base_req and base_err is not None:
            rate = base_err / base_req
            fields["baseline_error_rate"] = rate
            fields["failed_above_baseline"] = max(0.0, sum(errors) - rate * sum(requests))
        else:
            notes.append("no baseline before the window: failed requests above baseline unknown")
    if lat is not None:
        values = _known(_window(lat, start, stop))
        base = _baseline(lat, start)
        fields["latency_p95_peak_ms"] = max(values) if values else None
        fields["latency_p95_baseline_ms"] = base
        if base is not None and values:
            fields["extra_latency_p95_ms"] = statistics.fmean(max(0.0, v - base) for v in values)
        else:
            notes.append("no latency baseline (or no data in the window): extra latency unknown")
    if ttft is not None:
        values = _known(_window(ttft, start, stop))
        fields["ttft_p95_peak_ms"] = max(values) if values else None
        fields["ttft_p95_baseline_ms"] = _baseline(ttft, start)
    if cost is not None:
        fields["cost_usd"], fields["extra_cost_usd"] = _spend(cost, start, stop)
        if fields["extra_cost_usd"] is None:
            notes.append("no cost baseline before the window: dollars above baseline unknown")
    everywhere = doc.impact("cost", {}) if scope else None
    if everywhere is not None:
        fields["cost_all_usd"], fields["extra_cost_all_usd"] = _spend(everywhere, start, stop)
    return Impact(
        scope=scope_key(scope),
        window_start=start,
        window_end=stop,
        affected=affected,
        affected_more=more,
        evidence=evidence,
        accounted=tally,
        notes=tuple(notes),
        **fields,
    )


_UNKNOWN = "not known"
_LABEL_NAMES = {"api_key": "API keys", "team": "Teams", "workflow": "Workflows"}


def _money(x: float) -> str:
    return f"${x:,.2f}" if abs(x) >= 0.01 else f"${x:.4f}"


_TALLY = (
    ("failed_requests", "failed requests"),
    ("requests", "requests"),
    ("cost_usd", ""),
    ("keys", "keys"),
    ("teams", "teams"),
    ("workflows", "workflows"),
)


def _spend_text(spent: float | None, extra: float | None) -> str:
    if spent is None or extra is None:
        return _UNKNOWN
    if extra > 0:
        return f"{_money(extra)} ({_money(spent)} spent in the window)"
    return f"none: {_money(spent)} spent in the window, {_money(-extra)} below the baseline"


def _names(impact: Impact, label: str, recorded: bool) -> str:
    counts = impact.affected.get(label, {})
    if not counts and not recorded:
        return _UNKNOWN
    if not counts:
        return "none recorded"
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = ", ".join(f"{name} ({n:,})" if n else name for name, n in top[:10])
    text = f"{len(counts)}: {shown}"
    if len(top) > 10:
        text += f" and {len(top) - 10} more"
    more = impact.affected_more.get(label)
    if more:
        text += f"; {more:,} more requests from names past the tracking limit"
    return text


def impact_rows(impact: Impact) -> list[tuple[str, str]]:
    """The impact as (label, text) rows; a figure that was not measured says so."""
    rows: list[tuple[str, str]] = []
    window = "—"
    if impact.window_start is not None:
        end = fmt_clock(impact.window_end) if impact.window_end is not None else "still open"
        ticks = "no series recorded" if impact.ticks is None else f"{impact.ticks} recorded ticks"
        window = f"{fmt_clock(impact.window_start)} → {end} UTC ({ticks})"
    rows.append(("Measured on", f"{impact.scope or 'all traffic'}, {window}"))
    if impact.failed_requests is None or impact.requests is None:
        rows.append(("Failed requests", _UNKNOWN))
    else:
        text = f"{fmt_number(impact.failed_requests)} of {fmt_number(impact.requests)} requests"
        if impact.failed_above_baseline is not None and impact.baseline_error_rate is not None:
            text += (
                f" ({fmt_number(impact.failed_above_baseline)} above the baseline error rate "
                f"of {impact.baseline_error_rate:.2%})"
            )
        rows.append(("Failed requests", text))
    if impact.extra_latency_p95_ms is None:
        rows.append(("Extra latency (p95)", _UNKNOWN))
    else:
        rows.append(
            (
                "Extra latency (p95)",
                f"+{fmt_number(impact.extra_latency_p95_ms)} ms on average over the window; "
                f"peak {fmt_number(impact.latency_p95_peak_ms)} ms vs baseline "
                f"{fmt_number(impact.latency_p95_baseline_ms)} ms",
            )
        )
    if impact.ttft_p95_peak_ms is not None and impact.ttft_p95_baseline_ms is not None:
        rows.append(
            (
                "TTFT (p95)",
                f"peak {fmt_number(impact.ttft_p95_peak_ms)} ms vs baseline "
                f"{fmt_number(impact.ttft_p95_baseline_ms)} ms",
            )
        )
    rows.append(("Spend above baseline", _spend_text(impact.cost_usd, impact.extra_cost_usd)))
    if impact.scope and impact.cost_all_usd is not None:
        text = _spend_text(impact.cost_all_usd, impact.extra_cost_all_usd)
        rows.append(("Spend above baseline, all traffic", text))
    recorded = impact.requests is not None
    for label, title in _LABEL_NAMES.items():
        rows.append((f"{title} affected", _names(impact, label, recorded)))
    if impact.evidence:
        ev = impact.evidence
        text = f"{ev.get('metric', '?')} observed {ev.get('observed', '?')}"
        text += f" vs expected {ev.get('expected', '?')}" if "expected" in ev else ""
        rows.append(("Root-cause evidence", text))
    if impact.accounted:
        a = impact.accounted
        counted = [
            f"{fmt_number(a[name])} {label}"
            for name, label in _TALLY
            if name in a and name != "cost_usd"
        ]
        if "cost_usd" in a:
            counted.insert(2, f"{_money(a['cost_usd'])} spent")
        rows.append(("Counted by the correlator from opening", ", ".join(counted)))
    rows.extend(("Note", note) for note in impact.notes)
    return [(label, redact(text)) for label, text in rows]
