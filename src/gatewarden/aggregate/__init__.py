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
from gatewarden.aggregate.history import HistoryEntry, SeriesHistory, level_for, ticks_needed
from gatewarden.aggregate.labelcache import LabelCache
from gatewarden.protocols import Tick


class AggregateStage:
    """Pipeline stage: ``tick.frames`` from ``tick.records`` of ``[tick.start, tick.now)``."""

    name = "aggregate"

    def __init__(self) -> None:
        self._cache = LabelCache()

    def run(self, tick: Tick) -> None:
        frames = aggregate(tick.records, start=tick.start, end=tick.now, cache=self._cache)
        tick.frames.update(frames)


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
    "LabelCache",
    "SeriesHistory",
    "aggregate",
    "empty_level_frame",
    "level_for",
    "ticks_needed",
]
