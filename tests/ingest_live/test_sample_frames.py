"""Frame samples -> level frames, merged cell by cell with the frames aggregated from records."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gatewarden.aggregate import METRICS, AggregateStage, aggregate
from gatewarden.ingest.request_log import empty_frame, records_frame
from gatewarden.ingest.sample_frames import (
    SampleFramesStage,
    frame_sample,
    frames_from_samples,
    parse_frame_sample_name,
)
from gatewarden.models import Sample
from gatewarden.protocols import Tick

GPT = {"provider": "openai", "model": "gpt-4o"}


def rec(i: int, status: int = 200, ttft: float | None = None) -> dict[str, object]:
    return {
        "ts": 10.0 + i,
        "request_id": f"r{i}",
        "api_key": "k",
        "provider": "openai",
        "model": "gpt-4o",
        "requested_model": "gpt-4o",
        "status": status,
        "latency_ms": 100.0,
        "ttft_ms": ttft,
        "input_tokens": 1,
        "output_tokens": 1,
        "cost_usd": 0.01,
        "fallback": False,
        "retries": 0,
    }


def test_names_round_trip_and_foreign_samples_are_ignored() -> None:
    assert parse_frame_sample_name("gatewarden:model:errors") == ("model", "errors")
    assert parse_frame_sample_name("gatewarden:nolevel:errors") is None
    assert parse_frame_sample_name("gatewarden:model:nometric") is None
    assert parse_frame_sample_name("litellm_deployment_state") is None
    frames = frames_from_samples(
        [Sample(name="litellm_deployment_state", labels={}, ts=0, value=2)], window=15
    )
    assert frames == {}


def test_cells_add_up_across_replicas_ratios_are_derived_and_missing_stays_nan() -> None:
    samples = [
        frame_sample("model", "requests", GPT, 30, 0),
        frame_sample("model", "requests", GPT, 10, 0),  # a second replica
        frame_sample("model", "errors", GPT, 4, 0),
        frame_sample("model", "ttft_p95", GPT, 800, 0),
        frame_sample("model", "ttft_p95", GPT, 950, 0),  # percentiles: the worse one
        frame_sample("model", "requests", {"provider": "anthropic", "model": "c"}, 0, 0),
        frame_sample("model", "errors", {"provider": "openai"}, 1, 0),  # lacks a label: dropped
    ]
    frame = frames_from_samples(samples, window=20)["model"]
    assert list(frame.columns) == ["provider", "model", *METRICS]
    row = frame.loc["provider=openai,model=gpt-4o"]
    assert (row["requests"], row["errors"], row["ttft_p95"]) == (40, 4, 950)
    assert row["error_rate"] == 0.1 and row["rps"] == 2.0
    assert math.isnan(row["cost"])  # nobody reported cost: unknown, not zero
    idle = frame.loc["provider=anthropic,model=c"]
    assert idle["requests"] == 0 and math.isnan(idle["error_rate"])


def test_records_win_and_samples_fill_their_gaps() -> None:
    records = records_frame([rec(0), rec(1, status=500), rec(2)])
    tick = Tick(now=25.0, start=10.0, records=records)
    tick.samples = [
        frame_sample("model", "requests", GPT, 99, 25),  # records know better
        frame_sample("model", "ttft_p95", GPT, 640, 25),  # records have no TTFT: filled
        frame_sample("model", "requests", {"provider": "azure", "model": "gpt-4o"}, 7, 25),
    ]
    AggregateStage().run(tick)
    SampleFramesStage().run(tick)
    frame = tick.frames["model"]
    assert frame.loc["provider=openai,model=gpt-4o", "requests"] == 3
    assert frame.loc["provider=openai,model=gpt-4o", "error_rate"] == 1 / 3
    assert frame.loc["provider=openai,model=gpt-4o", "ttft_p95"] == 640
    assert frame.loc["provider=azure,model=gpt-4o", "requests"] == 7
    assert list(frame.columns) == list(aggregate(records, start=10, end=25)["model"].columns)
    assert frame.index.name == "scope"


def test_prefer_samples_and_empty_records() -> None:
    tick = Tick(now=25.0, start=10.0, records=records_frame([rec(0)]))
    tick.samples = [frame_sample("model", "requests", GPT, 99, 25)]
    AggregateStage().run(tick)
    SampleFramesStage(prefer="samples").run(tick)
    assert tick.frames["model"].loc["provider=openai,model=gpt-4o", "requests"] == 99
    empty = Tick(now=25.0, start=10.0, records=empty_frame())
    empty.samples = [frame_sample("global", "requests", {}, 5, 25)]
    AggregateStage().run(empty)
    SampleFramesStage().run(empty)
    assert empty.frames["global"].loc["", "requests"] == 5
    assert isinstance(empty.frames["provider"], pd.DataFrame) and empty.frames["provider"].empty
    assert np.isnan(empty.frames["global"].loc["", "errors"])
