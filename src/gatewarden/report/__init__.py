"""Post-incident reports: a timeline folded from the event store, impact from recorded series,
rendered as Markdown, one-file HTML and JSON."""

from gatewarden.report.impact import Impact, compute_impact, impact_rows
from gatewarden.report.render import (
    DEFAULT_FORMATS,
    FORMATS,
    export_document,
    render,
    report_path,
    timeline_json,
    write_report,
    write_reports,
)
from gatewarden.report.series import IncidentSeries, Series, SeriesRecorder, load_series
from gatewarden.report.stage import ReportStage, unreported
from gatewarden.report.timeline import (
    AlertRow,
    Figures,
    IncidentNotFound,
    Timeline,
    TimelineEntry,
    build_timeline,
    timeline_from_events,
)

__all__ = [
    "DEFAULT_FORMATS",
    "FORMATS",
    "AlertRow",
    "Figures",
    "Impact",
    "IncidentNotFound",
    "IncidentSeries",
    "ReportStage",
    "Series",
    "SeriesRecorder",
    "Timeline",
    "TimelineEntry",
    "build_timeline",
    "compute_impact",
    "export_document",
    "impact_rows",
    "load_series",
    "render",
    "report_path",
    "timeline_from_events",
    "timeline_json",
    "unreported",
    "write_report",
    "write_reports",
]
