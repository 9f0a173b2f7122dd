"""Post-incident reports: a timeline folded from the event store, rendered with Jinja2."""

from gatewarden.report.render import (
    FORMATS,
    ReportStage,
    render,
    timeline_json,
    write_report,
)
from gatewarden.report.timeline import (
    Figures,
    IncidentNotFound,
    Timeline,
    TimelineEntry,
    build_timeline,
    timeline_from_events,
)

__all__ = [
    "FORMATS",
    "Figures",
    "IncidentNotFound",
    "ReportStage",
    "Timeline",
    "TimelineEntry",
    "build_timeline",
    "render",
    "timeline_from_events",
    "timeline_json",
    "write_report",
]
