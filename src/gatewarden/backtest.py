"""Replay a request log through the live pipeline on a virtual clock.

Detection and correlation run exactly as in live mode; remediation and notification are off
(nothing may touch a gateway from a replay). Output is one JSON document.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gatewarden.aggregate import AggregateStage, SeriesHistory
from gatewarden.clock import VirtualClock
from gatewarden.correlate import CorrelateConfig, CorrelateStage
from gatewarden.detect import DetectStage
from gatewarden.detect.spec import DetectorSpec
from gatewarden.ingest.request_log import read_log
from gatewarden.models import EventType
from gatewarden.pipeline import Pipeline
from gatewarden.projections import incidents_from_events
from gatewarden.protocols import Batch
from gatewarden.store import SQLiteStore


class FrameReplaySource:
    """Serves a ts-sorted records frame in tick-sized slices (binary search, no copies)."""

    name = "replay"

    def __init__(self, records: pd.DataFrame) -> None:
        self._records = records.sort_values("ts", kind="stable").reset_index(drop=True)
        self._ts = self._records["ts"].to_numpy()
        self._pos = 0

    def pull(self, until: float) -> Batch:
        end = int(np.searchsorted(self._ts, until, side="left"))
        frame = self._records.iloc[self._pos : end]
        self._pos = end
        return Batch(records=frame)


@dataclass
class BacktestResult:
    document: dict[str, Any]


def run_backtest(
    path: Path,
    specs: Sequence[DetectorSpec],
    *,
    tick_seconds: float = 15.0,
    correlate: CorrelateConfig | None = None,
) -> dict[str, Any]:
    batch = read_log(path)
    records = batch.records
    store = SQLiteStore(":memory:")
    if records.empty:
        return _document(store, records=0, malformed=batch.malformed)
    first = float(records["ts"].min())
    last = float(records["ts"].max())
    # Tick boundaries aligned to the tick length, as a live daemon started on the hour would be.
    start = math.floor(first / tick_seconds) * tick_seconds
    clock = VirtualClock(start)
    pipeline = Pipeline(
        [FrameReplaySource(records)],
        [
            AggregateStage(),
            DetectStage(specs, history=SeriesHistory(maxlen=4)),
            CorrelateStage(store, correlate),
        ],
        clock,
        tick_seconds=tick_seconds,
    )
    now = start
    while now <= last:
        now += tick_seconds
        clock.set(now)
        pipeline.tick(now)
    document = _document(store, records=len(records), malformed=batch.malformed)
    store.close()
    return document


def _document(store: SQLiteStore, *, records: int, malformed: int) -> dict[str, Any]:
    events = store.events()
    alerts_total = sum(1 for e in events if e.type is EventType.ALERT_FIRED)
    incidents = [
        {
            "id": inc.id,
            "kinds": list(inc.kinds),
            "opened_at": inc.opened_at,
            "resolved_at": inc.resolved_at,
            "scope": dict(inc.scope),
            "severity": inc.severity.value,
            "alerts": len(inc.alerts),
        }
        for inc in incidents_from_events(events)
    ]
    return {
        "incidents": incidents,
        "alerts_total": alerts_total,
        "records": records,
        "malformed": malformed,
    }
