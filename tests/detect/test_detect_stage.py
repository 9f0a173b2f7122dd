"""DetectStage end to end: records -> frames -> alerts with evidence, and the clear set."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from gatewarden.aggregate import AggregateStage, SeriesHistory, aggregate
from gatewarden.detect import DetectorSpec, DetectStage, parse_detector_specs
from gatewarden.ingest.request_log import records_frame
from gatewarden.models import RequestRecord, Severity, fingerprint
from gatewarden.protocols import Stage, Tick
from tests.detect.streams import count_hashes

TICK_S = 15.0
SPECS = """\
- name: provider-error-rate
  kind: error_rate
  level: provider
  metric: error_rate
  params: {alpha: 0.1, warmup: 5, binomial: true, abs_floor: 0.005}
  filter: {threshold: 6, min_value: 0.05, min_volume: 20}
  severity: critical
- name: model-error-rate
  kind: error_rate
  level: model
  metric: error_rate
  params: {alpha: 0.1, warmup: 5, binomial: true, abs_floor: 0.005}
  filter: {threshold: 6, min_value: 0.05, min_volume: 20}
- name: disabled
  kind: cost
  level: global
  metric: cost
  filter: {threshold: 1}
  enabled: false
"""


def records(t: int, rates: dict[str, float], n: int = 100) -> pd.DataFrame:
    """``n`` calls per provider, the first ``rate * n`` of them failing with 503."""
    rows = []
    for provider, rate in rates.items():
        for i in range(n):
            fields: dict[str, Any] = {
                "ts": t * TICK_S + 1,
                "request_id": f"{t}-{provider}-{i}",
                "api_key": "k",
                "provider": provider,
                "model": f"{provider}-m",
                "requested_model": f"{provider}-m",
                "status": 503 if i < round(rate * n) else 200,
                "latency_ms": 100.0,
                "input_tokens": 1,
                "output_tokens": 1,
                "cost_usd": 0.001,
            }
            rows.append(RequestRecord(**fields))
    return records_frame(rows)


def make_tick(t: int, rates: dict[str, float]) -> Tick:
    tick = Tick(now=(t + 1) * TICK_S, start=t * TICK_S, records=records(t, rates))
    AggregateStage().run(tick)
    return tick


@pytest.fixture
def specs() -> list[DetectorSpec]:
    return parse_detector_specs(SPECS)


def test_stage_protocol(specs: list[DetectorSpec]) -> None:
    stage = DetectStage(specs, history=None)
    assert isinstance(stage, Stage)
    assert [spec.name for spec in stage.specs] == ["provider-error-rate", "model-error-rate"]


def test_end_to_end_alerts_evidence_and_clear(specs: list[DetectorSpec]) -> None:
    history = SeriesHistory(maxlen=50)
    stage = DetectStage(specs, history=history)
    healthy = {"openai": 0.01, "anthropic": 0.02}
    for t in range(10):
        tick = make_tick(t, healthy)
        stage.run(tick)
        assert tick.alerts == []
    # after warm-up, every provider and model series is evaluated and healthy
    openai_fp = fingerprint("error_rate", {"provider": "openai"})
    model_fp = fingerprint("error_rate", {"provider": "openai", "model": "openai-m"})
    assert {openai_fp, model_fp} <= tick.clear
    assert len(tick.clear) == 4

    tick = make_tick(10, {"openai": 0.40, "anthropic": 0.02})
    stage.run(tick)
    by_detector = {alert.detector: alert for alert in tick.alerts}
    assert set(by_detector) == {"provider-error-rate", "model-error-rate"}
    alert = by_detector["provider-error-rate"]
    assert alert.kind == "error_rate"
    assert alert.scope == {"provider": "openai"}
    assert alert.fingerprint == openai_fp
    assert alert.severity is Severity.CRITICAL
    assert alert.ts == tick.now
    evidence = alert.evidence
    assert evidence.metric == "error_rate"
    assert evidence.observed == pytest.approx(0.40)
    assert evidence.expected == pytest.approx(0.01)
    assert evidence.score > 6
    assert evidence.window_s == TICK_S
    assert evidence.volume == 100
    assert "40.0% vs baseline 1.0%" in evidence.detail
    assert by_detector["model-error-rate"].scope == {"provider": "openai", "model": "openai-m"}
    assert by_detector["model-error-rate"].severity is Severity.WARNING
    assert tick.clear == {
        fingerprint("error_rate", {"provider": "anthropic"}),
        fingerprint("error_rate", {"provider": "anthropic", "model": "anthropic-m"}),
    }
    assert history.query("error_rate", {"provider": "openai"}) == pytest.approx(0.40)
    assert len(history) == 11


def test_missing_level_and_missing_volume_are_not_clear(specs: list[DetectorSpec]) -> None:
    stage = DetectStage(specs, history=None)
    for t in range(10):
        stage.run(make_tick(t, {"openai": 0.01}))
    # a provider with too little traffic is neither firing nor healthy
    thin = aggregate(records(10, {"openai": 0.5}, n=5), start=150.0, end=165.0)
    tick = Tick(now=165.0, start=150.0, records=records(10, {}), frames=thin)
    stage.run(tick)
    assert tick.alerts == []
    assert tick.clear == set()
    empty = Tick(now=180.0, start=165.0, records=records(11, {}))
    stage.run(empty)  # no frames at all: nothing to judge, nothing raised
    assert empty.alerts == [] and empty.clear == set()


def test_firing_fingerprint_is_never_cleared_by_another_spec() -> None:
    text = SPECS.split("- name: model-error-rate")[0]
    strict = text.replace("provider-error-rate", "strict").replace(
        "min_value: 0.05", "min_value: 0.9"
    )
    stage = DetectStage(parse_detector_specs(text + strict), history=None)
    for t in range(10):
        stage.run(make_tick(t, {"openai": 0.01}))
    tick = make_tick(10, {"openai": 0.40})
    stage.run(tick)
    assert [alert.detector for alert in tick.alerts] == ["provider-error-rate"]
    assert tick.alerts[0].fingerprint not in tick.clear


def test_duplicate_names_rejected(specs: list[DetectorSpec]) -> None:
    with pytest.raises(ValueError, match="unique"):
        DetectStage([specs[0], specs[0]], history=None)


def test_nan_values_do_not_break_the_stage() -> None:
    [spec] = parse_detector_specs(
        "name: ttft\nkind: ttft\nlevel: provider\nmetric: ttft_p95\nfilter: {threshold: 6}\n"
    )
    stage = DetectStage([spec], history=None)
    tick = make_tick(0, {"openai": 0.0})  # no streaming calls: ttft_p95 is NaN
    stage.run(tick)
    assert np.isnan(tick.frames["provider"]["ttft_p95"]).all()
    assert tick.alerts == [] and tick.clear == set()


def test_alerts_carry_sample_request_ids(specs: list[DetectorSpec]) -> None:
    stage = DetectStage(specs, history=None)
    for t in range(10):
        stage.run(make_tick(t, {"openai": 0.01}))
    tick = make_tick(10, {"openai": 0.40})
    stage.run(tick)
    alert = next(a for a in tick.alerts if a.detector == "provider-error-rate")
    assert len(alert.evidence.sample_ids) == 3
    failed = set(tick.records.loc[tick.records["status"] == 503, "request_id"])
    assert set(alert.evidence.sample_ids) <= failed


ACCUMULATING = """\
- name: ttft
  kind: ttft
  level: model
  metric: ttft_p50
  volume: ttft_samples
  algorithm: robust_ewma
  transform: log
  params: {alpha: 0.1, warmup: 5, rel_floor: 0.0, abs_floor: 0.05}
  cusum: {k: 1.0, cap: 4.0, hold: 6.0, s_max: 20.0}
  rollup: {min_series: 2}
  filter: {threshold: 17, min_volume: 5}
"""


def ttft_tick(t: int, slow: dict[str, float]) -> Tick:
    rows = [
        RequestRecord(
            ts=t * TICK_S + 1,
            request_id=f"{t}-{model}-{i}",
            api_key="k",
            provider="openai",
            model=model,
            requested_model=model,
            status=200,
            latency_ms=900.0,
            ttft_ms=(300.0 + 7 * i) * slow.get(model, 1.0),
            input_tokens=1,
            output_tokens=1,
            cost_usd=0.001,
        )
        for model in ("gpt-a", "gpt-b", "gpt-c")
        for i in range(20)
    ]
    tick = Tick(now=(t + 1) * TICK_S, start=t * TICK_S, records=records_frame(rows))
    AggregateStage().run(tick)
    return tick


def test_accumulated_evidence_window_and_provider_rollup() -> None:
    stage = DetectStage(parse_detector_specs(ACCUMULATING), history=None)
    for t in range(10):
        stage.run(ttft_tick(t, {}))
    fired: list[Tick] = []
    for t in range(10, 20):
        tick = ttft_tick(t, {"gpt-a": 2.0, "gpt-b": 2.0})
        stage.run(tick)
        fired.append(tick)
    first = next(tick for tick in fired if tick.alerts)
    assert first.alerts[0].scope == {"provider": "openai"}, "parent first"
    assert {tuple(sorted(a.scope.items())) for a in first.alerts[1:]} == {
        (("model", "gpt-a"), ("provider", "openai")),
        (("model", "gpt-b"), ("provider", "openai")),
    }
    parent = first.alerts[0]
    assert "2 series of {'provider': 'openai'} at once" in parent.evidence.detail
    assert parent.evidence.window_s >= 6 * TICK_S, "six ticks of accumulated evidence"
    healthy = fingerprint("ttft", {"provider": "openai", "model": "gpt-c"})
    assert healthy in first.clear
    calm = ttft_tick(30, {})
    for t in range(20, 60):
        calm = ttft_tick(t, {})
        stage.run(calm)
    assert calm.alerts == []
    assert fingerprint("ttft", {"provider": "openai"}) in calm.clear


PRICES = """\
- name: model-price
  kind: cost
  level: model
  metric: cost
  algorithm: price_index
  params: {warmup: 3}
  filter: {threshold: 3, min_volume: 5}
- name: workflow-cost
  kind: cost
  level: workflow
  metric: cost_per_request
  algorithm: robust_ewma
  transform: log
  params: {warmup: 3, rel_floor: 0.0, abs_floor: 0.1}
  filter: {threshold: 3, min_volume: 5}
"""


def cost_tick(t: int, price: float) -> Tick:
    rows = [
        RequestRecord(
            ts=t * TICK_S + 1,
            request_id=f"{t}-{i}",
            api_key="k",
            workflow="chat",
            provider="openai",
            model="gpt-4o" if i % 2 else "gpt-4o-mini",
            requested_model="gpt-4o",
            status=200,
            latency_ms=900.0,
            input_tokens=1000 + 10 * i + t,
            output_tokens=200 + 3 * i,
            cost_usd=(1000 + 10 * i + t) * 2.5e-6 * (price if i % 2 else 0.06)
            + (200 + 3 * i) * 1e-5 * (price if i % 2 else 0.06),
        )
        for i in range(20)
    ]
    tick = Tick(now=(t + 1) * TICK_S, start=t * TICK_S, records=records_frame(rows))
    AggregateStage().run(tick)
    return tick


def test_cost_alerts_name_the_model_whose_price_changed() -> None:
    stage = DetectStage(parse_detector_specs(PRICES), history=None)
    for t in range(10):
        stage.run(cost_tick(t, 1.0))
    tick = cost_tick(10, 2.0)
    stage.run(tick)
    by_detector = {a.detector: a for a in tick.alerts}
    assert by_detector["model-price"].scope == {"provider": "openai", "model": "gpt-4o"}
    assert by_detector["model-price"].evidence.observed / by_detector[
        "model-price"
    ].evidence.expected == pytest.approx(2.0, rel=0.01)
    detail = by_detector["workflow-cost"].evidence.detail
    assert "driven by gpt-4o price x2.00" in detail


def test_session_level_frames_come_from_the_records() -> None:
    [spec] = parse_detector_specs(
        "name: loop\nkind: agent_loop\nlevel: session\nmetric: repeat_score\n"
        "algorithm: static\nfilter: {threshold: 4, min_volume: 1}\n"
    )
    stage = DetectStage([spec], history=None)
    rows = [
        RequestRecord(
            ts=1.0 + i,
            request_id=f"r{i}",
            session_id="s1",
            api_key="k",
            workflow="agent",
            provider="openai",
            model="m",
            requested_model="m",
            status=200,
            latency_ms=10.0,
            input_tokens=1,
            output_tokens=1,
            cost_usd=0.001,
            prompt_hash="same",
            tool="search",
        )
        for i in range(6)
    ]
    tick = Tick(now=15.0, start=0.0, records=records_frame(rows))
    AggregateStage().run(tick)
    stage.run(tick)
    assert list(tick.frames["session"].index) == ["api_key=k,workflow=agent,session_id=s1"]
    [alert] = tick.alerts
    assert alert.scope == {"api_key": "k", "workflow": "agent", "session_id": "s1"}
    assert alert.evidence.observed == 5.0
    assert len(alert.evidence.sample_ids) == 3


def _one_call_per_key(t: int, keys: list[str]) -> list[RequestRecord]:
    return [
        RequestRecord(
            ts=t * TICK_S + 1,
            request_id=f"{k}-r",
            api_key=k,
            provider="p",
            model="m",
            requested_model="m",
            status=200,
            latency_ms=1.0,
            input_tokens=1,
            output_tokens=1,
            cost_usd=0.0,
        )
        for k in keys
    ]


def test_the_fingerprint_cache_forgets_series_that_churned_away(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sessions come and go for ever: the per-spec fingerprint cache is rebuilt from the tick's
    series once it holds more than twice them (and the floor), and verdicts stay right."""
    from gatewarden.detect import stage as stage_module

    monkeypatch.setattr(stage_module, "_MIN_KEPT_SERIES", 50)
    spec = parse_detector_specs(
        "- {name: keys, kind: traffic, level: api_key, metric: requests, algorithm: static,"
        " filter: {threshold: 1000}}"
    )[0]
    detect = DetectStage([spec], history=None)
    sizes = []
    for t in range(40):
        keys = [f"key-{t}-{i}" for i in range(10)]  # ten new series every tick
        rows = _one_call_per_key(t, keys)
        tick = Tick(now=(t + 1) * TICK_S, start=t * TICK_S, records=records_frame(rows))
        AggregateStage().run(tick)
        detect.run(tick)
        sizes.append(len(detect._running[0].series))
        assert set(tick.clear) == {fingerprint("traffic", {"api_key": k}) for k in keys}
    assert max(sizes) <= 50 + 10  # never past the floor plus one tick's new series


def test_rebuilding_the_fingerprint_cache_keeps_survivors_without_rehashing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Long-lived series that outlast a rebuild keep their fingerprints (hashed once, ever),
    and every tick's verdicts stay exactly the tick's series."""
    from gatewarden.detect import stage as stage_module

    monkeypatch.setattr(stage_module, "_MIN_KEPT_SERIES", 30)
    hashed = count_hashes(monkeypatch)
    spec = parse_detector_specs(
        "- {name: keys, kind: traffic, level: api_key, metric: requests, algorithm: static,"
        " filter: {threshold: 1000}}"
    )[0]
    detect = DetectStage([spec], history=None)
    steady = [f"steady-{i}" for i in range(5)]
    rebuilt = 0
    for t in range(30):
        keys = steady + [f"key-{t}-{i}" for i in range(8)]  # eight new series every tick
        rows = _one_call_per_key(t, keys)
        before = len(detect._running[0].series)
        tick = Tick(now=(t + 1) * TICK_S, start=t * TICK_S, records=records_frame(rows))
        AggregateStage().run(tick)
        detect.run(tick)
        rebuilt += len(detect._running[0].series) < before
        assert set(tick.clear) == {fingerprint("traffic", {"api_key": k}) for k in keys}
    assert rebuilt >= 5
    for key in steady:
        assert hashed.count(f"api_key={key}") == 1
    assert len(hashed) == len(steady) + 30 * 8
