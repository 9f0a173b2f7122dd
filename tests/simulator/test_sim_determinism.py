"""Same seed -> same records, however time is partitioned; every record meets the contract."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from gatewarden.ingest.request_log import COLUMNS, records_frame
from gatewarden.models import RequestRecord
from gatewarden.simulator import ProviderOutage, Simulator
from tests.simulator.helpers import START, scenario

SPAN = 1800.0


def _outage() -> ProviderOutage:
    return ProviderOutage(start=600, duration=600, provider="openai", error_rate=0.5)


def test_same_seed_same_records_regardless_of_partition() -> None:
    whole = Simulator(scenario(_outage()), metrics=False).generate(START, START + SPAN)

    rng = random.Random(3)
    cuts = sorted({START, START + SPAN, *(START + rng.uniform(0, SPAN) for _ in range(40))})
    parted = Simulator(scenario(_outage()), metrics=False)
    pieces = [parted.generate(a, b) for a, b in itertools.pairwise(cuts)]
    stitched = [r for piece in pieces for r in piece]

    assert len(whole) > 10_000
    assert stitched == whole


def test_advancing_in_tiny_steps_matches_one_jump() -> None:
    jump = Simulator(scenario(), metrics=False).generate(START, START + 120)
    steps = Simulator(scenario(), metrics=False)
    t = START
    while t < START + 120:
        t = min(t + 0.37, START + 120)
        steps.advance_to(t)
    assert steps.generate(START, START + 120) == jump


def test_different_seed_different_records() -> None:
    a = Simulator(scenario(seed=1), metrics=False).generate(START, START + 300)
    b = Simulator(scenario(seed=2), metrics=False).generate(START, START + 300)
    assert [r["trace_id"] for r in a] != [r["trace_id"] for r in b]
    assert len({r["request_id"] for r in a} & {r["request_id"] for r in b}) == 0


def test_records_validate_and_are_sorted() -> None:
    records = Simulator(scenario(_outage()), metrics=False).generate(START, START + SPAN)
    for rec in records:
        model = RequestRecord.model_validate(rec)
        assert model.api_key and not model.api_key.startswith("sk-")  # alias, never the secret
        assert set(rec) == set(COLUMNS)
    ts = [r["ts"] for r in records]
    assert ts == sorted(ts)
    assert len({r["request_id"] for r in records}) == len(records)
    frame = records_frame(records)
    assert len(frame) == len(records)
    assert frame["ttft_ms"].dtype == "float64"


def test_record_fields_are_plausible() -> None:
    records = Simulator(scenario(), metrics=False).generate(START, START + SPAN)
    ok = [r for r in records if r["status"] == 200]
    rps = len(records) / SPAN
    assert 5 < rps < 14  # base_rps 8 with diurnal and burst factors
    streamed = sum(r["ttft_ms"] is not None for r in ok) / len(ok)
    assert 0.45 < streamed < 0.8  # ~70% nominal, less for batch-style workflows
    for r in ok:
        assert r["cost_usd"] > 0 and r["output_tokens"] >= 1 and r["input_tokens"] >= 1
        if r["ttft_ms"] is not None:
            assert r["ttft_ms"] < r["latency_ms"]
    assert {r["provider"] for r in records} >= {"openai", "anthropic"}
    assert {r["requested_model"] for r in records} == {
        "gpt-4o",
        "gpt-4o-mini",
        "claude-sonnet",
        "claude-haiku",
    }
    # Output tokens are heavy-tailed: the max is far above the median.
    outs = sorted(r["output_tokens"] for r in ok)
    assert outs[-1] > 10 * outs[len(outs) // 2]
    # Background error rate ~0.3%.
    assert sum(r["status"] >= 400 for r in records) / len(records) < 0.01


def test_agent_sessions_have_many_calls_with_tools() -> None:
    records = Simulator(scenario(), metrics=False).generate(START, START + SPAN)
    sessions: dict[str, list[dict[str, object]]] = {}
    for r in records:
        if r["session_id"] is not None:
            sessions.setdefault(str(r["session_id"]), []).append(r)
    assert len(sessions) > 50
    lengths = sorted(len(v) for v in sessions.values())
    assert lengths[-1] >= 20  # long legitimate sessions exist
    long_session = max(sessions.values(), key=len)
    assert len({c["prompt_hash"] for c in long_session}) > len(long_session) * 0.9
    assert sum(c["tool"] is not None for c in long_session) >= len(long_session) - 1
    assert len({c["workflow"] for c in long_session}) == 1
    # Single-call workflows carry no session.
    assert all(
        r["session_id"] is None
        for r in records
        if r["workflow"] in ("search-answer", "marketing-copy")
    )


def test_diurnal_shape() -> None:
    sim = Simulator(scenario(), metrics=False)
    peak = sim.traffic.diurnal(START + 7 * 3600)  # 15:00 UTC
    trough = sim.traffic.diurnal(START + 19 * 3600)  # 03:00 UTC
    assert peak == pytest.approx(1.3) and trough == pytest.approx(0.7)
    assert all(math.isfinite(sim.traffic.rate_multiplier(START + i * 61.0)) for i in range(100))
