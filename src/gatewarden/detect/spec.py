"""Detector specs: ``detectors/*.yaml`` -> validated, frozen :class:`DetectorSpec` objects.

A file holds one spec (a mapping) or several (a list of mappings)::

    name: provider-error-rate
    kind: error_rate            # one of gatewarden.models.ALERT_KINDS
    level: provider             # an aggregation level (gatewarden.aggregate.LEVELS)
    metric: error_rate          # a column of that level's frame
    volume: requests            # the column that says how much data stands behind the value
    algorithm: robust_ewma      # a key of ALGORITHMS
    params: {alpha: 0.1, warmup: 20, binomial: true}
    filter: {threshold: 6, min_value: 0.05, min_volume: 20, n_of_m: {n: 2, m: 3}}
    severity: critical
    enabled: true

Algorithms are looked up in an explicit dict (:data:`ALGORITHMS`), never by building import
paths from config text. Every problem is reported as ``file:line: field: message``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from gatewarden.aggregate import LEVELS, METRICS
from gatewarden.detect.filters import NOfM, Threshold
from gatewarden.detect.robust import MedianMAD, RobustEWMA
from gatewarden.detect.yaml_lines import Loc, format_problem, locate
from gatewarden.errors import ConfigError
from gatewarden.models import ALERT_KINDS, Severity
from gatewarden.protocols import Detector, Filter

Direction = Literal["up", "down", "both"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AlgorithmParams(_Frozen):
    """Parameters of one algorithm; ``min_volume`` defaults to the filter's ``min_volume`` so
    the baseline never learns from ticks too thin to be judged."""

    min_volume: float | None = Field(default=None, ge=0)

    def build(self, default_min_volume: float) -> Detector:
        raise NotImplementedError


class RobustEWMAParams(AlgorithmParams):
    alpha: float = Field(default=0.1, gt=0, le=1)
    warmup: int = Field(default=10, ge=1)
    rel_floor: float = Field(default=0.1, ge=0)
    abs_floor: float = Field(default=1e-9, ge=0)
    binomial: bool = False
    clip: float = Field(default=3.0, gt=0)
    learn_limit: float = Field(default=4.0, gt=0)
    max_skip: int = Field(default=240, ge=1)
    direction: Direction = "up"

    def build(self, default_min_volume: float) -> Detector:
        kwargs = self.model_dump(exclude={"min_volume"})
        return RobustEWMA(min_volume=_pick(self.min_volume, default_min_volume), **kwargs)


class MedianMADParams(AlgorithmParams):
    window: int = Field(default=30, ge=3)
    min_periods: int = Field(default=10, ge=1)
    rel_floor: float = Field(default=0.1, ge=0)
    abs_floor: float = Field(default=1e-9, ge=0)
    binomial: bool = False
    learn_limit: float = Field(default=4.0, gt=0)
    max_skip: int = Field(default=240, ge=1)
    direction: Direction = "up"

    @model_validator(mode="after")
    def _periods_fit_window(self) -> MedianMADParams:
        if self.min_periods > self.window:
            raise ValueError("min_periods must not exceed window")
        return self

    def build(self, default_min_volume: float) -> Detector:
        kwargs = self.model_dump(exclude={"min_volume"})
        return MedianMAD(min_volume=_pick(self.min_volume, default_min_volume), **kwargs)


#: Algorithm name -> its parameter model (whose ``build`` constructs the detector).
ALGORITHMS: dict[str, type[AlgorithmParams]] = {
    "robust_ewma": RobustEWMAParams,
    "median_mad": MedianMADParams,
}

Algorithm = Literal["robust_ewma", "median_mad"]


def _pick(value: float | None, default: float) -> float:
    return default if value is None else value


class NOfMSpec(_Frozen):
    n: int = Field(ge=1)
    m: int = Field(ge=1, le=64)

    @model_validator(mode="after")
    def _n_le_m(self) -> NOfMSpec:
        if self.n > self.m:
            raise ValueError("n must not exceed m")
        return self


class FilterSpec(_Frozen):
    threshold: float = Field(gt=0)
    min_value: float = -math.inf
    max_value: float = math.inf
    min_volume: float = Field(default=0.0, ge=0)
    n_of_m: NOfMSpec | None = None

    def build(self) -> Filter:
        inner = Threshold(
            self.threshold,
            min_value=self.min_value,
            max_value=self.max_value,
            min_volume=self.min_volume,
        )
        if self.n_of_m is None:
            return inner
        return NOfM(inner, n=self.n_of_m.n, m=self.n_of_m.m)


class DetectorSpec(_Frozen):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    kind: str
    level: str
    metric: str
    volume: str = "requests"
    algorithm: Algorithm = "robust_ewma"
    params: dict[str, Any] = Field(default_factory=dict)
    filter: FilterSpec
    severity: Severity = Severity.WARNING
    enabled: bool = True
    description: str = ""

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in ALERT_KINDS:
            raise ValueError(f"unknown kind {value!r}; expected one of {', '.join(ALERT_KINDS)}")
        return value

    @field_validator("level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value not in LEVELS:
            raise ValueError(f"unknown level {value!r}; expected one of {', '.join(LEVELS)}")
        return value

    @field_validator("metric", "volume")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown metric {value!r}; expected one of {', '.join(METRICS)}")
        return value

    @model_validator(mode="after")
    def _params_fit_algorithm(self) -> DetectorSpec:
        # The loader validates params itself first to report per-field locations; this guard
        # keeps specs built in code just as safe.
        try:
            ALGORITHMS[self.algorithm].model_validate(self.params)
        except ValidationError as exc:
            raise PydanticCustomError(
                "params_invalid",
                "params do not fit algorithm {algorithm}: {detail}",
                {"algorithm": self.algorithm, "detail": str(exc)},
            ) from exc
        return self

    def algorithm_params(self) -> AlgorithmParams:
        return ALGORITHMS[self.algorithm].model_validate(self.params)

    def build_detector(self) -> Detector:
        return self.algorithm_params().build(self.filter.min_volume)

    def build_filter(self) -> Filter:
        return self.filter.build()


def parse_detector_specs(text: str, *, origin: Path | str = "<text>") -> list[DetectorSpec]:
    """Specs of one YAML document; raises ConfigError listing every problem found."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError([format_problem(origin, line, (), f"invalid YAML: {exc}")]) from exc
    if raw is None:
        return []
    documents = raw if isinstance(raw, list) else [raw]
    prefixes: list[Loc] = [(i,) for i in range(len(documents))] if isinstance(raw, list) else [()]
    items = list(zip(prefixes, documents, strict=True))
    specs: list[DetectorSpec] = []
    problems: list[str] = []
    for prefix, item in items:
        spec, errors = _validate(item)
        for loc, message in errors:
            full = (*prefix, *loc)
            problems.append(format_problem(origin, locate(text, full), full, message))
        if spec is not None:
            specs.append(spec)
    if problems:
        raise ConfigError(problems)
    return specs


def load_detector_specs(directory: Path | str) -> list[DetectorSpec]:
    """Every spec of ``directory/*.yaml`` (and ``*.yml``), in file-name order.

    Raises ConfigError with one ``file:line: field: message`` line per problem across all files,
    including duplicate detector names.
    """
    root = Path(directory)
    if not root.is_dir():
        raise ConfigError([f"{root}: not a directory of detector specs"])
    problems: list[str] = []
    specs: list[DetectorSpec] = []
    seen: dict[str, Path] = {}
    for path in sorted([*root.glob("*.yaml"), *root.glob("*.yml")]):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: cannot read: {exc}")
            continue
        try:
            found = parse_detector_specs(text, origin=path)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        for spec in found:
            if spec.name in seen:
                message = f"duplicate detector name {spec.name!r} (also in {seen[spec.name]})"
                line = _name_line(text, spec.name)
                problems.append(format_problem(path, line, ("name",), message))
            seen.setdefault(spec.name, path)
            specs.append(spec)
    if problems:
        raise ConfigError(problems)
    return specs


def _validate(raw: object) -> tuple[DetectorSpec | None, list[tuple[Loc, str]]]:
    errors: list[tuple[Loc, str]] = []
    if not isinstance(raw, dict):
        return None, [((), f"expected a mapping, got {type(raw).__name__}")]
    algorithm = raw.get("algorithm", "robust_ewma")
    params = raw.get("params", {})
    if isinstance(algorithm, str) and algorithm in ALGORITHMS and isinstance(params, dict):
        try:
            ALGORITHMS[algorithm].model_validate(params)
        except ValidationError as exc:
            errors.extend((("params", *e["loc"]), e["msg"]) for e in exc.errors())
    try:
        return DetectorSpec.model_validate(raw), errors
    except ValidationError as exc:
        for e in exc.errors():
            if e["type"] == "params_invalid" and errors:
                continue  # already reported above, field by field
            errors.append((tuple(e["loc"]), e["msg"]))
    return None, errors


def _name_line(text: str, name: str) -> int | None:
    """Line of the ``name:`` field holding ``name`` (files may hold a list of specs)."""
    raw = yaml.safe_load(text)
    if isinstance(raw, list):
        for i, item in enumerate(raw):
            if isinstance(item, dict) and item.get("name") == name:
                return locate(text, (i, "name"))
    return locate(text, ("name",))
