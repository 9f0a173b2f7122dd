"""Detection quality on labelled simulated traffic: issue 3's targets, measured, per fault kind.

For every seed, :func:`gatewarden.evaluation.suites.standard_cases` builds two multi-hour logs:
one with a fault of every kind (target, magnitude, duration, start and traffic level drawn from
the seed; about half the seeds use the subtle magnitudes, 3 % errors and TTFT x1.8) and one
quiet day of hard negatives (one-minute blips of every fast kind, TTFT creeping up x1.8 over
80 minutes, a planned model migration, a new team ramping up, a long healthy agent session, one
very expensive request, across the daily peak). Each log goes through the real
``gatewarden.backtest.run_backtest`` with the shipped ``detectors/``, and the incidents are
scored against the labels (:mod:`gatewarden.evaluation.labels`).

The same seeds run twice: once on the simulator's own traffic model, and once with arrivals
and token sizes taken from real LLM serving traces (``../shared/traces/``: Azure 2023 code and
conversation, Mooncake conversation; seed ``i`` uses trace ``i mod 3``), traffic this project
did not generate. Each suite is checked against the targets on its own.

``python -m benchmarks.quality [--seeds 1 2 3 4 5 6] [--hours 5] [--traces FILE ...]
[--workdir DIR] [--json]`` (``--traces`` with no file: the simulator suite only)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gatewarden.detect import load_detector_specs
from gatewarden.evaluation.suites import pool, run_case, standard_cases
from gatewarden.simulator.trace_shape import TraceArrivals

DETECTORS = Path(__file__).resolve().parents[1] / "detectors"
TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"
DEFAULT_TRACES = (
    TRACES / "azure2023" / "AzureLLMInferenceTrace_conv.csv",
    TRACES / "azure2023" / "AzureLLMInferenceTrace_code.csv",
    TRACES / "mooncake" / "conversation_trace.jsonl",
)
TARGETS = {
    "recall": (">=", 0.9),
    "precision": (">=", 0.85),
    "false_per_day": ("<=", 2.0),
    "ttd_p50_s": ("<=", 90.0),
    "fragmentation": ("<=", 1.2),
}


def _fmt(value: Any, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def _by_kind(results: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for result in results:
        for detail in result["details"]:
            kinds[detail["kind"]].append(detail)
    out = {}
    for kind, details in sorted(kinds.items()):
        found = [d for d in details if d["detected"]]
        ttds = [float(d["ttd_s"]) for d in found]
        out[kind] = {
            "faults": len(details),
            "recall": len(found) / len(details),
            "ttd_p50_s": float(np.percentile(ttds, 50)) if ttds else None,
            "ttd_p90_s": float(np.percentile(ttds, 90)) if ttds else None,
            "fragmentation": sum(d["incidents"] for d in found) / len(found) if found else None,
            "missed": [(d["fault"], d["scope"]) for d in details if not d["detected"]],
        }
    return out


def _check(figures: dict[str, Any]) -> list[str]:
    lines = []
    for name, (op, bound) in TARGETS.items():
        value = figures.get(name)
        ok = value is not None and (value >= bound if op == ">=" else value <= bound)
        lines.append(
            f"  {name:<14} {_fmt(value):>8}  target {op} {bound:g}  {'ok' if ok else 'MISSED'}"
        )
    return lines


def run(
    seeds: Sequence[int], hours: float, workdir: Path, traces: Sequence[Path] = ()
) -> dict[str, Any]:
    """One suite over ``seeds``: on the traffic model, or (``traces``) seed ``i`` on trace
    ``i mod len(traces)``."""
    specs = [spec for spec in load_detector_specs(DETECTORS) if spec.enabled]
    results = []
    for seed in seeds:
        trace = TraceArrivals(path=traces[seed % len(traces)]) if traces else None
        for case in standard_cases(seed, hours=hours, trace=trace):
            started = time.perf_counter()
            result = run_case(case, specs, workdir)
            results.append(result)
            took = time.perf_counter() - started
            print(
                f"{case.name:<40} {result['records']:>8} records {took:6.1f} s  "
                f"found {result['detected']}/{result['faults']}  "
                f"false {result['false_incidents']}  "
                f"hard negatives hit {result['negatives_hit']}/{result['negatives']}",
                flush=True,
            )
            for detail in result["details"]:
                if not detail["detected"]:
                    print(f"    missed {detail['fault']} {detail['scope']}")
            for incident in result["unmatched"]:
                offset = incident["opened_at"] - case.scenario.start
                print(f"    false  {incident['kinds']} {incident['scope']} at +{offset:.0f} s")
    return {"results": results, "pooled": pool(results), "by_kind": _by_kind(results)}


def main(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    parser.add_argument("--hours", type=float, default=5.0)
    parser.add_argument("--traces", type=Path, nargs="*", default=list(DEFAULT_TRACES))
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(list(argv))
    suites = [("simulator traffic model", [])]
    if args.traces:
        suites.append((f"real traces ({', '.join(p.name for p in args.traces)})", args.traces))
    with tempfile.TemporaryDirectory(prefix="gatewarden-quality-") as scratch:
        workdir = args.workdir or Path(scratch)
        reports = [(name, run(args.seeds, args.hours, workdir, traces)) for name, traces in suites]
    for name, report in reports:
        print(f"\n== {name} ==")
        _print_report(report, args.seeds, json_out=args.json)


def _print_report(report: dict[str, Any], seeds: Sequence[int], *, json_out: bool) -> None:
    pooled = report["pooled"]
    results = report["results"]
    days = sum(r["duration_s"] for r in results) / 86_400
    print(
        f"{len(seeds)} seeds, {len(results)} logs, {days * 24:.0f} simulated hours, "
        f"{pooled['faults']} faults, {pooled['incidents']} incidents, "
        f"{pooled['negatives_hit']}/{pooled['negatives']} hard negatives hit"
    )
    print("\n".join(_check(pooled)))
    print(f"  ttd_p90_s      {_fmt(pooled['ttd_p90_s'], '.0f'):>8}")
    print("\nper kind          faults  recall  ttd p50  ttd p90  incidents/fault")
    for kind, figures in report["by_kind"].items():
        print(
            f"  {kind:<16} {figures['faults']:>5}  {_fmt(figures['recall']):>6}"
            f"  {_fmt(figures['ttd_p50_s'], '.0f'):>6}s  {_fmt(figures['ttd_p90_s'], '.0f'):>6}s"
            f"  {_fmt(figures['fragmentation']):>8}"
        )
    if json_out:
        slim = {"pooled": pooled, "by_kind": report["by_kind"]}
        print(json.dumps(slim, indent=1, default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
