"""Backtest throughput: records/s end to end against pyarrow's parse-only floor, and peak RSS.

    python -m benchmarks.throughput [--records 1000000] [--repeat 3] [--cache var/bench]

Generates (once, cached under ``var/bench/``) a simulator log of at least ``--records`` records
with ~1,000 API keys and five faults, then measures in the same run, each in a fresh process:

* **parse only** — ``pyarrow.json.read_json`` of the whole file (the practical floor);
* **end to end** — ``python -m gatewarden.cli backtest --requests LOG --format json``, from
  process start to the JSON document on stdout, with the shipped detectors;
* **replay floor** — the same command with no detectors: ingest, aggregation and the replay
  loop alone (what the backtest costs before any detector runs);
* **peak RSS** of the backtest on the whole log and on its first quarter, and the whole-log
  run's RSS sampled over time (median of each quarter of the run): it must stay roughly flat,
  since the log is streamed in blocks. Peaks differ with the busiest blocks (the simulated
  morning ramps up), so the trace, not the two peaks, shows whether memory grows.

Timings are the best of ``--repeat`` interleaved runs (the machine is shared). Figures are
printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

#: Extra keys on top of the default catalog's twenty: "many keys" for the api_key level.
EXTRA_KEYS = 1000
BASE_RPS = 250.0
#: Records per simulated second at BASE_RPS in the morning hours the scenario covers.
RECORDS_PER_S = 235.0


def generate(path: Path, records: int) -> None:
    from gatewarden.simulator import (
        CostSpike,
        FallbackStorm,
        KeySurge,
        ProviderOutage,
        Scenario,
        TtftDegradation,
        default_catalog,
        write_offline,
    )
    from gatewarden.simulator.catalog import ApiKey

    catalog = default_catalog()
    keys = list(catalog.keys)
    extra = [
        ApiKey(
            alias=f"{base.alias}-{i:04d}",
            token=f"sk-sim-bench{i:08d}",
            team=base.team,
            workflow=base.workflow,
            weight=base.weight / 50,
        )
        for i, base in ((i, keys[i % len(keys)]) for i in range(EXTRA_KEYS))
    ]
    duration = records / RECORDS_PER_S
    faults = [
        ProviderOutage(start=0.2 * duration, duration=600, provider="openai", error_rate=0.4),
        TtftDegradation(start=0.45 * duration, duration=600, provider="anthropic", factor=2.5),
        KeySurge(start=0.6 * duration, duration=300, api_key="growth-experiments", factor=20),
        FallbackStorm(start=0.75 * duration, duration=400, requested_model="gpt-4o-mini"),
        CostSpike(start=0.88 * duration, duration=400, model="claude-haiku-4-5", price_factor=4),
    ]
    scenario = Scenario(
        name="throughput",
        seed=11,
        base_rps=BASE_RPS,
        duration_s=duration,
        catalog=catalog.model_copy(update={"keys": keys + extra}),
        faults=faults,
    )
    tmp = path.with_suffix(".tmp")
    stats = write_offline(scenario, tmp, path.with_suffix(".labels.json"))
    tmp.rename(path)
    print(f"generated {stats.records:,} records in {stats.elapsed_s:.0f} s -> {path}", flush=True)


def ensure_logs(cache: Path, records: int) -> tuple[Path, Path]:
    """The full log (>= ``records``) and its first quarter, generated once."""
    cache.mkdir(parents=True, exist_ok=True)
    full = cache / f"throughput-{records}.jsonl"
    if not full.exists():
        # in a child process: a forked child's ru_maxrss starts at its parent's RSS, so a
        # parent that had just simulated the log in memory would inflate every peak measured
        script = "import sys; from pathlib import Path; from benchmarks.throughput import generate"
        script += "; generate(Path(sys.argv[1]), int(sys.argv[2]))"
        subprocess.run([PYTHON, "-c", script, str(full), str(records)], cwd=REPO, check=True)
    quarter = cache / f"throughput-{records}-quarter.jsonl"
    if not quarter.exists():
        with full.open("rb") as src, quarter.open("wb") as dst:
            for i, line in enumerate(src):
                if i >= records // 4:
                    break
                dst.write(line)
    return full, quarter


@dataclass
class Run:
    seconds: float
    cpu_seconds: float
    max_rss_mb: float
    stdout: str
    #: the child's resident memory (MB), sampled every RSS_EVERY_S while it ran
    rss_trace: list[float] = field(default_factory=list)


RSS_EVERY_S = 0.2


def _sample_rss(pid: int, into: list[float], done: threading.Event) -> None:
    """Poll the child's VmRSS (Linux /proc) until ``done``: a peak alone cannot tell a
    plateau with spikes from memory that grows with the log."""
    status = Path(f"/proc/{pid}/status")
    while not done.wait(RSS_EVERY_S):
        try:
            lines = status.read_text().splitlines()
        except OSError:  # exited, or no /proc here
            return
        for line in lines:
            if line.startswith("VmRSS:"):
                into.append(int(line.split()[1]) / 1024)


def run_reaped(argv: list[str]) -> Run:
    """Run a child process: wall time from spawn to exit and the child's own peak RSS.

    ``os.wait4`` reaps it with its own rusage (``RUSAGE_CHILDREN`` would report the maximum
    over every child so far, so two log lengths could not be told apart)."""
    started = time.perf_counter()
    trace: list[float] = []
    done = threading.Event()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=REPO)
        sampler = threading.Thread(target=_sample_rss, args=(proc.pid, trace, done))
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{argv} failed:\n{err.read().decode(errors='replace')[-2000:]}")
        cpu = usage.ru_utime + usage.ru_stime
        return Run(seconds, cpu, usage.ru_maxrss / 1024, out.read().decode(), trace)


PARSE_ONLY = (
    "import sys, time, pyarrow.json as pj\n"
    "t = time.perf_counter(); table = pj.read_json(sys.argv[1])\n"
    "print(table.num_rows, time.perf_counter() - t)\n"
)


def parse_only(log: Path) -> tuple[int, float, Run]:
    """Rows, seconds spent inside read_json, and the child process's figures."""
    result = run_reaped([PYTHON, "-c", PARSE_ONLY, str(log)])
    rows, seconds = result.stdout.split()
    return int(rows), float(seconds), result


def backtest(log: Path, detectors: Path) -> tuple[dict[str, Any], Run]:
    argv = [PYTHON, "-m", "gatewarden.cli", "backtest", "--requests", str(log)]
    result = run_reaped([*argv, "--format", "json", "--detectors", str(detectors)])
    return json.loads(result.stdout), result


def main(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=REPO / "var" / "bench")
    parser.add_argument("--detectors", type=Path, default=REPO / "detectors")
    args = parser.parse_args(list(argv))

    full, quarter = ensure_logs(args.cache, args.records)
    size = full.stat().st_size
    empty = Path(tempfile.mkdtemp(prefix="gw-nodetectors-"))
    parse_s: list[float] = []
    parse_runs: list[Run] = []
    e2e: list[Run] = []
    floor: list[Run] = []
    rows = 0
    document: dict[str, Any] = {}
    for i in range(args.repeat):
        rows, seconds, parse_run = parse_only(full)
        parse_s.append(seconds)
        parse_runs.append(parse_run)
        document, result = backtest(full, args.detectors)
        e2e.append(result)
        floor.append(backtest(full, empty)[1])
        print(
            f"  run {i + 1}: parse {seconds:.2f} s, end to end {result.seconds:.2f} s, "
            f"no detectors {floor[-1].seconds:.2f} s",
            flush=True,
        )
    quarter_doc, quarter_run = backtest(quarter, args.detectors)
    quarter_floor = backtest(quarter, empty)[1]
    records = int(document["records"])
    best_parse = min(parse_s)
    best_e2e = min(e2e, key=lambda r: r.seconds)
    best_floor = min(floor, key=lambda r: r.seconds)
    parse_cpu = min(r.cpu_seconds for r in parse_runs)
    print(f"log: {full.name}: {records:,} records, {size / records:.0f} bytes/record")
    print(
        f"parse only (pyarrow read_json): {rows / best_parse:>10,.0f} records/s "
        f"({best_parse:.2f} s; its process used {parse_cpu:.1f} CPU-s)"
    )
    for label, run in (
        ("end to end (backtest CLI):", best_e2e),
        ("  same, no detectors:", best_floor),
    ):
        print(
            f"{label:<32}{records / run.seconds:>10,.0f} records/s ({run.seconds:.2f} s) = "
            f"{best_parse / run.seconds:.0%} of parse-only (target >= 60 %); "
            f"{run.cpu_seconds:.1f} CPU-s"
        )
    quarter_records = int(quarter_doc["records"])
    print(
        f"peak RSS, {records:,} vs {quarter_records:,} records: "
        f"backtest {max(r.max_rss_mb for r in e2e):.0f} vs {quarter_run.max_rss_mb:.0f} MB, "
        f"no detectors {max(r.max_rss_mb for r in floor):.0f} vs "
        f"{quarter_floor.max_rss_mb:.0f} MB (parse-only holds the whole table: "
        f"{max(r.max_rss_mb for r in parse_runs):.0f} MB)"
    )
    trace = best_e2e.rss_trace
    if len(trace) >= 8:
        quarters = [statistics.median(part) for part in _quarters(trace)]
        print(
            "RSS of the whole-log backtest over its run (median of each quarter of the run): "
            + " -> ".join(f"{q:.0f}" for q in quarters)
            + " MB (flat = memory does not grow with the log)"
        )
    print(
        f"incidents: {len(document['incidents'])}, alerts: {document['alerts_total']}, "
        f"malformed: {document['malformed']}"
    )


def _quarters(values: list[float]) -> list[list[float]]:
    size = len(values) / 4
    return [values[round(i * size) : round((i + 1) * size)] for i in range(4)]


if __name__ == "__main__":
    main(sys.argv[1:])
