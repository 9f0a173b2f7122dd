"""Request records of one tick window -> one metrics frame per grouping level.

Every level is one pandas ``groupby`` over the window's rows, so the cost is a handful of
vectorised passes whatever the number of rows; Python only loops over the seven levels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Grouping levels and their scope labels (in ``SCOPE_LABELS`` order, so the joined key is the
#: canonical :func:`gatewarden.models.scope_key`).
LEVELS: dict[str, tuple[str, ...]] = {
    "global": (),
    "provider": ("provider",),
    "model": ("provider", "model"),
    "requested_model": ("requested_model",),
    "team": ("team",),
    "api_key": ("team", "api_key"),
    "workflow": ("workflow",),
}

#: Levels that describe what providers did; gateway-side rejections never reached a provider,
#: so they are left out of these levels entirely (they would dilute the provider error rate).
PROVIDER_LEVELS: frozenset[str] = frozenset({"provider", "model", "requested_model"})

#: ``provider`` value of rows the gateway answered itself (blocked key 401, rate limit 429).
GATEWAY_PROVIDER = "gateway"

#: Labels that every record carries; a level keyed on an optional label (team, workflow) only
#: holds rows that have it, except ``api_key`` whose team is an optional qualifier.
_OPTIONAL_QUALIFIERS: dict[str, frozenset[str]] = {"api_key": frozenset({"team"})}

#: Metric columns of every level frame, in order.
METRICS: tuple[str, ...] = (
    "requests",
    "errors",
    "error_rate",
    "rejected",
    "fallbacks",
    "fallback_ratio",
    "ttft_p50",
    "ttft_p95",
    "latency_p95",
    "cost",
    "cost_per_request",
    "input_tokens",
    "output_tokens",
    "rps",
)

#: Metrics that add up across series (``rps`` does because every series shares the window).
ADDITIVE: frozenset[str] = frozenset(
    {
        "requests",
        "errors",
        "rejected",
        "fallbacks",
        "cost",
        "input_tokens",
        "output_tokens",
        "rps",
    }
)

#: Ratio metrics as (numerator, denominator) of additive metrics.
RATIOS: dict[str, tuple[str, str]] = {
    "error_rate": ("errors", "requests"),
    "fallback_ratio": ("fallbacks", "requests"),
    "cost_per_request": ("cost", "requests"),
}

#: Percentile metrics: they do not add up; see :meth:`SeriesHistory.query`.
PERCENTILES: frozenset[str] = frozenset({"ttft_p50", "ttft_p95", "latency_p95"})

_COUNTS = ("requests", "errors", "rejected", "fallbacks", "input_tokens", "output_tokens")
_SUMS = ("errors", "rejected", "fallbacks", "cost", "input_tokens", "output_tokens")


def aggregate(records: pd.DataFrame, *, start: float, end: float) -> dict[str, pd.DataFrame]:
    """Aggregate one tick window's request records into one frame per level of :data:`LEVELS`.

    Each frame is indexed by the canonical scope key (``provider=openai,model=gpt-4o``; the
    global frame's single row is keyed ``""``), carries the level's label columns (NaN where an
    optional qualifier is missing, and then left out of the key) and the :data:`METRICS`.
    """
    window = end - start
    if not window > 0:
        raise ValueError(f"tick window must be positive, got start={start} end={end}")
    rows = _prepare(records)
    frames = {"global": _finish(_global_sums(rows), (), window)}
    provider_rows = rows[~rows["rejected"].astype(bool)]
    for level, labels in LEVELS.items():
        if not labels:
            continue
        source = provider_rows if level in PROVIDER_LEVELS else rows
        optional = _OPTIONAL_QUALIFIERS.get(level, frozenset())
        required = [label for label in labels if label not in optional]
        source = source.dropna(subset=required)
        frames[level] = _finish(_group_sums(source, labels), labels, window)
    return frames


def empty_level_frame(level: str) -> pd.DataFrame:
    """A zero-row frame with the columns and dtypes of ``level``."""
    labels = LEVELS[level]
    columns: dict[str, pd.Series] = {label: pd.Series(dtype="object") for label in labels}
    for metric in METRICS:
        dtype = "int64" if metric in _COUNTS else "float64"
        columns[metric] = pd.Series(dtype=dtype)
    frame = pd.DataFrame(columns)
    frame.index = pd.Index([], dtype="object", name="scope")
    return frame


def _prepare(records: pd.DataFrame) -> pd.DataFrame:
    """The columns the sums need, computed once for all levels."""
    status = records["status"].to_numpy(dtype=np.int64)
    rejected = (records["provider"] == GATEWAY_PROVIDER).to_numpy(dtype=bool)
    provider_error = (status >= 500) | (status == 429)
    labels = dict.fromkeys(label for level in LEVELS.values() for label in level)
    out = pd.DataFrame({label: records[label] for label in labels})
    out["errors"] = (provider_error & ~rejected).astype(np.int64)
    out["rejected"] = rejected.astype(np.int64)
    out["fallbacks"] = records["fallback"].to_numpy(dtype=bool).astype(np.int64)
    out["cost"] = records["cost_usd"].to_numpy(dtype=np.float64)
    out["input_tokens"] = records["input_tokens"].to_numpy(dtype=np.int64)
    out["output_tokens"] = records["output_tokens"].to_numpy(dtype=np.int64)
    out["ttft_ms"] = records["ttft_ms"].to_numpy(dtype=np.float64)
    out["latency_ms"] = records["latency_ms"].to_numpy(dtype=np.float64)
    return out


def _group_sums(rows: pd.DataFrame, labels: tuple[str, ...]) -> pd.DataFrame:
    grouped = rows.groupby(list(labels), dropna=False, sort=True)
    out = grouped[list(_SUMS)].sum()
    out["requests"] = grouped.size()
    out["ttft_p50"] = grouped["ttft_ms"].quantile(0.5)
    out["ttft_p95"] = grouped["ttft_ms"].quantile(0.95)
    out["latency_p95"] = grouped["latency_ms"].quantile(0.95)
    return out.reset_index()


def _global_sums(rows: pd.DataFrame) -> pd.DataFrame:
    sums: dict[str, float | int] = {name: rows[name].sum() for name in _SUMS}
    sums["requests"] = len(rows)
    sums["ttft_p50"] = float(rows["ttft_ms"].quantile(0.5))
    sums["ttft_p95"] = float(rows["ttft_ms"].quantile(0.95))
    sums["latency_p95"] = float(rows["latency_ms"].quantile(0.95))
    return pd.DataFrame({name: [value] for name, value in sums.items()})


def _finish(sums: pd.DataFrame, labels: tuple[str, ...], window: float) -> pd.DataFrame:
    """Derive ratios, order the columns and index by canonical scope key."""
    requests = sums["requests"].to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_request = np.where(requests > 0, 1.0 / np.where(requests > 0, requests, 1.0), np.nan)
    sums["error_rate"] = sums["errors"].to_numpy(dtype=np.float64) * per_request
    sums["fallback_ratio"] = sums["fallbacks"].to_numpy(dtype=np.float64) * per_request
    sums["cost_per_request"] = sums["cost"].to_numpy(dtype=np.float64) * per_request
    sums["rps"] = requests / window
    for name in _COUNTS:
        sums[name] = sums[name].astype(np.int64)
    for name in METRICS:
        if name not in _COUNTS:
            sums[name] = sums[name].astype(np.float64)
    frame = sums[[*labels, *METRICS]].copy()
    for label in labels:
        frame[label] = frame[label].astype(object)
    frame.index = pd.Index(_scope_keys(frame, labels), dtype="object", name="scope")
    return frame


def _scope_keys(frame: pd.DataFrame, labels: tuple[str, ...]) -> list[str]:
    """Canonical scope keys, one per group; labels with a missing value are left out.

    One list comprehension per label over the groups (not the records): measured ~5x faster
    than pandas string concatenation on object columns, and equal to ``scope_key`` per row.
    """
    keys = [""] * len(frame)
    for label in labels:
        parts = [
            f"{label}={value}" if isinstance(value, str) or pd.notna(value) else ""
            for value in frame[label].tolist()
        ]
        keys = [
            f"{key},{part}" if key and part else key or part
            for key, part in zip(keys, parts, strict=True)
        ]
    return keys
