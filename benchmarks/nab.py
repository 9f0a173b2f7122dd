"""NAB: the default univariate stack, online, over all 58 series of the Numenta Anomaly Benchmark.

Rules followed (those of the published scoreboard): one detector configuration for every file,
each series seen online (every row is scored before it is learnt, nothing looks ahead), the
first 15 % of each file is probationary (learnt from, reported as 0, never scored), and each
profile's threshold is optimised once over the whole corpus by the project's scorer
(:mod:`gatewarden.evaluation.nab`). Prints the three profile scores beside the published
scoreboard (``published_final_results.json``) and the runtime.

The 58 files are fed as 58 series of one :class:`~gatewarden.protocols.SeriesTick` per row
index, so one tick advances every file still running by one row: the per-tick numpy work is
shared instead of being paid 365k times.

``python -m benchmarks.nab --per-file`` also prints each file's result at the chosen threshold.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gatewarden.detect.univariate import default_univariate_stack
from gatewarden.evaluation.nab import (
    ProfileScore,
    file_scores,
    probation_length,
    score_corpus,
)
from gatewarden.evaluation.nab_corpus import FloatArray, NABCorpus, load_corpus
from gatewarden.protocols import Detector, SeriesTick

NAB_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "nab"
PROFILES = {
    "standard": "standard",
    "reward_low_FP_rate": "reward_low_FP",
    "reward_low_FN_rate": "reward_low_FN",
}
OURS = "gatewarden (this run)"


def run_online(corpus: NABCorpus, make: Callable[[], Detector]) -> dict[str, FloatArray]:
    """Scores of one fresh detector fed every file row by row; each row is scored, then learnt.

    Files are ordered longest first, so the files still running at row ``t`` are a prefix and
    one keys tuple serves every tick until a file ends.
    """
    names = sorted(corpus.series, key=lambda name: -len(corpus.series[name]))
    lengths = np.array([len(corpus.series[name]) for name in names])
    values = np.full((len(names), int(lengths.max())), np.nan)
    for i, name in enumerate(names):
        values[i, : lengths[i]] = corpus.series[name].values
    scores = np.zeros_like(values)
    detector = make()
    active = len(names)
    keys = tuple(names)
    ones = np.ones(active)
    for t in range(values.shape[1]):
        while lengths[active - 1] <= t:
            active -= 1
            keys, ones = keys[:active], ones[:active]
        tick = SeriesTick(ts=float(t), keys=keys, values=values[:active, t], volumes=ones)
        scores[:active, t] = detector.score_one(tick)
        detector.learn_one(tick)
    out: dict[str, FloatArray] = {}
    for i, name in enumerate(names):
        row = np.nan_to_num(np.clip(scores[i, : lengths[i]], 0.0, 1.0), nan=0.0)
        row[: probation_length(int(lengths[i]))] = 0.0  # probationary rows are never reported
        out[name] = row
    return out


def scoreboard(results: dict[str, ProfileScore]) -> list[tuple[str, dict[str, float]]]:
    """Published detectors plus this run, best standard score first."""
    published: dict[str, dict[str, float]] = json.loads(
        (NAB_ROOT / "published_final_results.json").read_text()
    )
    rows = list(published.items())
    rows.append((OURS, {name: score.normalised for name, score in results.items()}))
    rows.sort(key=lambda row: -row[1]["standard"])
    return rows


def main() -> None:
    if not NAB_ROOT.is_dir():
        print(f"NAB corpus not found at {NAB_ROOT}: skipped")
        return
    started = time.perf_counter()
    corpus = load_corpus(NAB_ROOT)
    loaded = time.perf_counter()
    cpu = time.process_time()
    detections = run_online(corpus, default_univariate_stack)
    detected = time.perf_counter()
    cpu = time.process_time() - cpu
    results = score_corpus(corpus, detections)
    scored = time.perf_counter()

    rows = sum(len(s) for s in corpus.series.values())
    print(
        "NAB "
        + " ".join(f"{PROFILES[name]}={score.normalised:.2f}" for name, score in results.items())
    )
    for name, score in results.items():
        print(
            f"  {PROFILES[name]:14s} threshold={score.threshold:.4f} raw={score.raw:.2f} "
            f"windows detected={score.tp}/{score.tp + score.fn} false-positive rows={score.fp}"
        )
    print(
        f"runtime: load {loaded - started:.1f} s, detect {detected - loaded:.1f} s wall / "
        f"{cpu:.1f} s CPU ({rows / (detected - loaded):,.0f} rows/s wall over "
        f"{len(corpus.series)} files, {rows:,} rows), score {scored - detected:.1f} s"
    )
    print("scoreboard (published_final_results.json, normalised: null=0, perfect=100):")
    print(f"  {'detector':24s} {'standard':>9s} {'low_FP':>9s} {'low_FN':>9s}")
    for name, profile in scoreboard(results):
        marker = "->" if name == OURS else "  "
        print(
            f"{marker}{name:24s} {profile['standard']:9.2f} "
            f"{profile['reward_low_FP_rate']:9.2f} {profile['reward_low_FN_rate']:9.2f}"
        )
    if "--per-file" in sys.argv[1:]:
        standard = results["standard"]
        for f in file_scores(corpus, detections, "standard", standard.threshold):
            print(f"  {f.name:60s} raw={f.raw:6.2f} tp={f.tp} fp={f.fp} fn={f.fn}")


if __name__ == "__main__":
    main()
