"""Render post-incident reports with Jinja2 and record that they were written.

Formats are pluggable: :data:`FORMATS` maps a format name to its template in
``gatewarden/report/templates`` (shipped as package data). Autoescaping is on for HTML/XML
templates and off for Markdown, whose cells go through the ``md`` filter instead.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import jinja2

from gatewarden.models import Event, EventType
from gatewarden.notify.redact import redact
from gatewarden.protocols import Clock, Store, Tick
from gatewarden.report.timeline import Timeline, build_timeline, describe_figure

log = logging.getLogger(__name__)

#: format name → (template name, file extension). Add ``"html": ("report.html.j2", "html")``.
FORMATS: dict[str, tuple[str, str]] = {"md": ("report.md.j2", "md")}

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def _fmt_ts(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _fmt_clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%H:%M:%S")


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
    env.filters["ts"] = _fmt_ts
    env.filters["clock"] = _fmt_clock
    env.filters["duration"] = describe_figure
    env.filters["md"] = md_escape
    env.filters["redact"] = redact
    return env


def render(timeline: Timeline, *, fmt: str = "md", generated_at: float | None = None) -> str:
    """Render a timeline in one of :data:`FORMATS`."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; known: {sorted(FORMATS)}")
    template = environment().get_template(FORMATS[fmt][0])
    return template.render(t=timeline, f=timeline.figures, generated_at=generated_at)


def report_path(out_dir: Path, incident_id: str, fmt: str = "md") -> Path:
    return Path(out_dir) / f"incident-{_UNSAFE_NAME.sub('_', incident_id)}.{FORMATS[fmt][1]}"


def _write(
    store: Store, incident_id: str, out_dir: Path, *, fmt: str, clock: Clock
) -> tuple[Path, Event]:
    timeline = build_timeline(store, incident_id)
    now = clock.now()
    text = render(timeline, fmt=fmt, generated_at=now)
    path = report_path(out_dir, incident_id, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write-then-rename so a reader (or a crash) never sees half a report.
    fd, tmp = tempfile.mkstemp(prefix=".incident-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        raise
    event = Event(
        ts=now,
        type=EventType.REPORT_WRITTEN,
        incident_id=incident_id,
        # One record per format per state of the incident: rewriting the same state is a no-op.
        key=f"report:{incident_id}:{fmt}:{timeline.last_seq}",
        payload={"path": str(path), "format": fmt},
    )
    return path, store.append([event])[0]


def write_report(
    store: Store, incident_id: str, out_dir: Path | str, *, fmt: str = "md", clock: Clock
) -> Path:
    """Write ``incident-<id>.<ext>`` under ``out_dir`` and append ``report.written``."""
    path, _ = _write(store, incident_id, Path(out_dir), fmt=fmt, clock=clock)
    return path


def timeline_json(store: Store, incident_id: str, *, indent: int | None = 2) -> str:
    """The timeline as JSON (for the web UI and machine consumers)."""
    return build_timeline(store, incident_id).model_dump_json(indent=indent)


class ReportStage:
    """Pipeline stage: writes the report of every incident resolved during this tick."""

    name = "report"

    def __init__(self, store: Store, out_dir: Path | str, clock: Clock, *, fmt: str = "md") -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown report format {fmt!r}; known: {sorted(FORMATS)}")
        self._store = store
        self._out_dir = Path(out_dir)
        self._clock = clock
        self._fmt = fmt

    def run(self, tick: Tick) -> None:
        resolved = dict.fromkeys(
            e.incident_id
            for e in tick.events
            if e.type is EventType.INCIDENT_RESOLVED and e.incident_id
        )
        for incident_id in resolved:
            if incident_id is None:
                continue
            try:
                _, event = _write(
                    self._store, incident_id, self._out_dir, fmt=self._fmt, clock=self._clock
                )
            except OSError as exc:
                # A full disk must not stop detection; the report can be re-run from the store
                # (``write_report``) since everything it needs is in the event log.
                log.error("cannot write report for %s: %s", incident_id, exc)
                continue
            tick.events.append(event)
