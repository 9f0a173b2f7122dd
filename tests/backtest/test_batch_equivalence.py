"""``aggregate_ticks`` must give, for every tick, exactly the frames ``aggregate`` gives.

Random multi-tick record sets exercise what a group-by can get wrong: missing optional labels
(team, workflow), gateway-side rejections, NaN TTFTs, ties, unicode labels, empty ticks and
rows out of time order. When ``aggregate`` gains a metric or changes one, this test fails until
``aggregate/batch.py`` follows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gatewarden.aggregate import aggregate
from gatewarden.aggregate.batch import aggregate_ticks, tick_index
from gatewarden.ingest.request_log import records_frame

PROVIDERS = ["openai", "azure", "anthropic", "gateway"]
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet", "ünïcode-model"]
TEAMS = ["search", "support", "Ärger", None]
WORKFLOWS = ["chat", "agent", None]


def random_records(rng: np.random.Generator, n: int, start: float, span: float) -> pd.DataFrame:
    keys = [f"key-{i}" for i in range(int(rng.integers(1, 40)))]
    rows = []
    for i in range(n):
        provider = PROVIDERS[int(rng.integers(len(PROVIDERS)))]
        status = int(rng.choice([200, 200, 200, 429, 500, 503, 401]))
        # repeated values make ties inside groups; None makes NaN TTFTs
        ttft = None if rng.random() < 0.3 else float(rng.choice([100.0, 250.5, rng.lognormal()]))
        rows.append(
            {
                "ts": float(start + rng.random() * span),
                "request_id": f"r{i}",
                "api_key": keys[int(rng.integers(len(keys)))],
                "team": TEAMS[int(rng.integers(len(TEAMS)))],
                "workflow": WORKFLOWS[int(rng.integers(len(WORKFLOWS)))],
                "provider": provider,
                "model": MODELS[int(rng.integers(len(MODELS)))],
                "requested_model": MODELS[int(rng.integers(len(MODELS)))],
                "status": status,
                "latency_ms": float(rng.lognormal(6, 1)),
                "ttft_ms": ttft,
                "input_tokens": int(rng.integers(0, 5000)),
                "output_tokens": int(rng.integers(0, 800)),
                "cost_usd": float(rng.random() * 0.03),
                "fallback": bool(rng.random() < 0.1),
            }
        )
    return records_frame(rows)


def assert_same_frames(records: pd.DataFrame, bounds: np.ndarray) -> None:
    batch = aggregate_ticks(records, bounds)
    ticks = tick_index(records["ts"].to_numpy(), bounds)
    assert len(batch) == len(bounds) - 1
    for k in range(len(bounds) - 1):
        expected = aggregate(records[ticks == k], start=bounds[k], end=bounds[k + 1])
        got = batch.frames(k)
        assert list(got) == list(expected)
        for level, frame in expected.items():
            where = f"tick {k} {level}"
            pd.testing.assert_frame_equal(got[level], frame, check_exact=True, obj=where)


@pytest.mark.parametrize("seed", range(6))
def test_batch_frames_equal_per_tick_aggregate(seed: int) -> None:
    rng = np.random.default_rng(seed)
    tick = float(rng.choice([15.0, 10.0, 0.1 * 3]))
    start = 1_748_937_600.0 + float(rng.integers(0, 100))
    n_ticks = int(rng.integers(1, 12))
    # the span leaves some ticks empty and puts a few rows outside the bounds
    records = random_records(rng, int(rng.integers(0, 600)), start - tick, tick * (n_ticks + 1))
    bounds = start + tick * np.arange(n_ticks + 1)
    assert_same_frames(records, bounds)


def test_rows_out_of_time_order_and_empty_input() -> None:
    rng = np.random.default_rng(99)
    records = random_records(rng, 300, 0.0, 60.0)
    shuffled = records.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert_same_frames(shuffled, np.array([0.0, 15.0, 30.0, 45.0, 60.0]))
    assert_same_frames(records.iloc[:0], np.array([0.0, 15.0, 30.0]))


def test_high_cardinality_groups_take_the_sorted_path_and_stay_equal() -> None:
    """Thousands of (team, key) pairs over several ticks: ~2M possible (tick, team, key)
    combinations, so group ids come from the radix sort rather than a bincount."""
    rng = np.random.default_rng(31)
    n, tick, start = 4_000, 15.0, 1_748_937_600.0
    keys = np.array([f"k{i:05d}" for i in range(3_000)], dtype=object)
    teams = np.array([f"t{i:03d}" for i in range(100)] + [None], dtype=object)
    records = random_records(rng, n, start, tick * 6)
    records["api_key"] = pd.Series(rng.choice(keys, n), dtype="str")
    records["team"] = pd.Series(rng.choice(teams, n), dtype="str")
    bounds = start + tick * np.arange(7)
    assert_same_frames(records, bounds)
    assert len(aggregate_ticks(records, bounds).frames(0)["api_key"]) > 500
