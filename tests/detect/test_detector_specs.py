"""Detector spec loading: the shipped specs load, bad fields are reported as file:line: field."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatewarden.detect import (
    ALGORITHMS,
    BinomialLLR,
    BurnRate,
    Cusum,
    DetectorSpec,
    Log,
    NOfM,
    RobustEWMA,
    SeasonalEWMA,
    Threshold,
    load_detector_specs,
    locate,
    parse_detector_specs,
)
from gatewarden.detect.spec import RobustEWMAParams
from gatewarden.errors import ConfigError
from gatewarden.models import ALERT_KINDS, Severity

DETECTORS_DIR = Path(__file__).resolve().parents[2] / "detectors"

GOOD = """\
name: provider-error-rate
kind: error_rate
level: provider
metric: error_rate
algorithm: robust_ewma
params:
  alpha: 0.2
filter:
  threshold: 6
  min_value: 0.05
  min_volume: 20
severity: critical
"""


def test_shipped_specs_load_and_cover_every_kind() -> None:
    specs = load_detector_specs(DETECTORS_DIR)
    enabled = [spec for spec in specs if spec.enabled]
    assert {spec.kind for spec in enabled} == set(ALERT_KINDS) - {"gateway_unreachable"}
    by_name = {spec.name: spec for spec in specs}
    provider = by_name["provider-error-rate"]
    assert provider.level == "provider"
    assert provider.metric == "error_rate"
    detector = provider.build_detector()
    assert isinstance(detector, Cusum) and isinstance(detector.inner, BinomialLLR)
    assert not by_name["provider-slo-burn"].enabled  # the SLO alternative ships switched off
    assert isinstance(by_name["provider-slo-burn"].build_detector(), BurnRate)
    ttft = by_name["model-ttft-p50"].build_detector()
    assert isinstance(ttft, Cusum) and isinstance(ttft.inner, Log)
    assert isinstance(ttft.inner.inner, SeasonalEWMA)
    assert by_name["model-ttft-p50"].rollup is not None
    assert by_name["model-price"].build_detector().inputs == ("input_tokens", "output_tokens")
    assert by_name["session-prompt-loop"].level == "session"
    for spec in enabled:
        spec.build_detector()
        spec.build_filter()


def test_parse_builds_detector_and_filter() -> None:
    [spec] = parse_detector_specs(GOOD)
    assert spec.severity is Severity.CRITICAL
    assert spec.volume == "requests"
    assert spec.enabled
    detector = spec.build_detector()
    assert isinstance(detector, RobustEWMA)
    assert detector.alpha == 0.2
    assert detector.min_volume == 20  # inherited from the filter
    assert isinstance(spec.build_filter(), Threshold)


def test_n_of_m_wraps_threshold() -> None:
    text = GOOD.replace("  min_volume: 20\n", "  min_volume: 20\n  n_of_m: {n: 2, m: 3}\n")
    [spec] = parse_detector_specs(text)
    assert isinstance(spec.build_filter(), NOfM)


def problems_of(text: str, tmp_path: Path, name: str = "bad.yaml") -> list[str]:
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as info:
        load_detector_specs(tmp_path)
    return info.value.problems


def test_bad_field_reports_file_line_and_field(tmp_path: Path) -> None:
    problems = problems_of(GOOD.replace("threshold: 6", "threshold: high"), tmp_path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{tmp_path / 'bad.yaml'}:9: filter.threshold: ")


def test_unknown_field_and_bad_enum(tmp_path: Path) -> None:
    text = GOOD.replace("kind: error_rate", "kind: errors").replace("enabled", "x")
    text += "colour: blue\n"
    problems = problems_of(text, tmp_path)
    assert any(
        p.endswith(
            "bad.yaml:2: kind: Value error, unknown kind 'errors'; expected one of "
            "ttft, error_rate, cost, agent_loop, fallback_storm, traffic, "
            "gateway_unreachable"
        )
        for p in problems
    )
    assert any(":13: colour: Extra inputs are not permitted" in p for p in problems)


def test_bad_param_reports_its_own_line(tmp_path: Path) -> None:
    text = GOOD.replace("alpha: 0.2", "alpha: 2\n  alhpa: 0.1")
    problems = problems_of(text, tmp_path)
    assert any(":7: params.alpha: Input should be less than or equal to 1" in p for p in problems)
    assert any(":8: params.alhpa: Extra inputs are not permitted" in p for p in problems)
    assert len(problems) == 2  # the spec-level guard does not repeat them


def test_list_file_and_missing_field(tmp_path: Path) -> None:
    second = GOOD.replace("name: provider-error-rate", "name: other").replace(
        "metric: error_rate\n", ""
    )
    text = "- " + GOOD.replace("\n", "\n  ").rstrip() + "\n- " + second.replace("\n", "\n  ")
    problems = problems_of(text, tmp_path)
    assert problems == [f"{tmp_path / 'bad.yaml'}:13: [1].metric: Field required"]


def test_invalid_yaml_and_duplicates(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)
    (tmp_path / "c.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_detector_specs(tmp_path)
    problems = info.value.problems
    assert any(p.startswith(f"{tmp_path / 'b.yaml'}:1: name: duplicate") for p in problems)
    assert any(p.startswith(f"{tmp_path / 'c.yaml'}:2: (document): invalid YAML") for p in problems)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a directory"):
        load_detector_specs(tmp_path / "nope")


def test_spec_in_code_is_validated_too() -> None:
    with pytest.raises(ValueError, match="params do not fit algorithm robust_ewma"):
        DetectorSpec.model_validate(
            {
                "name": "x",
                "kind": "error_rate",
                "level": "provider",
                "metric": "error_rate",
                "params": {"window": 3},
                "filter": {"threshold": 6},
            }
        )


def test_registry_is_explicit() -> None:
    assert ALGORITHMS["robust_ewma"] is RobustEWMAParams
    assert set(ALGORITHMS) == {
        "robust_ewma",
        "median_mad",
        "binomial_llr",
        "seasonal_ewma",
        "static",
        "share_surge",
        "burn_rate",
        "price_index",
        "peer_group",
        "half_space_trees",
    }


def test_metrics_are_checked_against_the_level(tmp_path: Path) -> None:
    session = GOOD.replace("level: provider", "level: session").replace(
        "metric: error_rate", "metric: repeat_score"
    )
    [spec] = parse_detector_specs(session.replace("kind: error_rate", "kind: agent_loop"))
    assert spec.level == "session"
    problems = problems_of(GOOD.replace("metric: error_rate", "metric: repeat_score"), tmp_path)
    assert len(problems) == 1
    assert ":4: metric: unknown metric 'repeat_score' for level provider" in problems[0]


def test_inputs_transform_cusum_and_rollup_are_validated() -> None:
    base = {
        "name": "x",
        "kind": "agent_loop",
        "level": "session",
        "metric": "calls_total",
        "algorithm": "peer_group",
        "filter": {"threshold": 6},
    }
    DetectorSpec.model_validate({**base, "params": {"group_by": "workflow"}})
    with pytest.raises(ValueError, match="needs column"):
        DetectorSpec.model_validate({**base, "params": {"group_by": "team"}})
    with pytest.raises(ValueError, match="rollup needs a level with a parent"):
        DetectorSpec.model_validate(
            {
                **base,
                "level": "provider",
                "metric": "error_rate",
                "algorithm": "robust_ewma",
                "rollup": {"min_series": 2},
            }
        )
    with pytest.raises(ValueError, match="cap must exceed k"):
        DetectorSpec.model_validate(
            {**base, "algorithm": "static", "cusum": {"k": 2.0, "cap": 1.0}}
        )
    logged = DetectorSpec.model_validate(
        {**base, "algorithm": "static", "transform": "log", "cusum": {"k": 0.5}}
    ).build_detector()
    assert isinstance(logged, Cusum) and isinstance(logged.inner, Log)


@pytest.mark.parametrize(
    ("loc", "line"),
    [
        (("name",), 1),
        (("filter",), 8),
        (("filter", "min_value"), 10),
        (("filter", "absent"), 8),
        (("nope",), 1),
        ((), 1),
    ],
)
def test_locate(loc: tuple[str, ...], line: int) -> None:
    assert locate(GOOD, loc) == line


def test_locate_sequences_and_non_yaml() -> None:
    text = "items:\n  - a: 1\n  - a: 2\n    b: 3\n"
    assert locate(text, ("items", 1, "b")) == 4
    assert locate(text, ("items", 7)) == 1
    assert locate("a: [", ("a",)) is None
    assert locate("", ("a",)) is None
