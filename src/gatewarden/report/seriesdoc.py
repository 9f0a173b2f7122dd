"""The recorded-series document of an incident (keyed state ``series:{incident_id}``).

Written by :class:`gatewarden.report.series.SeriesRecorder`; read by the report and the console.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gatewarden.models import scope_key
from gatewarden.protocols import Store

log = logging.getLogger(__name__)


def state_name(incident_id: str) -> str:
    return f"series:{incident_id}"


def _compact(value: float | None) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return float(f"{value:.6g}")  # six significant digits are plenty for a chart


class Series(BaseModel):
    """One recorded series: ``t`` epoch seconds ascending, ``y`` values (None = no data)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    role: str = Field(description="'alert' (a member alert's metric) or 'impact'")
    metric: str
    scope: dict[str, str] = Field(default_factory=dict)
    kind: str = ""
    t: list[float] = Field(default_factory=list)
    y: list[float | None] = Field(default_factory=list)
    dropped: int = Field(default=0, description="oldest points dropped to stay bounded")

    def add(self, ts: float, value: float | None, max_points: int) -> None:
        if self.t and ts <= self.t[-1]:
            return  # already have this tick (the lookback includes the current one)
        self.t.append(round(ts, 3))
        self.y.append(_compact(value))
        excess = len(self.t) - max_points
        if excess > 0:
            del self.t[:excess], self.y[:excess]
            self.dropped += excess


class IncidentSeries(BaseModel):
    """The ``series:{incident_id}`` document."""

    model_config = ConfigDict(extra="ignore")

    v: int = 1
    incident_id: str
    series: list[Series] = Field(default_factory=list)
    #: label -> value -> requests counted (failed ones for error alerts) while the incident was open
    affected: dict[str, dict[str, int]] = Field(default_factory=dict)
    affected_overflow: dict[str, int] = Field(default_factory=dict)
    skipped_series: int = 0

    def get(self, series_id: str) -> Series | None:
        return next((s for s in self.series if s.id == series_id), None)

    def impact(self, metric: str, scope: Mapping[str, str]) -> Series | None:
        return self.get(impact_id(metric, scope))


def alert_series_id(fingerprint: str, metric: str) -> str:
    return f"alert:{fingerprint}:{metric}"


def impact_id(metric: str, scope: Mapping[str, str]) -> str:
    return f"impact:{scope_key(scope)}:{metric}"


def load_series(store: Store, incident_id: str) -> IncidentSeries | None:
    """The recorded series of an incident, or None when none were recorded (or unreadable)."""
    raw = store.get_state(state_name(incident_id))
    if raw is None:
        return None
    try:
        return IncidentSeries.model_validate_json(raw)
    except ValidationError as exc:
        log.warning("series of %s unreadable, ignored: %s", incident_id, exc)
        return None
