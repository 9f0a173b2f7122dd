"""Evidence for alerts: what was observed, what was expected, over which window, and a few
request ids to look at. Also names the model behind a cost alert, so a price change on one
model is attributable when it lifts the spend of every workflow using that model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from gatewarden.models import Alert, Evidence

#: How many request ids an alert carries, and for how many alerts per tick they are looked up
#: (each lookup is one pass over the tick's records; a provider-wide outage fires many alerts).
SAMPLES = 3
MAX_SAMPLED_ALERTS = 6
_SCOPE_COLUMNS = ("provider", "model", "requested_model", "team", "api_key", "workflow")


def fmt(metric: str, value: float) -> str:
    if np.isnan(value):
        return "n/a"
    if metric.endswith(("_rate", "_ratio")) or metric == "share":
        return f"{value:.1%}"
    if metric.startswith("cost"):
        return f"${value:.4g}"
    return f"{value:.4g}"


class _Columns:
    """The tick's records as numpy columns, converted once per tick and only when needed."""

    def __init__(self, records: pd.DataFrame) -> None:
        self.records = records
        self._cache: dict[str, npt.NDArray[Any]] = {}

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        column = self._cache.get(name)
        if column is None:
            series = self.records[name]
            kind = series.dtype.kind
            column = series.to_numpy(dtype=object if kind not in "biuf" else None)
            self._cache[name] = column
        return column

    def in_scope(self, scope: Mapping[str, str]) -> npt.NDArray[np.intp]:
        """Positions of the records inside ``scope`` (a session matches on its id alone)."""
        if "session_id" in scope:
            scope = {"session_id": scope["session_id"]}
        mask = np.ones(len(self.records), dtype=bool)
        for label, value in scope.items():
            if label not in _SCOPE_COLUMNS and label != "session_id":
                return np.empty(0, dtype=np.intp)
            mask &= self[label] == value
        return np.flatnonzero(mask)

    def sample_ids(self, kind: str, rows: npt.NDArray[np.intp]) -> tuple[str, ...]:
        """Up to :data:`SAMPLES` request ids among ``rows`` that show the problem best."""
        if rows.size == 0:
            return ()
        if kind == "error_rate":
            status = self["status"][rows]
            rows = rows[((status >= 500) | (status == 429)) & (self["provider"][rows] != "gateway")]
        elif kind == "fallback_storm":
            rows = rows[self["fallback"][rows].astype(bool)]
        elif kind in ("ttft", "cost"):
            values = self["ttft_ms" if kind == "ttft" else "cost_usd"][rows].astype(np.float64)
            ok = ~np.isnan(values)
            rows, values = rows[ok], values[ok]
            rows = rows[np.argsort(-values, kind="stable")]
        else:  # traffic, agent_loop: the latest calls
            rows = rows[::-1]
        return tuple(str(v) for v in self["request_id"][rows[:SAMPLES]].tolist())

    def spend_by_model(self, rows: npt.NDArray[np.intp]) -> list[tuple[str, float]]:
        """Share of the spend of ``rows`` per served model, largest first."""
        if rows.size == 0:
            return []
        models, codes = np.unique(self["model"][rows].astype(str), return_inverse=True)
        spend = np.bincount(codes, weights=self["cost_usd"][rows].astype(np.float64))
        total = float(spend.sum())
        if total <= 0:
            return []
        order = np.argsort(-spend, kind="stable")
        return [(str(models[i]), float(spend[i] / total)) for i in order.tolist()]


def enrich(alerts: list[Alert], records: pd.DataFrame) -> list[Alert]:
    """Add sample request ids to the strongest alerts and name the models behind cost alerts.

    A cost alert outside the model level gets ``driven by <model> price x<r>`` when a model
    price alert fired this tick for a model carrying at least a fifth of the alert's spend,
    else ``top model <m> (<share> of spend)``.
    """
    if not alerts or records.empty:
        return alerts
    prices: dict[str, float] = {}
    for alert in alerts:
        if alert.kind == "cost" and "model" in alert.scope and alert.evidence.expected > 0:
            ratio = alert.evidence.observed / alert.evidence.expected
            prices[alert.scope["model"]] = max(ratio, prices.get(alert.scope["model"], 0.0))
    ranked = sorted(range(len(alerts)), key=lambda i: -alerts[i].evidence.score)
    sampled = set(ranked[:MAX_SAMPLED_ALERTS])
    columns = _Columns(records)
    out: list[Alert] = []
    for i, alert in enumerate(alerts):
        needs_model = alert.kind == "cost" and "model" not in alert.scope
        if i not in sampled and not needs_model:
            out.append(alert)
            continue
        rows = columns.in_scope(alert.scope)
        update: dict[str, object] = {}
        if i in sampled:
            update["sample_ids"] = columns.sample_ids(alert.kind, rows)
        if needs_model:
            note = _model_note(columns.spend_by_model(rows), prices)
            if note:
                update["detail"] = f"{alert.evidence.detail}; {note}"
        evidence = alert.evidence.model_copy(update=update)
        out.append(alert.model_copy(update={"evidence": evidence}))
    return out


def _model_note(shares: list[tuple[str, float]], prices: Mapping[str, float]) -> str:
    if not shares:
        return ""
    for model, share in shares:
        if model in prices and share >= 0.2:
            return f"driven by {model} price x{prices[model]:.2f} ({share:.0%} of this spend)"
    top, share = shares[0]
    return f"top model {top} ({share:.0%} of spend)"


def evidence(
    metric: str,
    volume_name: str,
    observed: float,
    expected: float,
    score: float,
    window_s: float,
    volume: float,
) -> Evidence:
    detail = (
        f"{metric} {fmt(metric, observed)} vs baseline {fmt(metric, expected)}"
        f" (score {score:.1f}, {volume_name} {volume:g})"
    )
    return Evidence(
        metric=metric,
        observed=observed,
        expected=expected,
        score=score,
        window_s=window_s,
        volume=volume,
        detail=detail,
    )
