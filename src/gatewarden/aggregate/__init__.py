"""Per-tick aggregation of request records into per-level metric frames, and their history."""

from __future__ import annotations

from gatewarden.aggregate.frames import (
    ADDITIVE,
    GATEWAY_PROVIDER,
    LEVELS,
    METRICS,
    PERCENTILES,
    PROVIDER_LEVELS,
    RATIOS,
    aggregate,
    empty_level_frame,
)
from gatewarden.aggregate.history import HistoryEntry, SeriesHistory, level_for
from gatewarden.protocols import Tick


class AggregateStage:
    """Pipeline stage: ``tick.frames`` from ``tick.records`` of ``[tick.start, tick.now)``."""

    name = "aggregate"

    def run(self, tick: Tick) -> None:
        tick.frames.update(aggregate(tick.records, start=tick.start, end=tick.now))


__all__ = [
    "ADDITIVE",
    "GATEWAY_PROVIDER",
    "LEVELS",
    "METRICS",
    "PERCENTILES",
    "PROVIDER_LEVELS",
    "RATIOS",
    "AggregateStage",
    "HistoryEntry",
    "SeriesHistory",
    "aggregate",
    "empty_level_frame",
    "level_for",
]
