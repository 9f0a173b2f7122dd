"""Replay a request log through the live pipeline on a virtual clock.

Detection and correlation run exactly as in live mode — the same :class:`Pipeline`, the same
``DetectStage`` and ``CorrelateStage`` objects, one ``Pipeline.tick`` per tick — while
remediation and notification are off (nothing may touch a gateway from a replay). Output is one
JSON document.

What the replay does differently is ingest and aggregation, because both are per-record work:
the log is read in blocks by the pyarrow parser (:mod:`gatewarden.ingest.fast_log`, on a
background thread, so parsing the next block overlaps detection on this one), and all complete
ticks of a block are aggregated in one pass (:func:`gatewarden.aggregate.batch.aggregate_ticks`,
frames identical to the live ``aggregate``). :class:`PrecomputedAggregateStage` then hands each
tick its frames. Memory is bounded by the block size plus the detector and incident state,
whatever the log length.

Ticks are aligned to multiples of ``tick_seconds`` (as a daemon started on the hour would be):
tick ``k`` covers ``[origin + k*tick, origin + (k+1)*tick)`` and the last tick is the one holding
the last record. Logs are expected in ``ts`` order; a record older than a tick already run is
counted in the next tick, as a live daemon would count a late record.
"""

from __future__ import annotations

import math
import queue
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import pandas as pd

from gatewarden.aggregate import SeriesHistory
from gatewarden.aggregate.batch import aggregate_ticks
from gatewarden.clock import VirtualClock
from gatewarden.correlate import CorrelateConfig, CorrelateStage
from gatewarden.detect import DetectStage
from gatewarden.detect.spec import DetectorSpec
from gatewarden.ingest.fast_log import DEFAULT_BLOCK_BYTES, Progress, concat_records, iter_log
from gatewarden.models import EventType
from gatewarden.pipeline import Pipeline
from gatewarden.projections import incident_members, incidents_from_events
from gatewarden.protocols import Batch, Stage, Tick
from gatewarden.store import SQLiteStore

#: Chunks of aggregated ticks the reader thread may run ahead of the stages (memory bound).
PREFETCH_CHUNKS = 2

_T = TypeVar("_T")


class _Feed:
    """Precomputed ticks waiting to be run: each tick's end, records and level frames."""

    def __init__(self) -> None:
        self.queue: deque[tuple[float, pd.DataFrame, dict[str, pd.DataFrame]]] = deque()
        self.current: dict[str, pd.DataFrame] = {}


class ReplaySource:
    """Source side of the replay: hands ``Pipeline.tick`` the records of the tick it runs."""

    name = "replay"

    def __init__(self, feed: _Feed) -> None:
        self._feed = feed

    def pull(self, until: float) -> Batch:
        end, records, frames = self._feed.queue.popleft()
        if end != until:
            raise RuntimeError(f"replay out of step: tick ends at {until}, feed at {end}")
        self._feed.current = frames
        return Batch(records=records)


class PrecomputedAggregateStage:
    """The aggregate stage of a replay: the tick's frames were computed in batch beforehand
    (identical to what :class:`gatewarden.aggregate.AggregateStage` would compute)."""

    name = "aggregate"

    def __init__(self, feed: _Feed) -> None:
        self._feed = feed

    def run(self, tick: Tick) -> None:
        tick.frames.update(self._feed.current)


@dataclass
class _Chunk:
    """Consecutive complete ticks, aggregated: each tick's end, records and level frames."""

    ticks: list[tuple[float, pd.DataFrame, dict[str, pd.DataFrame]]]
    records: int
    malformed: int


class _TickCutter:
    """Cuts a ts-ordered stream of record blocks into complete ticks and aggregates them.

    Runs on the reader thread: parsing, cutting and aggregating (mostly numpy and pyarrow,
    which release the GIL) overlap the detect and correlate stages on the main thread.
    """

    def __init__(self, tick_seconds: float) -> None:
        if not tick_seconds > 0:
            raise ValueError("tick_seconds must be positive")
        self.tick_seconds = tick_seconds
        self.origin: float | None = None
        self.next_tick = 0  # number of the first tick not cut yet
        self.pending: list[pd.DataFrame] = []
        self.last_ts = -math.inf

    def chunks(self, batches: Iterator[Batch]) -> Iterator[_Chunk]:
        records = malformed = 0
        for batch in batches:
            malformed += batch.malformed
            records += len(batch.records)
            if batch.records.empty:
                continue
            ts = batch.records["ts"].to_numpy(dtype=np.float64)
            if self.origin is None:
                self.origin = math.floor(float(ts.min()) / self.tick_seconds) * self.tick_seconds
            self.last_ts = max(self.last_ts, float(ts.max()))
            self.pending.append(batch.records)
            # In a ts-ordered log every tick ending at or before the newest record is complete.
            complete = math.floor((self.last_ts - self.origin) / self.tick_seconds)
            if complete > self.next_tick:
                yield self._cut(complete, records, malformed)
                records = malformed = 0
        if self.origin is not None:
            last = math.floor((self.last_ts - self.origin) / self.tick_seconds) + 1
            yield self._cut(last, records, malformed)
        elif records or malformed:
            yield _Chunk([], records, malformed)

    def _cut(self, end_tick: int, records_read: int, malformed: int) -> _Chunk:
        """Aggregate ticks ``next_tick .. end_tick-1``; rows of later ticks stay pending."""
        assert self.origin is not None
        count = end_tick - self.next_tick
        records = concat_records(self.pending)
        # origin + k*tick for every boundary, so a non-integer tick length does not drift
        bounds = self.origin + self.tick_seconds * np.arange(
            self.next_tick, end_tick + 1, dtype=np.float64
        )
        ts = records["ts"].to_numpy(dtype=np.float64)
        # late records (before the first open tick) count in it, as a live daemon counts them
        ticks = np.clip(np.searchsorted(bounds, ts, side="right") - 1, 0, count)
        if not np.all(ticks[1:] >= ticks[:-1]):
            order = np.argsort(ticks, kind="stable")
            records, ticks = records.take(order), ticks[order]
        split = int(np.searchsorted(ticks, count, side="left"))
        self.pending = [records.iloc[split:]] if split < len(records) else []
        records, ticks = records.iloc[:split], ticks[:split]
        frames = aggregate_ticks(records, bounds, ticks=ticks)
        starts = np.searchsorted(ticks, np.arange(count + 1), side="left")
        entries = [
            (
                float(bounds[k + 1]),
                records.iloc[int(starts[k]) : int(starts[k + 1])].reset_index(drop=True),
                frames.frames(k),
            )
            for k in range(count)
        ]
        self.next_tick = end_tick
        return _Chunk(entries, records_read, malformed)


def _prefetched(items: Iterator[_T], depth: int) -> Iterator[_T]:
    """Yield ``items`` while a worker thread produces up to ``depth`` more ahead.

    An error in the worker is raised here, after the items produced before it.
    """
    slots: queue.Queue[tuple[bool, _T | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[bool, _T | None]) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((False, item)):
                    return
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a generator: run its cleanup (closes the log file) on this thread
            put((True, None))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="backtest-read") as pool:
        future = pool.submit(produce)
        try:
            while True:
                done, item = slots.get()
                if done:
                    future.result()  # re-raises the worker's error, if any
                    return
                yield cast(_T, item)
        finally:
            stop.set()


class _Runner:
    """Runs precomputed ticks through one live Pipeline on a virtual clock."""

    def __init__(
        self, specs: Sequence[DetectorSpec], store: SQLiteStore, correlate: CorrelateConfig | None
    ) -> None:
        self.feed = _Feed()
        self.stages: list[Stage] = [
            PrecomputedAggregateStage(self.feed),
            DetectStage(specs, history=SeriesHistory(maxlen=4)),
            CorrelateStage(store, correlate),
        ]
        self.clock: VirtualClock | None = None
        self.pipeline: Pipeline | None = None

    def run(self, chunk: _Chunk, tick_seconds: float) -> None:
        for end, records, frames in chunk.ticks:
            if self.pipeline is None or self.clock is None:
                self.clock = VirtualClock(end - tick_seconds)
                source = ReplaySource(self.feed)
                self.pipeline = Pipeline(
                    [source], self.stages, self.clock, tick_seconds=tick_seconds
                )
            self.feed.queue.append((end, records, frames))
            self.clock.set(end)
            self.pipeline.tick(end)


def run_backtest(
    path: Path,
    specs: Sequence[DetectorSpec],
    *,
    tick_seconds: float = 15.0,
    correlate: CorrelateConfig | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Replay ``path`` (``.jsonl`` or ``.jsonl.gz``) and return the backtest document:
    ``{"incidents": [...], "alerts_total", "records", "malformed"}``."""
    store = SQLiteStore(":memory:")
    try:
        runner = _Runner(specs, store, correlate)
        cutter = _TickCutter(tick_seconds)
        batches = iter_log(path, block_bytes=block_bytes, progress=progress)
        records = malformed = 0
        for chunk in _prefetched(cutter.chunks(batches), PREFETCH_CHUNKS):
            records += chunk.records
            malformed += chunk.malformed
            runner.run(chunk, tick_seconds)
        return _document(store, records=records, malformed=malformed)
    finally:
        store.close()


def _document(store: SQLiteStore, *, records: int, malformed: int) -> dict[str, Any]:
    events = store.events()
    alerts_total = sum(1 for e in events if e.type is EventType.ALERT_FIRED)
    members = incident_members(events)
    incidents = [
        {
            "id": inc.id,
            "kinds": list(inc.kinds),
            "opened_at": inc.opened_at,
            "resolved_at": inc.resolved_at,
            "scope": dict(inc.scope),
            "severity": inc.severity.value,
            "alerts": len(inc.alerts),
            "members": members.get(inc.id, []),
        }
        for inc in incidents_from_events(events)
    ]
    return {
        "incidents": incidents,
        "alerts_total": alerts_total,
        "records": records,
        "malformed": malformed,
    }
