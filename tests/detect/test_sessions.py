"""Session features and the shipped agent-loop specs: loops are caught, long healthy sessions
are not, and session state does not outlive its sessions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from gatewarden.detect import DetectStage, SessionFeatures, load_detector_specs
from gatewarden.ingest.request_log import records_frame
from gatewarden.protocols import Tick

DETECTORS_DIR = Path(__file__).resolve().parents[2] / "detectors"
TICK = 15.0


def call(ts: float, session: str, prompt: str, **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "ts": ts,
        "request_id": f"r-{session}-{ts}",
        "trace_id": f"t-{session}-{ts}",
        "session_id": session,
        "api_key": "agent-key",
        "team": "platform",
        "workflow": "code-agent",
        "provider": "anthropic",
        "model": "claude",
        "requested_model": "claude",
        "status": 200,
        "latency_ms": 900.0,
        "input_tokens": 2000,
        "output_tokens": 200,
        "cost_usd": 0.01,
        "prompt_hash": prompt,
        "fallback": False,
        "tool": None,
    }
    fields.update(extra)
    return fields


def frame_of(calls: list[dict[str, Any]]) -> pd.DataFrame:
    return records_frame(calls)


def row(frame: pd.DataFrame, session: str) -> pd.Series:
    return frame.loc[frame["session_id"] == session].iloc[0]


def test_repeats_count_successful_prompts_within_and_across_ticks() -> None:
    features = SessionFeatures()
    first = features.update(frame_of([call(1, "s", "p1"), call(5, "s", "p1")]), now=15)
    assert row(first, "s")["prompt_repeats"] == 1
    assert row(first, "s")["requests"] == 2
    later = features.update(frame_of([call(20, "s", "p1"), call(25, "s", "p2")]), now=30)
    assert row(later, "s")["prompt_repeats"] == 1  # p1 succeeded in the previous tick
    assert row(later, "s")["calls_total"] == 4
    assert row(later, "s")["cost_total"] == pytest.approx(0.04)
    assert later.index[0] == "api_key=agent-key,workflow=code-agent,session_id=s"


def test_retries_after_errors_and_fallbacks_are_not_repeats() -> None:
    features = SessionFeatures()
    calls = [
        call(1, "s", "p1", status=503, cost_usd=0.0),
        call(2, "s", "p1", fallback=True, request_id="fb", model="gpt"),  # same trace's fallback
        call(6, "s", "p1"),  # the client's retry after the failure
    ]
    frame = features.update(frame_of(calls), now=15)
    assert row(frame, "s")["prompt_repeats"] == 0
    assert row(frame, "s")["requests"] == 2  # primary calls only


def test_tool_streaks_continue_across_ticks_and_reset_on_change() -> None:
    features = SessionFeatures()
    tick1 = [call(t, "s", f"p{t}", tool="search") for t in range(1, 5)]
    assert row(features.update(frame_of(tick1), now=15), "s")["tool_streak"] == 4
    tick2 = [call(t, "s", f"p{t}", tool="search") for t in range(16, 19)]
    assert row(features.update(frame_of(tick2), now=30), "s")["tool_streak"] == 7
    tick3 = [call(31, "s", "q1", tool="read"), call(32, "s", "q2", tool="search")]
    assert row(features.update(frame_of(tick3), now=45), "s")["tool_streak"] == 1


def test_repeat_score_decays_and_idle_sessions_are_dropped() -> None:
    features = SessionFeatures(half_life_s=60.0, idle_s=300.0)
    loop = [call(t, "s", "same") for t in range(1, 11)]
    frame = features.update(frame_of(loop), now=15)
    assert row(frame, "s")["repeat_score"] == pytest.approx(9.0)
    frame = features.update(frame_of([call(75, "s", "new")]), now=75)
    assert row(frame, "s")["repeat_score"] == pytest.approx(4.5)  # one half-life later
    assert len(features) == 1
    for now in range(90, 3000, 15):
        batch = [call(now - 1, f"other-{now}-{i}", "x") for i in range(10)]
        features.update(frame_of(batch), now=now)
    assert len(features) == 10 * (300 // 15 + 1)  # live: the last five minutes' sessions
    assert len(features.state) < 1500, "idle sessions are compacted away"
    assert "s" not in features.state.index


def _agent_records(rng: np.random.Generator, t0: float, t1: float) -> list[dict[str, Any]]:
    """Ordinary agent traffic: sessions of 3-12 calls, a new prompt each call, mixed tools."""
    out: list[dict[str, Any]] = []
    session = 0
    ts = t0
    while ts < t1:
        session += 1
        calls = int(rng.integers(3, 13))
        at = ts
        for c in range(calls):
            tool = ["read", "test", "search", "patch"][int(rng.integers(0, 4))]
            out.append(call(at, f"ok-{session}", f"{session}-{c}", tool=tool))
            at += float(rng.uniform(2, 6))
        ts += float(rng.uniform(1, 4))
    return out


def run_stage(records: list[dict[str, Any]], end: float) -> list[tuple[float, str, str]]:
    specs = [s for s in load_detector_specs(DETECTORS_DIR) if s.kind == "agent_loop"]
    stage = DetectStage(specs, history=None)
    frame = frame_of(sorted(records, key=lambda r: r["ts"]))
    ts = frame["ts"].to_numpy()
    fired: list[tuple[float, str, str]] = []
    for start in np.arange(0.0, end, TICK):
        part = frame.loc[(ts >= start) & (ts < start + TICK)].reset_index(drop=True)
        tick = Tick(now=float(start + TICK), start=float(start), records=part)
        stage.run(tick)
        fired += [(tick.now, a.scope["session_id"], a.detector) for a in tick.alerts]
    return fired


def test_shipped_specs_catch_a_loop_and_spare_a_long_healthy_session() -> None:
    rng = np.random.default_rng(0)
    records = _agent_records(rng, 0, 3000)
    # a loop from t=1500: the same prompt and tool every 2-5 s
    at = 1500.0
    while at < 2100:
        records.append(call(at, "loop", "again", tool="search"))
        at += float(rng.uniform(2, 5))
    # a long, healthy session: 250 calls, a new prompt every call, varied tools
    at = 200.0
    for c in range(250):
        records.append(call(at, "long", f"long-{c}", tool=["read", "test", "patch"][c % 3]))
        at += float(rng.uniform(3, 8))
    fired = run_stage(records, 3000)
    sessions = {s for _, s, _ in fired}
    assert sessions == {"loop"}
    first = min(t for t, s, _ in fired if s == "loop")
    assert first - 1500 <= 45, "caught within a few calls"
    assert "session-prompt-loop" in {d for _, _, d in fired}


def test_a_varied_prompt_loop_is_caught_by_its_tool_streak() -> None:
    rng = np.random.default_rng(1)
    records = _agent_records(rng, 0, 1500)
    at = 600.0
    for c in range(80):  # the context grows (new hash each call) but it is stuck on one tool
        records.append(call(at, "stuck", f"stuck-{c}", tool="search"))
        at += float(rng.uniform(2, 5))
    fired = run_stage(records, 1500)
    assert {s for _, s, _ in fired} == {"stuck"}
    assert {d for _, _, d in fired} == {"session-tool-loop"}
