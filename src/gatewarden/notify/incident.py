"""The incident's root message, composed from the incident's events (a projection, no I/O).

The same composition serves the first post and every later in-place rewrite, so the root always
shows the incident as it stands: severity, status, root cause and symptoms, the key figures, the
proposed remediation and the current step. Charts of the triggering series are separate thread
messages whose data (not the PNG) is persisted in the outbox, so a retry draws the same picture.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gatewarden.models import Event, EventType, Incident, IncidentStatus, Message, Severity
from gatewarden.notify.messages import (
    CHART_KIND,
    AlertLookup,
    build_message,
    describe_scope,
    evidence_fields,
    fmt_duration,
    fmt_number,
    fmt_time,
    root_message_id,
    with_meta,
)
from gatewarden.notify.redact import redact
from gatewarden.projections import incident_from_events

#: Evidence keys that may carry example request/trace ids (the contract's ``sample_ids`` first).
_EXAMPLE_KEYS = ("sample_ids", "trace_ids", "request_ids", "examples")
_MAX_EXAMPLES = 5
_MAX_SYMPTOMS = 8
_MEMBER_TYPES = (EventType.ALERT_GROUPED, EventType.ALERT_INHIBITED)


class SeriesSource(Protocol):
    """Recent values of one metric over the series matching ``where``, newest first (one per
    tick, None where there was no data). ``gatewarden.aggregate.SeriesHistory`` satisfies it."""

    def values(
        self, metric: str, where: Mapping[str, str], level: str | None = None, *, ticks: int
    ) -> Sequence[float | None]: ...


@dataclass
class AlertFacts:
    fingerprint: str
    kind: str
    scope: dict[str, str]
    detector: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    first_anomalous_ts: float | None = None

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> AlertFacts | None:
        fp, scope = p.get("fingerprint"), p.get("scope")
        if not fp or not isinstance(scope, Mapping):
            return None
        evidence = p.get("evidence")
        first = p.get("first_anomalous_ts")
        return cls(
            fingerprint=str(fp),
            kind=str(p.get("kind", "?")),
            scope={str(k): str(v) for k, v in scope.items()},
            detector=str(p.get("detector") or ""),
            evidence=dict(evidence) if isinstance(evidence, Mapping) else {},
            first_anomalous_ts=float(first) if isinstance(first, int | float) else None,
        )

    @property
    def described(self) -> str:
        return f"{self.kind} on {describe_scope(self.scope)}"


@dataclass
class IncidentView:
    """What the root message shows, folded from one incident's events."""

    incident: Incident
    alerts: dict[str, AlertFacts] = field(default_factory=dict)
    impact: dict[str, Any] = field(default_factory=dict)
    remediation: str = ""
    step: str = ""
    report_path: str = ""

    @property
    def root(self) -> AlertFacts | None:
        root = self.incident.root_cause
        return self.alerts.get(root) if root else None

    @property
    def symptoms(self) -> list[AlertFacts]:
        return [a for fp, a in self.alerts.items() if fp != self.incident.root_cause]

    @property
    def since(self) -> float:
        root = self.root
        first = root.first_anomalous_ts if root is not None else None
        return first if first is not None else self.incident.opened_at

    @property
    def status(self) -> str:
        if self.incident.status is IncidentStatus.RESOLVED:
            return "resolved"
        return "mitigated" if self.incident.mitigated_at is not None else "open"


def fold_incident(
    events: Iterable[Event], lookup: AlertLookup | None = None
) -> IncidentView | None:
    """Fold one incident's events (seq order); ``lookup`` fills alerts fired without its id."""
    ordered = list(events)
    incident = incident_from_events(ordered)
    if incident is None:
        return None
    view = IncidentView(incident=incident)
    for event in ordered:
        _fold(view, event)
    for fp in incident.alerts:
        if fp not in view.alerts and lookup is not None:
            found = lookup(fp)
            facts = AlertFacts.from_payload(found) if found is not None else None
            if facts is not None:
                view.alerts[fp] = facts
    return view


def _fold(view: IncidentView, event: Event) -> None:
    p, t = event.payload, event.type
    if t is EventType.ALERT_FIRED:
        facts = AlertFacts.from_payload(p)
        if facts is not None:
            view.alerts[facts.fingerprint] = facts
    elif t is EventType.ALERT_UPDATED:
        known = view.alerts.get(str(p.get("fingerprint")))
        if known is not None and isinstance(p.get("evidence"), Mapping):
            known.evidence = dict(p["evidence"])
    elif t in _MEMBER_TYPES and str(p.get("fingerprint")) not in view.alerts:
        facts = AlertFacts.from_payload(p)
        if facts is not None:
            view.alerts[facts.fingerprint] = facts
    if isinstance(p.get("impact"), Mapping):
        view.impact = dict(p["impact"])
    if t is EventType.PLAYBOOK_STARTED:
        view.remediation = f"playbook {p.get('playbook', '?')} ({p.get('mode', 'approve')} mode)"
    elif t in (EventType.APPROVAL_REQUESTED, EventType.ACTION_INTENDED) and p.get("preview"):
        view.remediation = str(p["preview"])
    elif t is EventType.ACTION_ROLLED_BACK:
        view.remediation = f"rolled back step {p.get('step', '?')}"
    elif t is EventType.REPORT_WRITTEN and p.get("path"):
        view.report_path = str(p["path"])
    if t is not EventType.INCIDENT_OPENED:
        message = build_message(event)
        if message is not None:
            view.step = message.title


# -- figures -----------------------------------------------------------------------------------
def _series_sum(
    series: SeriesSource | None, metric: str, scope: Mapping[str, str], ticks: int
) -> float | None:
    if series is None:
        return None
    try:
        values = series.values(metric, scope, None, ticks=max(1, ticks))
    except ValueError:
        return None  # the scope spans aggregation levels, or the metric is not a frame column
    known = [v for v in values if v is not None and math.isfinite(v)]
    return sum(known) if known else None


def key_figures(
    view: IncidentView,
    *,
    series: SeriesSource | None = None,
    tick_seconds: float = 15.0,
    max_ticks: int = 240,
    now: float,
) -> dict[str, str]:
    """Observed vs baseline, volume, failed requests, dollars, keys affected and since when.

    Impact totals recorded by the correlator win; failing those, sums over the kept series since
    the first anomalous tick; failing those, an estimate from the evidence (marked with ≈).
    """
    root = view.root
    evidence = root.evidence if root is not None else {}
    out = evidence_fields(evidence)
    out["Since"] = fmt_time(view.since)
    impact = view.impact
    ticks = min(max_ticks, math.ceil(max(0.0, now - view.since) / max(tick_seconds, 1e-9)) + 1)
    scope = root.scope if root is not None else view.incident.scope
    failed = impact.get("failed_requests")
    if not isinstance(failed, int | float):
        failed = _series_sum(series, "errors", scope, ticks)
    if failed is None and evidence.get("metric") == "error_rate" and evidence.get("volume"):
        observed, volume = evidence.get("observed"), evidence.get("volume")
        if isinstance(observed, int | float) and isinstance(volume, int | float):
            out["Failed requests"] = f"≈{fmt_number(round(observed * volume))}"
    elif failed is not None:
        out["Failed requests"] = fmt_number(round(failed))
    cost = impact.get("cost_usd")
    if not isinstance(cost, int | float):
        cost = _series_sum(series, "cost", scope, ticks)
    if cost is not None:
        out["Spend"] = f"${cost:,.2f}"
    keys = impact.get("keys")
    if not isinstance(keys, int):
        keys = len({a.scope["api_key"] for a in view.alerts.values() if "api_key" in a.scope})
    if keys:
        out["Keys affected"] = str(keys)
    return out


def _examples(view: IncidentView) -> list[str]:
    found: list[str] = []
    for alert in [a for a in (view.root,) if a is not None] + view.symptoms:
        for key in _EXAMPLE_KEYS:
            values = alert.evidence.get(key)
            if isinstance(values, list | tuple):
                found.extend(str(v) for v in values if v and str(v) not in found)
    return found[:_MAX_EXAMPLES]


def _symptom_line(alert: AlertFacts) -> str:
    ev = alert.evidence
    if "observed" in ev and "expected" in ev:
        figures = f" — {fmt_number(ev['observed'])} vs {fmt_number(ev['expected'])}"
        return f"• {alert.described}{figures}"
    return f"• {alert.described}"


# -- messages ----------------------------------------------------------------------------------
def compose_incident(
    view: IncidentView,
    *,
    message_id: str,
    ts: float,
    series: SeriesSource | None = None,
    tick_seconds: float = 15.0,
    now: float,
) -> Message:
    """The root message for the incident as it stands (first post and every rewrite)."""
    inc = view.incident
    root = view.root
    subject = inc.title or f"{', '.join(inc.kinds) or 'anomaly'} on {describe_scope(inc.scope)}"
    word = {"open": "opened", "mitigated": "mitigated", "resolved": "resolved"}[view.status]
    fields: dict[str, str] = {
        "Severity": inc.severity.value.upper(),
        "Status": view.status,
        "Scope": describe_scope(inc.scope),
    }
    if root is not None:
        fields["Root cause"] = root.described
        if root.detector:
            fields["Detector"] = root.detector
    elif inc.root_cause:
        fields["Root cause"] = f"alert {inc.root_cause}"
    if len(view.alerts) > 1:
        fields["Alerts"] = str(len(view.alerts))
    fields.update(key_figures(view, series=series, tick_seconds=tick_seconds, now=now))
    if view.remediation:
        fields["Remediation"] = view.remediation
    if view.step:
        fields["Current step"] = view.step
    if view.report_path:
        fields["Report"] = view.report_path
    lines = []
    if root is not None and root.evidence.get("detail"):
        lines.append(str(root.evidence["detail"]))
    symptoms = view.symptoms
    if symptoms:
        lines.append("Symptoms:")
        lines.extend(_symptom_line(a) for a in symptoms[:_MAX_SYMPTOMS])
        if len(symptoms) > _MAX_SYMPTOMS:
            lines.append(f"… and {len(symptoms) - _MAX_SYMPTOMS} more")
    examples = _examples(view)
    if examples:
        lines.append("Examples: " + ", ".join(examples))
    message = Message(
        id=message_id,
        incident_id=inc.id,
        ts=ts,
        kind=EventType.INCIDENT_OPENED.value,
        severity=inc.severity,
        title=redact(f"incident {word}: {subject}"),
        text=redact("\n".join(lines)),
        fields={k: redact(v) for k, v in fields.items()},
    )
    return with_meta(
        message,
        {
            "layout": "incident",
            "scope": dict(inc.scope),
            "kinds": list(inc.kinds),
            "severity": inc.severity.value,
            "status": view.status,
            "report_path": view.report_path,
        },
    )


def summary_fields(view: IncidentView) -> dict[str, str]:
    """The report summary posted with the resolution: durations and impact."""
    inc = view.incident
    out: dict[str, str] = {}
    if inc.resolved_at is not None:
        out["Duration"] = fmt_duration(inc.resolved_at - view.since)
    if inc.acknowledged_at is not None:
        out["Time to acknowledge"] = fmt_duration(inc.acknowledged_at - inc.opened_at)
    if inc.mitigated_at is not None:
        out["Time to mitigate"] = fmt_duration(inc.mitigated_at - inc.opened_at)
    impact = view.impact
    if isinstance(impact.get("failed_requests"), int | float):
        out["Failed requests"] = fmt_number(impact["failed_requests"])
    if isinstance(impact.get("cost_usd"), int | float):
        out["Spend"] = f"${impact['cost_usd']:,.2f}"
    if isinstance(impact.get("keys"), int) and impact["keys"]:
        out["Keys affected"] = str(impact["keys"])
    if view.remediation:
        out["Remediation"] = view.remediation
    return out


def chart_message(
    view: IncidentView,
    *,
    message_id: str,
    ts: float,
    series: SeriesSource,
    tick_seconds: float,
    ticks: int,
    now: float,
) -> Message | None:
    """A thread message carrying the root series' recent values (None when there are none)."""
    root = view.root
    metric = str(root.evidence.get("metric") or "") if root is not None else ""
    if root is None or not metric:
        return None
    try:
        values = list(series.values(metric, root.scope, None, ticks=max(2, ticks)))
    except ValueError:
        return None  # not a frame metric (e.g. a Prometheus-only series) or mixed-level scope
    if not any(v is not None for v in values):
        return None
    # Newest first, one per tick: the i-th value stands for the tick ending i ticks before now.
    points = [[now - i * tick_seconds, v] for i, v in enumerate(values)][::-1]
    inc = view.incident
    markers = {"opened": inc.opened_at, "since": view.since}
    if inc.mitigated_at is not None:
        markers["mitigated"] = inc.mitigated_at
    if inc.resolved_at is not None:
        markers["resolved"] = inc.resolved_at
    span = fmt_duration(len(values) * tick_seconds)
    message = Message(
        id=message_id,
        incident_id=inc.id,
        ts=ts,
        kind=CHART_KIND,
        severity=Severity.INFO,
        title=redact(f"{metric} on {describe_scope(root.scope)}, last {span}"),
        thread_of=root_message_id(inc.id),
    )
    return with_meta(
        message,
        {
            "layout": "chart",
            "metric": metric,
            "scope": root.scope,
            "points": points,
            "baseline": root.evidence.get("expected"),
            "markers": markers,
        },
    )
