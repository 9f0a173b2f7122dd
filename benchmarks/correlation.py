"""Correlation on labelled multi-fault traffic: issue 4's targets, measured.

Two suites, each log replayed through the real ``gatewarden.backtest.run_backtest`` with the
shipped ``detectors/`` and the default correlation rules, and scored against the labels:

* **outage-heavy** (:func:`gatewarden.evaluation.suites.outage_heavy_case`): provider outages
  one after another at busy traffic. Prints alerts_total / incidents (noise reduction) and
  fragmentation (incidents per detected fault);
* **overlap** (:func:`gatewarden.evaluation.suites.overlap_case`): a TTFT degradation, a key
  surge and another provider's outage at the same time: each fault must get its own incident,
  and every fault that fired must still be found (none lost to inhibition).

``python -m benchmarks.correlation [--seeds 1 2 3 4] [--workdir DIR]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gatewarden.detect import load_detector_specs
from gatewarden.evaluation.suites import (
    Case,
    outage_heavy_case,
    overlap_case,
    pool,
    run_case,
)

DETECTORS = Path(__file__).resolve().parents[1] / "detectors"


def _run(cases: Sequence[Case], workdir: Path) -> list[dict[str, Any]]:
    specs = [spec for spec in load_detector_specs(DETECTORS) if spec.enabled]
    results = []
    for case in cases:
        result = run_case(case, specs, workdir)
        document = result["document"]
        incidents = len(document["incidents"])
        print(
            f"{case.name:<12} {result['records']:>7} records  faults {result['faults']}  "
            f"found {result['detected']}  incidents {incidents}  "
            f"alerts {document['alerts_total']}  false {result['false_incidents']}",
            flush=True,
        )
        for detail in result["details"]:
            if not detail["detected"]:
                print(f"    missed {detail['fault']} {detail['scope']}")
            elif detail["incidents"] > 1:
                print(f"    split  {detail['fault']} {detail['scope']} into {detail['incidents']}")
        results.append(result)
    return results


def _summary(name: str, results: Sequence[dict[str, Any]]) -> None:
    pooled = pool(results)
    alerts = sum(int(r["document"]["alerts_total"]) for r in results)
    incidents = sum(len(r["document"]["incidents"]) for r in results)
    ratio = alerts / incidents if incidents else None
    print(
        f"{name}: faults {pooled['faults']}, detected {pooled['detected']}, "
        f"incidents {incidents}, alerts {alerts}"
    )
    print(f"  alerts / incidents   {ratio:.1f}" if ratio else "  alerts / incidents   n/a")
    print(f"  fragmentation        {pooled['fragmentation']:.2f}  (target <= 1.1)")
    print(f"  recall               {pooled['recall']:.2f}")
    print(f"  precision            {pooled['precision']:.2f}")


def main(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.correlation")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(list(argv))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        heavy = _run([outage_heavy_case(seed) for seed in args.seeds], workdir)
        overlap = _run([overlap_case(seed) for seed in args.seeds], workdir)
    print()
    _summary("outage-heavy (target alerts/incidents >= 10)", heavy)
    _summary("overlap (unrelated faults at once: one incident each)", overlap)


if __name__ == "__main__":
    main(sys.argv[1:])
