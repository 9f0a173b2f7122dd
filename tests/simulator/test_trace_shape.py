"""Arrivals and token sizes from a real serving trace: the reduction, both file formats, and
the simulated traffic following the trace's bursts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gatewarden.errors import ConfigError
from gatewarden.simulator import Scenario, Simulator
from gatewarden.simulator.trace_shape import TraceArrivals, TraceShape
from tests.simulator.helpers import START

AZURE_CONV = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "traces"
    / "azure2023"
    / "AzureLLMInferenceTrace_conv.csv"
)


def test_intensity_is_mean_one_smoothed_and_loops() -> None:
    # 10 s of silence, then 10 s at 5 requests a second
    seconds = np.repeat(np.arange(10, 20, dtype=np.float64), 5)
    shape = TraceShape.from_arrays(
        seconds, np.full(50, 100.0), np.arange(1, 51, dtype=np.float64), smooth_s=1
    )
    assert shape.period_s == 20
    assert shape.intensity.mean() == pytest.approx(1.0)
    assert shape.intensity[:10].tolist() == [0.0] * 10
    assert shape.intensity[10:].tolist() == [2.0] * 10
    at = np.array([1000, 1010, 1020, 1030], dtype=np.int64)
    assert shape.multipliers(at, origin=1000.0).tolist() == [0.0, 2.0, 0.0, 2.0]
    smoothed = TraceShape.from_arrays(seconds, np.ones(50), np.ones(50), smooth_s=4)
    assert 0 < smoothed.intensity[9] < 2.0  # the burst's edge is spread over its neighbours
    assert smoothed.intensity.mean() == pytest.approx(1.0)
    assert shape.output_ratio.tolist() == (np.arange(1, 51) / 25.5).tolist()


def test_both_formats_load(tmp_path: Path) -> None:
    azure = tmp_path / "azure.csv"
    azure.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,396,109\n"
        "2023-11-16 18:15:52.1000000,0,5\n"  # no prompt: not a usable request
    )
    mooncake = tmp_path / "mooncake.jsonl"
    mooncake.write_text(
        "\n".join(
            json.dumps({"timestamp": ms, "input_length": 100, "output_length": 10, "hash_ids": []})
            for ms in (0, 1500, 3000)
        )
    )
    a = TraceShape.load(TraceArrivals(path=azure, smooth_s=1))
    assert a.period_s == 5 and len(a.input_ratio) == 2
    m = TraceShape.load(TraceArrivals(path=mooncake, smooth_s=1))
    assert m.period_s == 4 and m.input_ratio.tolist() == [1.0, 1.0, 1.0]
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a readable LLM trace"):
        TraceShape.load(TraceArrivals(path=bad))


def test_scenario_checks_and_resolves_the_trace_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        Scenario(trace=TraceArrivals(path=tmp_path / "missing.csv"))
    (tmp_path / "t.jsonl").write_text('{"timestamp": 0, "input_length": 5, "output_length": 5}\n')
    (tmp_path / "s.yaml").write_text("trace: {path: t.jsonl}\n")
    scenario = Scenario.from_yaml(tmp_path / "s.yaml")
    assert scenario.trace is not None and scenario.trace.path == tmp_path / "t.jsonl"
    (tmp_path / "bad.yaml").write_text("trace: {path: nope.jsonl}\n")
    with pytest.raises(ConfigError, match="no such file"):
        Scenario.from_yaml(tmp_path / "bad.yaml")


def test_simulated_traffic_follows_a_real_trace() -> None:
    """Per-minute call counts track the Azure conversation trace's (diurnal off), and output
    sizes get its heavy tail; without a trace the same seed is the model's own traffic."""
    settings = TraceArrivals(path=AZURE_CONV)
    hour = 3600.0
    traced = Scenario(seed=3, start=START, duration_s=hour, diurnal_amplitude=0.0, trace=settings)
    records = Simulator(traced, metrics=False).generate(START, START + hour)
    minutes = np.bincount(
        [int((r["ts"] - START) // 60) for r in records if not r["fallback"]], minlength=60
    )[:58]
    shape = TraceShape.load(settings)
    expected = np.add.reduceat(shape.intensity, np.arange(0, len(shape.intensity), 60))[:58]
    assert np.corrcoef(minutes, expected)[0, 1] > 0.8
    assert minutes.max() / minutes.min() > 2  # the trace's bursts, not a flat Poisson rate
    chat = np.array([r["output_tokens"] for r in records if r["workflow"] == "support-chat"])
    ratio = shape.output_ratio
    assert np.percentile(chat, 99) / np.median(chat) == pytest.approx(
        np.percentile(ratio, 99) / np.median(ratio), rel=0.2
    )
    plain = Scenario(seed=3, start=START, duration_s=hour, diurnal_amplitude=0.0)
    own = Simulator(plain, metrics=False).generate(START, START + hour)
    own_minutes = np.bincount(
        [int((r["ts"] - START) // 60) for r in own if not r["fallback"]], minlength=60
    )[:58]
    assert abs(np.corrcoef(own_minutes, expected)[0, 1]) < 0.5
