"""Aggregation correctness on small hand-built record sets (exact numbers)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from gatewarden.aggregate import LEVELS, METRICS, AggregateStage, LabelCache, aggregate, ordering
from gatewarden.ingest.request_log import empty_frame, records_frame
from gatewarden.models import RequestRecord, scope_key
from gatewarden.protocols import Tick

BASE: dict[str, Any] = {
    "ts": 5.0,
    "api_key": "k1",
    "team": "search",
    "provider": "openai",
    "model": "gpt-4o",
    "requested_model": "gpt-4o",
    "status": 200,
    "latency_ms": 100.0,
    "input_tokens": 10,
    "output_tokens": 20,
    "cost_usd": 0.01,
}


def rec(n: int, **overrides: Any) -> RequestRecord:
    return RequestRecord(**{**BASE, "request_id": f"r{n}", **overrides})


@pytest.fixture
def frames() -> dict[str, pd.DataFrame]:
    records = [
        rec(1, ttft_ms=100.0, latency_ms=200.0),
        rec(2, ttft_ms=300.0, latency_ms=400.0),
        rec(3, status=503, latency_ms=50.0),
        rec(4, status=429, cost_usd=0.0),  # provider rate limit: an error
        rec(5, provider="anthropic", model="claude", fallback=True, workflow="triage"),
        # gateway-side rejections: blocked key, gateway rate limit
        rec(6, provider="gateway", status=401, api_key="k2", cost_usd=0.0),
        rec(7, provider="gateway", status=429, api_key="k2", cost_usd=0.0),
        rec(8, team=None, api_key="k3", model="gpt-4o-mini", requested_model="gpt-4o-mini"),
    ]
    return aggregate(records_frame(records), start=0.0, end=10.0)


def test_every_level_has_labels_and_metrics(frames: dict[str, pd.DataFrame]) -> None:
    assert set(frames) == set(LEVELS)
    for level, frame in frames.items():
        assert list(frame.columns) == [*LEVELS[level], *METRICS]
        assert frame.index.name == "scope"
        for key, row in frame.iterrows():
            scope = {label: row[label] for label in LEVELS[level] if pd.notna(row[label])}
            assert key == scope_key(scope)


def test_global_counts_everything(frames: dict[str, pd.DataFrame]) -> None:
    row = frames["global"].loc[""]
    assert row["requests"] == 8
    assert row["errors"] == 2  # 503 and provider 429; the gateway's 429 is a rejection
    assert row["rejected"] == 2
    assert row["error_rate"] == pytest.approx(2 / 8)
    assert row["rps"] == pytest.approx(0.8)
    assert row["fallbacks"] == 1


def test_provider_levels_exclude_gateway_rejections(frames: dict[str, pd.DataFrame]) -> None:
    provider = frames["provider"]
    assert list(provider.index) == ["provider=anthropic", "provider=openai"]
    openai = provider.loc["provider=openai"]
    assert openai["requests"] == 5
    assert openai["errors"] == 2
    assert openai["error_rate"] == pytest.approx(0.4)
    assert openai["rejected"] == 0
    assert openai["cost"] == pytest.approx(0.04)
    assert openai["cost_per_request"] == pytest.approx(0.008)
    assert openai["input_tokens"] == 50
    assert openai["output_tokens"] == 100
    assert openai["rps"] == pytest.approx(0.5)
    # linear-interpolated percentiles over the streaming calls only (ttft 100, 300)
    assert openai["ttft_p50"] == pytest.approx(200.0)
    assert openai["ttft_p95"] == pytest.approx(290.0)
    # latencies 200, 400, 50, 100, 100 -> sorted 50,100,100,200,400; p95 at rank 3.8
    assert openai["latency_p95"] == pytest.approx(200 + 0.8 * 200)
    assert "provider=gateway" not in provider.index
    assert "provider=gateway" not in frames["model"].index
    assert frames["requested_model"].loc["requested_model=gpt-4o", "requests"] == 5


def test_ttft_is_nan_without_streaming_calls(frames: dict[str, pd.DataFrame]) -> None:
    anthropic = frames["provider"].loc["provider=anthropic"]
    assert math.isnan(anthropic["ttft_p50"])
    assert math.isnan(anthropic["ttft_p95"])
    assert anthropic["fallback_ratio"] == 1.0


def test_key_and_team_levels_count_rejections(frames: dict[str, pd.DataFrame]) -> None:
    keys = frames["api_key"]
    blocked = keys.loc["team=search,api_key=k2"]
    assert blocked["requests"] == 2
    assert blocked["rejected"] == 2
    assert blocked["errors"] == 0
    # a key without a team is kept, keyed without the missing label
    assert keys.loc["api_key=k3", "requests"] == 1
    assert pd.isna(keys.loc["api_key=k3", "team"])
    team = frames["team"].loc["team=search"]
    assert team["requests"] == 7  # the team-less call is in no team series
    assert team["rejected"] == 2
    assert team["errors"] == 2


def test_optional_labels_drop_rows_without_them(frames: dict[str, pd.DataFrame]) -> None:
    assert list(frames["workflow"].index) == ["workflow=triage"]
    assert list(frames["team"].index) == ["team=search"]


def test_empty_window() -> None:
    frames = aggregate(empty_frame(), start=0.0, end=15.0)
    glob = frames["global"]
    assert list(glob.index) == [""]
    assert glob.loc["", "requests"] == 0
    assert math.isnan(glob.loc["", "error_rate"])
    for level in LEVELS:
        if level != "global":
            assert frames[level].empty
            assert list(frames[level].columns) == [*LEVELS[level], *METRICS]


def test_dtypes() -> None:
    frames = aggregate(records_frame([rec(1)]), start=0.0, end=1.0)
    frame = frames["model"]
    assert frame["requests"].dtype == np.int64
    assert frame["errors"].dtype == np.int64
    assert frame["error_rate"].dtype == np.float64
    assert frame["ttft_p95"].dtype == np.float64


def test_rejects_empty_window() -> None:
    with pytest.raises(ValueError, match="window"):
        aggregate(empty_frame(), start=10.0, end=10.0)


def test_aggregate_stage_fills_frames() -> None:
    tick = Tick(now=15.0, start=0.0, records=records_frame([rec(1), rec(2, status=500)]))
    AggregateStage().run(tick)
    assert tick.frames["provider"].loc["provider=openai", "errors"] == 1
    assert tick.frames["global"].loc["", "rps"] == pytest.approx(2 / 15)


def test_many_rows_vectorised() -> None:
    rng = np.random.default_rng(1)
    n = 50_000
    frame = empty_frame().reindex(range(n))
    frame["provider"] = rng.choice(["openai", "anthropic", "gateway"], n)
    frame["model"] = rng.choice(["a", "b", "c"], n)
    frame["requested_model"] = frame["model"]
    frame["api_key"] = rng.choice([f"k{i}" for i in range(500)], n)
    frame["team"] = rng.choice(["t1", "t2"], n)
    frame["workflow"] = None
    frame["status"] = rng.choice([200, 500], n, p=[0.9, 0.1])
    frame["latency_ms"] = 100.0
    frame["ttft_ms"] = np.nan
    frame["input_tokens"] = 1
    frame["output_tokens"] = 1
    frame["cost_usd"] = 0.001
    frame["fallback"] = False
    frames = aggregate(frame, start=0.0, end=15.0)
    provider_rows = frame[frame["provider"] != "gateway"]
    assert frames["provider"]["requests"].sum() == len(provider_rows)
    assert frames["provider"]["errors"].sum() == int((provider_rows["status"] >= 500).sum())
    assert frames["api_key"]["requests"].sum() == n
    assert frames["workflow"].empty


def test_per_call_share_and_sample_metrics(frames: dict[str, pd.DataFrame]) -> None:
    openai = frames["provider"].loc["provider=openai"]
    # successful primary calls: r1, r2, r8 (r3/r4 failed); fallbacks and rejections never count
    assert openai["ok_calls"] == 3
    assert openai["ok_cost"] == pytest.approx(0.03)
    assert openai["ok_output_tokens"] == 60
    assert openai["cost_per_call"] == pytest.approx(0.01)
    assert openai["output_per_call"] == pytest.approx(20.0)
    assert openai["cost_p50"] == pytest.approx(0.01)  # median successful primary call
    assert openai["ttft_samples"] == 2
    # share of every record of the window, gateway rejections included in the total
    assert openai["share"] == pytest.approx(5 / 8)
    assert frames["global"].loc["", "share"] == pytest.approx(1.0)
    anthropic = frames["provider"].loc["provider=anthropic"]
    assert anthropic["ok_calls"] == 0  # its only call was a fallback
    assert math.isnan(anthropic["cost_per_call"])
    assert math.isnan(anthropic["cost_p50"])
    assert frames["api_key"]["share"].sum() == pytest.approx(1.0)


def test_group_order_is_a_stable_sort_past_16_bits() -> None:
    rng = np.random.default_rng(3)
    for groups in (3, 70_000, 300_000):
        g = rng.integers(0, groups, 200_000)
        order = ordering.group_order(g, groups)
        np.testing.assert_array_equal(order, np.argsort(g, kind="stable"))


def test_percentiles_match_pandas_with_ties_and_gaps() -> None:
    rng = np.random.default_rng(7)
    n = 5_000
    frame = empty_frame().reindex(range(n))
    frame["provider"] = rng.choice(["openai", "anthropic", "gateway"], n)
    frame["model"] = rng.choice(["a", "b", "c"], n)
    frame["requested_model"] = frame["model"]
    frame["api_key"] = rng.choice([f"k{i}" for i in range(900)], n)
    frame["team"] = rng.choice(["t1", "t2", None], n)
    frame["workflow"] = rng.choice(["w1", None], n)
    frame["status"] = rng.choice([200, 500], n, p=[0.9, 0.1])
    frame["latency_ms"] = rng.choice([100.0, 250.0, 900.0, np.nan], n)  # ties and gaps
    frame["ttft_ms"] = np.where(rng.random(n) < 0.5, np.nan, rng.lognormal(5, 1, n))
    frame["input_tokens"] = 1
    frame["output_tokens"] = 1
    frame["cost_usd"] = rng.random(n)
    frame["fallback"] = rng.random(n) < 0.1
    radix = aggregate(frame, start=0.0, end=15.0)
    pandas_p95 = frame.groupby(["team", "api_key"], dropna=False)["latency_ms"].quantile(0.95)
    np.testing.assert_allclose(
        np.sort(radix["api_key"]["latency_p95"].to_numpy()), np.sort(pandas_p95.to_numpy())
    )


def test_label_cache_gives_the_same_frames_across_ticks_with_churn() -> None:
    """Live aggregation keeps sorted label codes and scope keys from tick to tick: frames are
    identical to a fresh aggregation whether the series stay, vanish, return or are new."""
    rng = np.random.default_rng(11)
    cache = LabelCache()
    keys = [f"k{i:03d}" for i in range(300)]
    for tick in range(8):
        n = 2_000
        frame = empty_frame().reindex(range(n))
        active = keys[tick * 20 : 200 + tick * 15]  # some leave, some are new each tick
        frame["api_key"] = rng.choice(active, n)
        frame["team"] = rng.choice(["t1", "t2", None], n)
        frame["provider"] = rng.choice(["openai", "anthropic", "gateway"], n)
        frame["model"] = rng.choice(["a", "b"] if tick % 2 else ["a", "b", "c"], n)
        frame["requested_model"] = frame["model"]
        frame["workflow"] = rng.choice(["w1", None], n)
        frame["status"] = rng.choice([200, 500], n)
        frame["latency_ms"] = rng.random(n)
        frame["ttft_ms"] = np.nan
        frame["input_tokens"] = 1
        frame["output_tokens"] = 2
        frame["cost_usd"] = rng.random(n)
        frame["fallback"] = False
        cached = aggregate(frame, start=0.0, end=15.0, cache=cache)
        fresh = aggregate(frame, start=0.0, end=15.0)
        for level, expected in fresh.items():
            pd.testing.assert_frame_equal(cached[level], expected)


def test_high_cardinality_groups_match_pandas_groupby_in_order() -> None:
    """Past ~260k (team, key) combinations the group ids come from a radix sort instead of a
    bincount: groups, their order and their sums must still be exactly pandas' ``groupby``,
    with and without the live label cache."""
    rng = np.random.default_rng(23)
    n = 6_000
    frame = empty_frame().reindex(range(n))
    frame["provider"] = rng.choice(["openai", "anthropic"], n)
    frame["model"] = rng.choice(["a", "b"], n)
    frame["requested_model"] = frame["model"]
    frame["api_key"] = rng.choice([f"k{i:05d}" for i in range(3_000)], n)
    frame["team"] = rng.choice([f"t{i:04d}" for i in range(700)] + [None], n)
    frame["workflow"] = None
    frame["status"] = rng.choice([200, 500], n, p=[0.8, 0.2])
    frame["latency_ms"] = rng.random(n)
    frame["ttft_ms"] = np.nan
    frame["input_tokens"] = rng.integers(1, 100, n)
    frame["output_tokens"] = 1
    frame["cost_usd"] = rng.random(n)
    frame["fallback"] = False
    grouped = frame.groupby(["team", "api_key"], dropna=False, sort=True)
    expected = pd.DataFrame(
        {
            "requests": grouped.size(),
            "errors": grouped["status"].apply(lambda s: int((s >= 500).sum())),
            "input_tokens": grouped["input_tokens"].sum(),
            "latency_p95": grouped["latency_ms"].quantile(0.95),
        }
    )
    cache = LabelCache()
    for result in (
        aggregate(frame, start=0.0, end=15.0),
        aggregate(frame, start=0.0, end=15.0, cache=cache),
        aggregate(frame, start=0.0, end=15.0, cache=cache),  # codebook and keys reused
    ):
        level = result["api_key"]
        assert len(level) == len(expected) > 4_000
        got = list(zip(level["team"].fillna("<none>"), level["api_key"], strict=True))
        want = [(t if isinstance(t, str) else "<none>", k) for t, k in expected.index]
        assert got == want
        for metric in ("requests", "errors", "input_tokens"):
            np.testing.assert_array_equal(level[metric].to_numpy(), expected[metric].to_numpy())
        np.testing.assert_allclose(level["latency_p95"].to_numpy(), expected["latency_p95"])
        assert level.index[0] == scope_key({"team": want[0][0], "api_key": want[0][1]})
