"""SeriesHistory: combining matching series the way each metric combines."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from gatewarden.aggregate import SeriesHistory, aggregate, level_for
from gatewarden.ingest.request_log import records_frame
from gatewarden.models import RequestRecord

BASE: dict[str, Any] = {
    "ts": 1.0,
    "api_key": "k1",
    "provider": "openai",
    "model": "gpt-4o",
    "requested_model": "gpt-4o",
    "status": 200,
    "latency_ms": 100.0,
    "input_tokens": 1,
    "output_tokens": 1,
    "cost_usd": 0.5,
}


def window(spec: list[tuple[str, int, int]]) -> dict[str, Any]:
    """(model, requests, errors) per model of provider openai -> level frames."""
    records = []
    for model, requests, errors in spec:
        for i in range(requests):
            status = 500 if i < errors else 200
            records.append(
                RequestRecord(
                    **{**BASE, "request_id": f"{model}{i}", "model": model, "status": status}
                )
            )
    return aggregate(records_frame(records), start=0.0, end=10.0)


def test_ratio_is_recomputed_from_sums_not_averaged() -> None:
    history = SeriesHistory(maxlen=5)
    history.push(10.0, window([("a", 10, 5), ("b", 90, 0)]))
    # mean of per-model rates would be 25 %; pooled it is 5 %
    assert history.query("error_rate", {"provider": "openai"}, "model") == pytest.approx(0.05)
    assert history.query("error_rate", {"provider": "openai"}) == pytest.approx(0.05)
    assert history.query("requests", {"provider": "openai"}, "model") == 100
    assert history.query("cost_per_request", {"provider": "openai"}) == pytest.approx(0.5)
    assert history.query("error_rate", {"model": "a"}) == pytest.approx(0.5)


def test_none_without_volume_or_tick() -> None:
    history = SeriesHistory(maxlen=2)
    assert history.query("error_rate", {"provider": "openai"}) is None
    history.push(10.0, window([("a", 10, 1)]))
    assert history.query("error_rate", {"provider": "azure"}) is None
    assert history.query("ttft_p95", {"provider": "openai"}) is None  # no streaming
    assert history.query("error_rate", {"provider": "openai"}, ago=1) is None


def test_ring_buffer_and_values_newest_first() -> None:
    history = SeriesHistory(maxlen=3)
    for t, errors in enumerate([10, 5, 1, 0]):
        history.push(float(t), window([("a", 100, errors)]))
    assert len(history) == 3
    assert history.values("error_rate", {"provider": "openai"}, ticks=4) == [
        0.0,
        pytest.approx(0.01),
        pytest.approx(0.05),
        None,
    ]


def test_percentile_over_several_series_is_an_upper_bound() -> None:
    history = SeriesHistory()
    history.push(1.0, window([("a", 5, 0), ("b", 5, 0)]))
    assert history.query("latency_p95", {"provider": "openai"}, "model") == pytest.approx(100.0)


def test_level_resolution() -> None:
    assert level_for({}) == "global"
    assert level_for({"provider": "x"}) == "provider"
    assert level_for({"model": "x"}) == "model"
    assert level_for({"api_key": "k"}) == "api_key"
    with pytest.raises(ValueError, match="no aggregation level"):
        level_for({"provider": "x", "team": "t"})
    history = SeriesHistory()
    with pytest.raises(ValueError, match="unknown metric"):
        history.query("nope", {})
    with pytest.raises(ValueError, match="has no label"):
        history.query("requests", {"team": "t"}, "provider")


def test_byte_budget_drops_oldest_ticks_but_keeps_the_minimum(
    caplog: pytest.LogCaptureFixture,
) -> None:
    frames = window([("a", 10, 1), ("b", 5, 0)])
    tick_bytes = sum(int(f.memory_usage(index=True).sum()) for f in frames.values())
    history = SeriesHistory(maxlen=10, max_bytes=3 * tick_bytes + tick_bytes // 2, min_len=2)
    for k in range(6):
        history.push(float(k), frames)
    assert len(history) == 3  # the budget, not maxlen, bounds it
    assert history.nbytes == 3 * tick_bytes
    assert [history.entry(ago).ts for ago in range(3)] == [5.0, 4.0, 3.0]  # newest kept
    assert "trimmed to 3 ticks" in caplog.text
    tight = SeriesHistory(maxlen=10, max_bytes=0, min_len=2)
    for k in range(5):
        tight.push(float(k), frames)
    assert len(tight) == 2  # a preview's minimum survives any budget
    assert tight.nbytes == 2 * tick_bytes
    roomy = SeriesHistory(maxlen=4)
    for k in range(9):
        roomy.push(float(k), frames)
    assert len(roomy) == 4 and roomy.nbytes == 4 * tick_bytes  # evicted by maxlen: accounted


def test_the_assembled_daemon_keeps_what_its_readers_look_back(tmp_path: Path) -> None:
    """Charts backfill 40 ticks and previews sum 20: the daemon keeps 40, not an hour."""
    from gatewarden.clock import VirtualClock
    from gatewarden.config import DaemonConfig
    from gatewarden.daemon import build
    from gatewarden.gateways import InMemoryGateway
    from gatewarden.gateways.traffic import PREVIEW_TICKS
    from gatewarden.report.series import LOOKBACK_TICKS
    from gatewarden.store.sqlite import SQLiteStore

    repo = Path(__file__).resolve().parents[2]
    config = DaemonConfig.model_validate(
        {
            "detectors_dir": str(repo / "detectors"),
            "playbooks_dir": str(repo / "playbooks"),
            "reports_dir": str(tmp_path / "reports"),
            "notify": {"console": False},
        }
    )
    assembly = build(
        config,
        clock=VirtualClock(1_000.0),
        env={},
        stream=io.StringIO(),
        sources=[],
        gateway=InMemoryGateway(),
        store=SQLiteStore(str(tmp_path / "gw.db")),
    )
    frames = window([("a", 3, 0)])
    for k in range(3 * LOOKBACK_TICKS):
        assembly.history.push(float(k), frames)
    assert len(assembly.history) == max(LOOKBACK_TICKS, PREVIEW_TICKS) == 40
    assert assembly.history.min_len == PREVIEW_TICKS
