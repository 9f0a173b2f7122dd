"""PNG charts of an incident's recorded series, with the incident window and action markers.

matplotlib is driven through its object API on the Agg canvas (never ``pyplot``), so charts
render on any thread (the console serves them from a thread pool) without global state or a
display.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MultipleLocator

from gatewarden.notify.redact import redact
from gatewarden.report.describe import scope_text
from gatewarden.report.series import IncidentSeries, Series
from gatewarden.report.timeline import Timeline

#: entry type -> (legend label, colour, line style)
MARKERS: dict[str, tuple[str, str, str]] = {
    "approval.granted": ("approval granted", "#2e7d32", "--"),
    "approval.denied": ("approval denied", "#c62828", "--"),
    "action.applied": ("action applied", "#1565c0", "-"),
    "action.rolled_back": ("rolled back", "#ef6c00", "-"),
    "verification.failed": ("verification failed", "#6a1b9a", ":"),
}
#: Series colours, distinct from the marker colours.
_LINE_COLOURS = ("#263238", "#d81b60", "#00897b")
_UNITS = {
    "error_rate": "ratio",
    "fallback_ratio": "ratio",
    "ttft_p50": "ms",
    "ttft_p95": "ms",
    "latency_p95": "ms",
    "cost": "USD / tick",
    "cost_per_request": "USD",
    "requests": "per tick",
    "errors": "per tick",
    "rps": "req/s",
}
_SLUG = re.compile(r"[^A-Za-z0-9]+")


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    alt: str
    png: bytes


#: x-axis tick spacings (seconds); the smallest giving at most 8 ticks is used.
_STEPS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def _hhmm(x: float, _pos: int | None = None) -> str:
    return datetime.fromtimestamp(x, tz=UTC).strftime("%H:%M")


def _step(span: float) -> int:
    return next((s for s in _STEPS if span / s <= 8), _STEPS[-1])


def _draw(
    title: str, lines: list[tuple[str, Series]], timeline: Timeline, *, width: float = 8.0
) -> bytes:
    figure = Figure(figsize=(width, 2.6), dpi=100)
    FigureCanvasAgg(figure)
    # Fixed margins rather than a layout engine: constrained layout draws the figure twice and
    # tripled the cost of a chart; these margins fit the labels these charts have.
    figure.subplots_adjust(left=0.08, right=0.985, top=0.88, bottom=0.19)
    ax = figure.add_subplot()
    end = max(s.t[-1] for _, s in lines)
    f = timeline.figures
    if f.first_anomalous_at is not None and f.first_anomalous_at < f.opened_at:
        ax.axvspan(f.first_anomalous_at, f.opened_at, color="#ffcc80", alpha=0.35)
    ax.axvspan(
        f.opened_at,
        f.resolved_at if f.resolved_at is not None else end,
        color="#ef9a9a",
        alpha=0.3,
        label="incident open",
    )
    for (label, series), colour in zip(lines, _LINE_COLOURS, strict=False):
        ys = [float("nan") if y is None else y for y in series.y]
        ax.plot(series.t, ys, linewidth=1.5, label=label, color=colour)
    seen: set[str] = set()
    for entry in timeline.entries:
        marker = MARKERS.get(entry.type)
        if marker is None:
            continue
        name, colour, style = marker
        ax.axvline(
            entry.ts,
            color=colour,
            linestyle=style,
            linewidth=1.2,
            label=None if name in seen else name,
        )
        seen.add(name)
    ax.set_title(redact(title), fontsize=10, loc="left")
    # Epoch seconds on the x axis, ticks on whole minutes, labelled in UTC.
    start = min(s.t[0] for _, s in lines)
    ax.xaxis.set_major_locator(MultipleLocator(_step(end - start)))
    ax.xaxis.set_major_formatter(FuncFormatter(_hhmm))
    ax.set_xlabel("UTC", fontsize=8)
    ax.grid(True, alpha=0.3)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=7, loc="upper left", framealpha=0.8)
    buffer = io.BytesIO()
    # No "Software" metadata: the same series always yields the same bytes.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _usable(series: Series | None) -> bool:
    return series is not None and any(y is not None for y in series.y)


@dataclass(frozen=True)
class ChartPlan:
    """What one chart shows; drawing it (``draw``) is the expensive part."""

    name: str
    title: str
    alt: str
    lines: tuple[tuple[str, Series], ...]


def chart_plans(
    timeline: Timeline, series: IncidentSeries | None, *, max_charts: int = 6
) -> list[ChartPlan]:
    """One chart per member alert's series, then requests/errors, latency and cost on the
    incident's scope (skipping what an alert chart already shows)."""
    if series is None:
        return []
    plans: list[tuple[str, list[tuple[str, Series]]]] = []
    shown: set[tuple[str, str]] = set()
    for s in series.series:
        if s.role == "alert" and _usable(s):
            unit = _UNITS.get(s.metric, "")
            title = f"{s.kind}: {s.metric} on {scope_text(s.scope)}"
            title += f" ({unit})" if unit else ""
            plans.append((title, [(s.metric, s)]))
            shown.add((s.metric, scope_text(s.scope)))
    scope = timeline.incident.scope
    where = scope_text(scope)
    req, err = series.impact("requests", scope), series.impact("errors", scope)
    if req is not None and err is not None and _usable(req):
        title = f"requests and failed requests on {where} (per tick)"
        plans.append((title, [("requests", req), ("failed", err)]))
    for metric in ("latency_p95", "cost"):
        extra = series.impact(metric, scope)
        if extra is not None and _usable(extra) and (metric, where) not in shown:
            plans.append((f"{metric} on {where} ({_UNITS[metric]})", [(metric, extra)]))
    out = []
    for index, (title, lines) in enumerate(plans[:max_charts], start=1):
        first = lines[0][1]
        slug = _SLUG.sub("-", f"{first.metric}-{scope_text(first.scope)}").strip("-").lower()
        out.append(
            ChartPlan(
                name=f"{index}-{slug[:60]}",
                title=redact(title),
                alt=redact(f"Chart: {title}; shaded: incident window; lines: actions"),
                lines=tuple(lines),
            )
        )
    return out


def draw(plan: ChartPlan, timeline: Timeline) -> bytes:
    """The plan as a PNG."""
    return _draw(plan.title, list(plan.lines), timeline)


def incident_charts(
    timeline: Timeline, series: IncidentSeries | None, *, max_charts: int = 6
) -> list[Chart]:
    """Every chart of the incident, drawn."""
    return [
        Chart(name=p.name, title=p.title, alt=p.alt, png=draw(p, timeline))
        for p in chart_plans(timeline, series, max_charts=max_charts)
    ]
