"""Render post-incident reports (Markdown, one-file HTML, JSON) and record that they were written.

:data:`FORMATS` maps a format to its template in ``gatewarden/report/templates`` (package data)
and file extension. Autoescaping is on for HTML templates and off for Markdown, whose cells go
through the ``md`` filter instead. Markdown links its chart PNGs written next to it; HTML inlines
them as ``data:`` URIs so the report is one file that can be mailed, attached or printed.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2

from gatewarden.models import Event, EventType
from gatewarden.notify.redact import redact
from gatewarden.protocols import Clock, Store
from gatewarden.report.charts import Chart, incident_charts
from gatewarden.report.describe import fmt_clock, fmt_duration, fmt_ts
from gatewarden.report.impact import impact_rows
from gatewarden.report.series import IncidentSeries, load_series
from gatewarden.report.timeline import Timeline, build_timeline

log = logging.getLogger(__name__)

#: format name → (template name or None for JSON, file extension)
FORMATS: dict[str, tuple[str | None, str]] = {
    "md": ("report.md.j2", "md"),
    "html": ("report.html.j2", "html"),
    "json": (None, "json"),
}
#: What the daemon writes on resolution.
DEFAULT_FORMATS: tuple[str, ...] = ("md", "html", "json")
EXPORT_SCHEMA = "gatewarden.incident-timeline/v1"

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_DATA_URI = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")


def md_escape(value: object) -> str:
    """Make text safe inside a Markdown table cell: no pipes, newlines or raw HTML."""
    text = redact(str(value))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", "<br>")


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gatewarden.report", "templates"),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "htm", "xml", "html.j2", "htm.j2", "xml.j2"),
            default_for_string=False,
            default=False,
        ),
        undefined=jinja2.StrictUndefined,  # a typo in a template must fail loudly, not blank
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["ts"] = fmt_ts
    env.filters["clock"] = fmt_clock
    env.filters["duration"] = fmt_duration
    env.filters["md"] = md_escape
    env.filters["redact"] = redact
    return env


def _check(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; known: {sorted(FORMATS)}")


def safe_stem(incident_id: str) -> str:
    return f"incident-{_UNSAFE_NAME.sub('_', incident_id)}"


def chart_filename(incident_id: str, chart: Chart) -> str:
    return f"{safe_stem(incident_id)}-{chart.name}.png"


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def scrub(text: str) -> str:
    """Last line of defence: redact the whole document, leaving inline images intact."""
    out: list[str] = []
    last = 0
    for match in _DATA_URI.finditer(text):
        out.extend((redact(text[last : match.start()]), match.group(0)))
        last = match.end()
    out.append(redact(text[last:]))
    return "".join(out)


def export_document(
    timeline: Timeline, series: IncidentSeries | None, *, generated_at: float | None = None
) -> dict[str, Any]:
    """The machine-readable export: the same timeline, figures and impact, plus the series."""
    document: dict[str, Any] = {"schema": EXPORT_SCHEMA, "generated_at": generated_at}
    document.update(timeline.model_dump(mode="json"))
    document["series"] = None if series is None else series.model_dump(mode="json")
    return document


def render(
    timeline: Timeline,
    *,
    fmt: str = "md",
    generated_at: float | None = None,
    charts: Sequence[Chart] = (),
    series: IncidentSeries | None = None,
) -> str:
    """Render a timeline in one of :data:`FORMATS` (charts: PNG files for md, inline for html)."""
    _check(fmt)
    if fmt == "json":
        document = export_document(timeline, series, generated_at=generated_at)
        return scrub(json.dumps(document, indent=2, sort_keys=False)) + "\n"
    template_name = FORMATS[fmt][0]
    assert template_name is not None
    figures = [
        {
            "title": c.title,
            "alt": c.alt,
            "src": data_uri(c.png) if fmt == "html" else chart_filename(timeline.incident.id, c),
        }
        for c in charts
    ]
    text = (
        environment()
        .get_template(template_name)
        .render(
            t=timeline,
            f=timeline.figures,
            impact=impact_rows(timeline.impact),
            charts=figures,
            notes=timeline.notification_totals(),
            generated_at=generated_at,
        )
    )
    return scrub(text)


def report_path(out_dir: Path, incident_id: str, fmt: str = "md") -> Path:
    _check(fmt)
    return Path(out_dir) / f"{safe_stem(incident_id)}.{FORMATS[fmt][1]}"


def _atomic_write(path: Path, data: bytes) -> None:
    # Write-then-rename so a reader (or a crash) never sees half a file.
    fd, tmp = tempfile.mkstemp(prefix=".incident-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_reports(
    store: Store,
    incident_id: str,
    out_dir: Path | str,
    *,
    formats: Sequence[str] = DEFAULT_FORMATS,
    clock: Clock,
) -> list[tuple[Path, Event]]:
    """Write the report in each format (timeline and charts built once) and append one
    ``report.written`` per format; returns (path, event) pairs in ``formats`` order."""
    for fmt in formats:
        _check(fmt)
    out = Path(out_dir)
    timeline = build_timeline(store, incident_id)
    series = load_series(store, incident_id)
    charts = incident_charts(timeline, series) if {"md", "html"} & set(formats) else []
    now = clock.now()
    out.mkdir(parents=True, exist_ok=True)
    written: list[tuple[Path, Event]] = []
    for fmt in formats:
        if fmt == "md":
            for chart in charts:
                _atomic_write(out / chart_filename(incident_id, chart), chart.png)
        text = render(timeline, fmt=fmt, generated_at=now, charts=charts, series=series)
        path = report_path(out, incident_id, fmt)
        _atomic_write(path, text.encode("utf-8"))
        event = Event(
            ts=now,
            type=EventType.REPORT_WRITTEN,
            incident_id=incident_id,
            # One record per format per state of the incident: rewriting the same state is a no-op.
            key=f"report:{incident_id}:{fmt}:{timeline.last_seq}",
            payload={"path": str(path), "format": fmt},
        )
        written.append((path, store.append([event])[0]))
    return written


def write_report(
    store: Store, incident_id: str, out_dir: Path | str, *, fmt: str = "md", clock: Clock
) -> Path:
    """Write ``incident-<id>.<ext>`` under ``out_dir`` (for md, its chart PNGs beside it) and
    append ``report.written``."""
    return write_reports(store, incident_id, out_dir, formats=[fmt], clock=clock)[0][0]


def timeline_json(store: Store, incident_id: str, *, indent: int | None = 2) -> str:
    """The JSON export of an incident (for the console and other tools)."""
    timeline = build_timeline(store, incident_id)
    document = export_document(timeline, load_series(store, incident_id))
    return scrub(json.dumps(document, indent=indent))
