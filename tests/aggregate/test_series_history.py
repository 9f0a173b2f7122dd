"""SeriesHistory: combining matching series the way each metric combines."""

from __future__ import annotations

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
