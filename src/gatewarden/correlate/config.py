"""Correlation settings (the ``correlate:`` section of the daemon config)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gatewarden.correlate.impact import ImpactConfig
from gatewarden.correlate.rules import DEFAULT_RULES, InhibitRule


class CorrelateConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    open_after_ticks: int = Field(
        default=1, ge=1, description="consecutive bad ticks before an alert fires (flap guard)"
    )
    resolve_after_ticks: int = Field(
        default=4, ge=1, description="consecutive good (or no-data) ticks before it resolves"
    )
    group_window_s: float = Field(
        default=600.0, ge=0, description="a related alert this close to an incident joins it"
    )
    reopen_window_s: float = Field(
        default=900.0, ge=0, description="a recurrence this soon after resolution reopens"
    )
    update_interval_s: float = Field(
        default=300.0, gt=0, description="at most one alert.updated event per alert per interval"
    )
    inhibit_rules: tuple[InhibitRule, ...] = Field(
        default=DEFAULT_RULES,
        description="which alert explains which (grouping, inhibition, root cause); "
        "setting this replaces the shipped defaults",
    )
    impact: ImpactConfig = ImpactConfig()
