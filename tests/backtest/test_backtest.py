"""The streaming backtest must decide exactly what the plain replay decides.

The reference below is the straightforward replay: the whole log parsed line by line, one live
``Pipeline.tick`` per tick with the live ``AggregateStage``. ``run_backtest`` reads in blocks on
a worker thread and aggregates many ticks at once; whatever the block size, its JSON document
must be identical.
"""

from __future__ import annotations

import gzip
import math
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gatewarden.aggregate import AggregateStage, SeriesHistory
from gatewarden.backtest import _document, _prefetched, _TickCutter, run_backtest
from gatewarden.clock import VirtualClock
from gatewarden.correlate import CorrelateStage
from gatewarden.detect import DetectStage, load_detector_specs
from gatewarden.detect.spec import DetectorSpec
from gatewarden.ingest.request_log import read_log, records_frame
from gatewarden.pipeline import Pipeline
from gatewarden.protocols import Batch
from gatewarden.simulator import ProviderOutage, Scenario, write_offline
from gatewarden.store import SQLiteStore

REPO = Path(__file__).resolve().parents[2]
TICK = 15.0


@pytest.fixture(scope="module")
def specs() -> list[DetectorSpec]:
    # the error-rate detectors are enough to open and resolve incidents, and keep this fast
    return [s for s in load_detector_specs(REPO / "detectors") if s.kind == "error_rate"]


@pytest.fixture(scope="module")
def outage_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scenario = Scenario(
        seed=4,
        duration_s=600,
        base_rps=6,
        faults=[ProviderOutage(start=240, duration=180, provider="openai", error_rate=0.5)],
    )
    path = tmp_path_factory.mktemp("bt") / "requests.jsonl"
    write_offline(scenario, path, path.with_suffix(".labels.json"))
    with path.open("a") as handle:  # a bad line at the end, and one in the middle below
        handle.write("not json\n")
    lines = path.read_bytes().splitlines(keepends=True)
    lines.insert(len(lines) // 2, b'{"ts": "soon"}\n')
    path.write_bytes(b"".join(lines))
    return path


class _SortedSource:
    name = "reference"

    def __init__(self, records: pd.DataFrame) -> None:
        self.records = records.sort_values("ts", kind="stable").reset_index(drop=True)
        self.ts = self.records["ts"].to_numpy()
        self.pos = 0

    def pull(self, until: float) -> Batch:
        end = int(np.searchsorted(self.ts, until, side="left"))
        batch = Batch(records=self.records.iloc[self.pos : end])
        self.pos = end
        return batch


def reference_backtest(path: Path, specs: list[DetectorSpec]) -> dict[str, object]:
    batch = read_log(path)
    store = SQLiteStore(":memory:")
    ts = batch.records["ts"]
    origin = math.floor(float(ts.min()) / TICK) * TICK
    clock = VirtualClock(origin)
    stages = [
        AggregateStage(),
        DetectStage(specs, history=SeriesHistory(maxlen=4)),
        CorrelateStage(store),
    ]
    pipeline = Pipeline([_SortedSource(batch.records)], stages, clock, tick_seconds=TICK)
    for k in range(1, math.floor((float(ts.max()) - origin) / TICK) + 2):
        now = origin + TICK * k
        clock.set(now)
        pipeline.tick(now)
    document = _document(store, records=len(batch.records), malformed=batch.malformed)
    store.close()
    return document


def test_streamed_backtest_equals_the_plain_replay(
    outage_log: Path, specs: list[DetectorSpec], tmp_path: Path
) -> None:
    expected = reference_backtest(outage_log, specs)
    assert expected["malformed"] == 2
    incidents = expected["incidents"]
    assert isinstance(incidents, list) and incidents  # the outage opened an incident
    for incident in incidents:  # members list every alert filed under it, the root included
        assert {"kind": incident["kinds"][0], "scope": incident["scope"]} in incident["members"]
        assert len(incident["members"]) == incident["alerts"]
    # tiny blocks: every tick spans blocks; gzip with larger blocks: another reader
    assert run_backtest(outage_log, specs, block_bytes=20_000) == expected
    gz = tmp_path / "requests.jsonl.gz"
    gz.write_bytes(gzip.compress(outage_log.read_bytes()))
    seen: list[float] = []
    assert run_backtest(gz, specs, block_bytes=50_000, progress=seen.append) == expected
    assert seen[-1] == 1.0 and seen == sorted(seen)


def test_empty_and_unreadable_logs(tmp_path: Path, specs: list[DetectorSpec]) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    document = run_backtest(empty, specs)
    assert document == {"incidents": [], "alerts_total": 0, "records": 0, "malformed": 0}
    junk = tmp_path / "junk.jsonl"
    junk.write_bytes(b"nope\n\n[]\n")
    assert run_backtest(junk, specs)["malformed"] == 2
    with pytest.raises(FileNotFoundError):
        run_backtest(tmp_path / "missing.jsonl", specs)


def _records(ts: list[float]) -> pd.DataFrame:
    base = {
        "api_key": "k",
        "provider": "openai",
        "model": "m",
        "requested_model": "m",
        "status": 200,
        "latency_ms": 1.0,
        "input_tokens": 1,
        "output_tokens": 1,
        "cost_usd": 0.0,
        "fallback": False,
    }
    return records_frame([{**base, "ts": t, "request_id": f"r{i}"} for i, t in enumerate(ts)])


def test_cutter_runs_complete_ticks_only_and_files_late_records_in_the_open_tick() -> None:
    cutter = _TickCutter(10.0)
    blocks = [
        Batch(records=_records([100.0, 104.0, 112.0])),  # 112 completes tick [100, 110)
        Batch(records=_records([111.0, 105.0, 118.0]), malformed=1),  # 105 arrives late
        Batch(records=_records([131.0])),
    ]
    chunks = list(cutter.chunks(iter(blocks)))
    ticks = [(end, list(records["ts"])) for chunk in chunks for end, records, _ in chunk.ticks]
    assert ticks == [
        (110.0, [100.0, 104.0]),
        (120.0, [112.0, 111.0, 105.0, 118.0]),  # the late 105 counts in the open tick
        (130.0, []),
        (140.0, [131.0]),
    ]
    assert sum(c.records for c in chunks) == 7 and sum(c.malformed for c in chunks) == 1
    frames = chunks[1].ticks[0][2]
    assert int(frames["global"]["requests"].iloc[0]) == 4


def test_prefetch_raises_the_workers_error_and_stops_its_thread() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise OSError("disk went away")

    got: list[int] = []
    with pytest.raises(OSError, match="disk went away"):
        for item in _prefetched(items(), 1):
            got.append(item)
    assert got == [1, 2]

    before = threading.active_count()
    endless = iter(range(10**9))
    for item in _prefetched(endless, 2):
        if item == 3:
            break
    # the consumer stopped: the worker must notice and end instead of blocking forever
    for _ in range(50):
        if threading.active_count() <= before:
            break
        threading.Event().wait(0.1)
    assert threading.active_count() <= before
