"""What an incident costs while it lasts, and the severity that follows from it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from gatewarden.models import Severity

_COLUMNS = ("provider", "model", "requested_model", "team", "api_key", "workflow", "session_id")


class ImpactConfig(BaseModel):
    """An incident becomes critical once its accumulated impact crosses any threshold."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    critical_failed_requests: int = Field(default=500, ge=1)
    critical_cost_usd: float = Field(default=100.0, gt=0)
    critical_keys: int = Field(default=10, ge=1)


@dataclass
class Impact:
    failed_requests: int = 0
    requests: int = 0
    cost_usd: float = 0.0
    keys: set[str] = field(default_factory=set)
    teams: set[str] = field(default_factory=set)
    workflows: set[str] = field(default_factory=set)

    def add(self, records: pd.DataFrame, scope: Mapping[str, str]) -> None:
        """Fold one tick's records inside ``scope`` into the running totals."""
        if records.empty or any(label not in _COLUMNS for label in scope):
            return
        mask = pd.Series(True, index=records.index)
        for label, value in scope.items():
            mask &= records[label] == value
        inside = records.loc[mask]
        if inside.empty:
            return
        failed = inside.loc[inside["status"] >= 400]
        self.requests += len(inside)
        self.failed_requests += len(failed)
        self.cost_usd += float(inside["cost_usd"].sum())
        # Who felt it: the keys, teams and workflows of the failed calls (of all calls when
        # nothing failed, e.g. a cost or traffic incident).
        felt = failed if not failed.empty else inside
        self.keys.update(felt["api_key"].dropna().astype(str))
        self.teams.update(felt["team"].dropna().astype(str))
        self.workflows.update(felt["workflow"].dropna().astype(str))

    def severity(self, config: ImpactConfig) -> tuple[Severity, str] | None:
        """Critical with the reason, when a threshold is crossed; else None."""
        if self.failed_requests >= config.critical_failed_requests:
            return Severity.CRITICAL, f"{self.failed_requests} failed requests"
        if self.cost_usd >= config.critical_cost_usd:
            return Severity.CRITICAL, f"${self.cost_usd:.2f} spent in scope"
        if len(self.keys) >= config.critical_keys:
            return Severity.CRITICAL, f"{len(self.keys)} keys affected"
        return None

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "failed_requests": self.failed_requests,
            "cost_usd": round(self.cost_usd, 6),
            "keys": len(self.keys),
            "teams": len(self.teams),
            "workflows": len(self.workflows),
        }
