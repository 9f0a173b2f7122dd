"""PNG chart of the triggering series around the incident (matplotlib, Agg canvas).

Drawn at delivery from the points persisted in the chart message, so a retry after an outage
uploads the same picture. The object-oriented API (``Figure`` + ``FigureCanvasAgg``) is used
instead of ``pyplot``: no global backend switch, no global figure registry, safe off the main
thread. matplotlib is imported on first use, keeping it off the daemon's start-up path.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

_MARKERS = {
    "since": ("first anomalous", "#d62728"),
    "opened": ("opened", "#ff7f0e"),
    "mitigated": ("mitigated", "#2ca02c"),
    "resolved": ("resolved", "#1f77b4"),
}


def _origin(meta: Mapping[str, Any], first: float) -> float:
    markers = meta.get("markers")
    opened = markers.get("opened") if isinstance(markers, Mapping) else None
    return float(opened) if isinstance(opened, int | float) else first


def _points(meta: Mapping[str, Any]) -> tuple[list[float], list[float]]:
    """(timestamps, values); a missing value is NaN so the line shows a gap, not a zero."""
    xs: list[float] = []
    ys: list[float] = []
    for item in meta.get("points") or []:
        if not isinstance(item, list | tuple) or len(item) != 2:
            continue
        ts, value = item
        if not isinstance(ts, int | float):
            continue
        xs.append(float(ts))
        ok = isinstance(value, int | float) and math.isfinite(value)
        ys.append(float(value) if ok else math.nan)
    if not any(math.isfinite(y) for y in ys):
        raise ValueError("chart has no data points")
    return xs, ys


def render_chart(
    meta: Mapping[str, Any], *, width_in: float = 8.0, height_in: float = 3.0
) -> bytes:
    """The chart described by a chart message's metadata, as PNG bytes.

    Raises ValueError when the metadata holds no usable point (the outbox records a rejection).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    stamps, ys = _points(meta)
    # Minutes relative to the opening read at a glance ("it started 6 minutes before we paged").
    origin = _origin(meta, stamps[0])
    xs = [(ts - origin) / 60.0 for ts in stamps]
    metric = str(meta.get("metric", "value"))
    scope = meta.get("scope") or {}
    where = ",".join(f"{k}={v}" for k, v in scope.items()) if isinstance(scope, Mapping) else ""
    fig = Figure(figsize=(width_in, height_in), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(xs, ys, color="#1f77b4", linewidth=1.6, marker="o", markersize=2.5, label=metric)
    baseline = meta.get("baseline")
    if isinstance(baseline, int | float) and math.isfinite(baseline):
        ax.axhline(float(baseline), color="#7f7f7f", linestyle="--", linewidth=1, label="baseline")
    markers = meta.get("markers") or {}
    lo, hi = min(stamps), max(stamps)
    for name, (label, color) in _MARKERS.items():
        ts = markers.get(name) if isinstance(markers, Mapping) else None
        if isinstance(ts, int | float) and lo <= ts <= hi:
            ax.axvline((ts - origin) / 60.0, color=color, linestyle=":", linewidth=1.2, label=label)
    ax.set_title(f"{metric} on {where or 'all traffic'}", fontsize=10)
    opened = datetime.fromtimestamp(origin, tz=UTC).strftime("%H:%M:%S UTC")
    ax.set_xlabel(f"minutes from the incident opening ({opened})", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()
