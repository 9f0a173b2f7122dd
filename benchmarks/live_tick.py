"""Live-mode cost: one pipeline tick over 100k active series, and detector state per series.

    python -m benchmarks.live_tick [--series 100000] [--ticks 8] [--detectors detectors]

Builds the live daemon's stage chain — ``AggregateStage``, ``DetectStage`` with the shipped
detectors (and the daemon's ``SeriesHistory``), ``CorrelateStage`` on an in-memory SQLite store —
and feeds it ticks of synthetic traffic in which every one of ``--series`` API keys makes one
call per tick (so the ``api_key`` level holds that many active series; the other levels hold a
handful). After a warm-up long enough for every detector to start scoring it prints:

* **ms per tick** (median and worst of the measured ticks, whole ``Pipeline.tick``) and the
  split between the stages;
* **bytes per series** of detector state: memory the detect stage retains after the warm-up
  (tracemalloc, frames history excluded), over the number of series it tracks;
* the frames history's retained bytes per series, for the daemon's history length.

Targets (issue 3): <= 100 ms per tick, <= 2 KB per series. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import statistics
import sys
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from gatewarden.aggregate import AggregateStage, SeriesHistory, ticks_needed
from gatewarden.clock import VirtualClock
from gatewarden.correlate import CorrelateStage
from gatewarden.detect import DetectStage, load_detector_specs
from gatewarden.gateways.traffic import PREVIEW_TICKS
from gatewarden.ingest.request_log import COLUMNS
from gatewarden.pipeline import Pipeline
from gatewarden.protocols import Batch, Stage, Tick
from gatewarden.report.series import LOOKBACK_TICKS
from gatewarden.store import SQLiteStore

REPO = Path(__file__).resolve().parent.parent
TICK_S = 15.0
START = 1_748_937_600.0
PROVIDERS = np.array(["openai", "azure", "anthropic"], dtype=object)
MODELS = np.array(["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5"], dtype=object)


class Traffic:
    """Ticks of synthetic records: every key calls once per tick, values vary per tick.

    One key in ten is an agent: its calls carry a session id, and each session lasts four
    ticks (a minute) with a fresh prompt per call, as a healthy agent's would.
    """

    def __init__(self, series: int, seed: int = 5) -> None:
        self.series = series
        self.rng = np.random.default_rng(seed)
        idx = np.arange(series)
        self.keys = np.array([f"key-{i:06d}" for i in idx], dtype=object)
        self.teams = np.array([f"team-{i % 97:02d}" for i in idx], dtype=object)
        self.workflows = np.array([f"workflow-{i % 41:02d}" for i in idx], dtype=object)
        self.agents = np.flatnonzero(idx % 10 == 0)
        route = idx % 3
        self.providers = PROVIDERS[route]
        self.models = MODELS[route]

    def sessions(self, tick: int) -> pd.Series:
        """The session-id column of tick ``tick``."""
        values = np.full(self.series, None, dtype=object)
        values[self.agents] = [f"s{tick // 4}-{i:06d}" for i in self.agents]
        return pd.Series(values, dtype="str")

    def records(self, start: float) -> pd.DataFrame:
        n, rng = self.series, self.rng
        ts = start + np.sort(rng.random(n)) * TICK_S
        status = np.where(rng.random(n) < 0.01, 500, 200)
        ttft = np.where(rng.random(n) < 0.3, np.nan, rng.lognormal(6.0, 0.35, n))
        strings = {
            "request_id": np.array([f"r{start:.0f}-{i}" for i in range(n)], dtype=object),
            "trace_id": None,
            "api_key": self.keys,
            "team": self.teams,
            "workflow": self.workflows,
            "provider": self.providers,
            "model": self.models,
            "requested_model": self.models,
            "error": None,
            "prompt_hash": np.array([f"{h:016x}" for h in rng.integers(0, 2**62, n)], object),
            "tool": None,
        }
        data: dict[str, object] = {
            "ts": ts,
            "session_id": self.sessions(0),
            "status": status,
            "latency_ms": rng.lognormal(7.0, 0.4, n),
            "ttft_ms": ttft,
            "input_tokens": rng.integers(100, 4000, n),
            "output_tokens": rng.integers(10, 600, n),
            "cost_usd": rng.random(n) * 0.01,
            "fallback": rng.random(n) < 0.02,
            "retries": np.zeros(n, dtype=np.int64),
        }
        for name, values in strings.items():
            # canonical dtypes, as records_frame builds them: str, or object None when unset
            data[name] = (
                pd.Series([None] * n, dtype=object)
                if values is None
                else pd.Series(values, dtype="str")
            )
        return pd.DataFrame(data)[list(COLUMNS)]


class Timed:
    """A stage wrapper that records how long the stage took in each tick."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.name = stage.name
        self.seconds: list[float] = []

    def run(self, tick: Tick) -> None:
        started = time.perf_counter()
        self.stage.run(tick)
        self.seconds.append(time.perf_counter() - started)


class Feed:
    """Source of the synthetic ticks. A few ticks of records are built up front and replayed
    with shifted timestamps, so building them is not timed as part of a tick."""

    name = "synthetic"

    def __init__(self, traffic: Traffic, ticks: int, distinct: int = 3) -> None:
        self.pool = [traffic.records(START + k * TICK_S) for k in range(distinct)]
        self.sessions = [traffic.sessions(k) for k in range(0, ticks + 4, 4)]
        self.pulls = 0

    def pull(self, until: float) -> Batch:
        k = self.pulls
        frame = self.pool[k % len(self.pool)]
        shift = (until - TICK_S) - (START + (k % len(self.pool)) * TICK_S)
        self.pulls += 1
        ts = frame["ts"].to_numpy() + shift
        return Batch(records=frame.assign(ts=ts, session_id=self.sessions[k // 4]))


def build(
    specs_dir: Path, traffic: Traffic, ticks: int, *, history: SeriesHistory | None
) -> Pipeline:
    specs = load_detector_specs(specs_dir)
    store = SQLiteStore(":memory:")
    stages = [
        Timed(AggregateStage()),
        Timed(DetectStage(specs, history=history)),
        Timed(CorrelateStage(store)),
    ]
    feed = Feed(traffic, ticks)
    return Pipeline([feed], stages, VirtualClock(START), tick_seconds=TICK_S)


def run_ticks(pipeline: Pipeline, first: int, count: int) -> tuple[list[float], int]:
    """Run ticks ``first..first+count-1``: their durations and the last tick's series count."""
    clock = pipeline.clock
    assert isinstance(clock, VirtualClock)
    durations = []
    series = 0
    for k in range(first, first + count):
        now = START + (k + 1) * TICK_S
        clock.set(now)
        started = time.perf_counter()
        tick = pipeline.tick(now)
        durations.append(time.perf_counter() - started)
        series = sum(len(frame) for frame in tick.frames.values())
    return durations, series


def retained_bytes(specs_dir: Path, series: int, warmup: int) -> tuple[float, float, float]:
    """Bytes retained by the detect stage after ``warmup`` ticks, by one tick of frames history
    (tracemalloc: everything it keeps alive) and by one tick as the history budgets it."""
    traffic = Traffic(series)
    history = SeriesHistory(maxlen=2)
    pipeline = build(specs_dir, traffic, warmup, history=None)
    detect = pipeline.stages[1]
    assert isinstance(detect, Timed)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    run_ticks(pipeline, 0, warmup)
    gc.collect()
    after = tracemalloc.take_snapshot()
    detect_bytes = sum(
        stat.size_diff
        for stat in after.compare_to(before, "filename")
        if "gatewarden/detect" in stat.traceback[0].filename
    )
    history_before = tracemalloc.take_snapshot()
    frames = [
        Tick(now=START + (k + 1) * TICK_S, start=START + k * TICK_S, records=traffic.records(START))
        for k in range(2)
    ]
    stage = AggregateStage()  # one stage across ticks, as the daemon runs it
    for tick in frames:
        stage.run(tick)
        history.push(tick.now, tick.frames)
    del frames
    gc.collect()
    history_after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    history_bytes = sum(s.size_diff for s in history_after.compare_to(history_before, "filename"))
    # the daemon's byte budget counts the frames' arrays (history.nbytes), not label strings
    return float(detect_bytes), history_bytes / 2, history.nbytes / 2


def main(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--warmup", type=int, default=12)
    parser.add_argument("--ticks", type=int, default=8)
    parser.add_argument("--memory-ticks", type=int, default=4)
    parser.add_argument("--detectors", type=Path, default=REPO / "detectors")
    args = parser.parse_args(list(argv))

    traffic = Traffic(args.series)
    history = SeriesHistory(ticks_needed(LOOKBACK_TICKS, PREVIEW_TICKS), min_len=PREVIEW_TICKS)
    pipeline = build(args.detectors, traffic, args.warmup + args.ticks, history=history)
    run_ticks(pipeline, 0, args.warmup)
    stages = [s for s in pipeline.stages if isinstance(s, Timed)]
    for stage in stages:
        stage.seconds.clear()
    durations, series = run_ticks(pipeline, args.warmup, args.ticks)
    median = statistics.median(durations) * 1000
    split = ", ".join(f"{s.name} {statistics.median(s.seconds) * 1000:.0f}" for s in stages)
    specs = len(load_detector_specs(args.detectors))
    print(
        f"{args.series:,} api_key series, {specs} detectors, {args.series:,} records per tick",
        flush=True,
    )
    print(
        f"ms per tick: median {median:.0f}, worst {max(durations) * 1000:.0f} "
        f"(target <= 100); stages (median ms): {split}",
        flush=True,
    )
    judged = [sum(parts) for parts in zip(*(s.seconds for s in stages[1:]), strict=True)]
    print(
        f"ms per tick without aggregating the tick's {args.series:,} records "
        f"(detect + correlate over the frames): median {statistics.median(judged) * 1000:.0f}",
        flush=True,
    )
    # state arrays are sized on a series' first tick; tracemalloc makes ticks slow: keep it short
    detect_bytes, history_tick_bytes, budgeted_tick_bytes = retained_bytes(
        args.detectors, args.series, args.memory_ticks
    )
    asked = ticks_needed(LOOKBACK_TICKS, PREVIEW_TICKS)  # as daemon.build sizes it
    budget = inspect.signature(SeriesHistory).parameters["max_bytes"].default
    kept = max(PREVIEW_TICKS, min(asked, int(budget // max(budgeted_tick_bytes, 1.0))))
    print(
        f"detector state: {detect_bytes / series:,.0f} bytes per series "
        f"({detect_bytes / 1e6:.1f} MB for {series:,} series at all levels; target <= 2,048); "
        f"{detect_bytes / args.series:,.0f} bytes per API key",
        flush=True,
    )
    print(
        f"frames history: {history_tick_bytes / series:,.0f} bytes per series per tick kept; "
        f"the daemon keeps {asked} ticks within {budget >> 20} MB, here {kept} ticks: "
        f"{history_tick_bytes * kept / series:,.0f} bytes per series "
        f"({history_tick_bytes * kept / 1e6:,.0f} MB)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
