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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from gatewarden.aggregate import LEVELS, METRICS
from gatewarden.detect.basic import Log
from gatewarden.detect.change import Cusum
from gatewarden.detect.filters import NOfM, Threshold
from gatewarden.detect.params import (
    ALGORITHMS,
    Algorithm,
    AlgorithmParams,
    BinomialLLRParams,
    BurnRateParams,
    CusumSpec,
    HalfSpaceTreesParams,
    MedianMADParams,
    PeerGroupParams,
    PriceIndexParams,
    RobustEWMAParams,
    SeasonalEWMAParams,
    ShareSurgeParams,
    StaticParams,
)
from gatewarden.detect.sessions import SESSION_LABELS, SESSION_METRICS
from gatewarden.detect.yaml_lines import Loc, format_problem, locate, parse_yaml
from gatewarden.errors import ConfigError
from gatewarden.models import ALERT_KINDS, Severity
from gatewarden.protocols import Detector, Filter

__all__ = [
    "ALGORITHMS",
    "DETECT_LEVELS",
    "Algorithm",
    "AlgorithmParams",
    "BinomialLLRParams",
    "BurnRateParams",
    "CusumSpec",
    "DetectorSpec",
    "FilterSpec",
    "HalfSpaceTreesParams",
    "MedianMADParams",
    "NOfMSpec",
    "PeerGroupParams",
    "PriceIndexParams",
    "RobustEWMAParams",
    "RollupSpec",
    "SeasonalEWMAParams",
    "ShareSurgeParams",
    "StaticParams",
    "level_metrics",
    "load_detector_specs",
    "parse_detector_specs",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


#: Levels a spec may name: the aggregation levels plus ``session`` (agent sessions, whose
#: features :class:`~gatewarden.detect.sessions.SessionFeatures` computes in the detect stage).
DETECT_LEVELS: dict[str, tuple[str, ...]] = {**LEVELS, "session": SESSION_LABELS}


def level_metrics(level: str) -> tuple[str, ...]:
    """The metric columns of ``level``'s frame."""
    return SESSION_METRICS if level == "session" else METRICS


class NOfMSpec(_Frozen):
    n: int = Field(ge=1)
    m: int = Field(ge=1, le=64)

    @model_validator(mode="after")
    def _n_le_m(self) -> NOfMSpec:
        if self.n > self.m:
            raise ValueError("n must not exceed m")
        return self


class RollupSpec(_Frozen):
    """Also alert on the parent scope when this many of its series fire in one tick."""

    min_series: int = Field(default=2, ge=2)


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
    transform: Literal["none", "log"] = Field(
        default="none", description="log: score multiplicative changes (latency, cost)"
    )
    cusum: CusumSpec | None = Field(
        default=None, description="accumulate scores over ticks (subtle shifts, blip-proof)"
    )
    rollup: RollupSpec | None = Field(
        default=None, description="several children firing at once alert on their parent"
    )
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
        if value not in DETECT_LEVELS:
            known = ", ".join(DETECT_LEVELS)
            raise ValueError(f"unknown level {value!r}; expected one of {known}")
        return value

    @model_validator(mode="after")
    def _columns_exist(self) -> DetectorSpec:
        metrics = level_metrics(self.level)
        for field in ("metric", "volume"):
            value = getattr(self, field)
            if value not in metrics:
                raise PydanticCustomError(
                    "unknown_metric",
                    "{field}: unknown metric '{value}' for level {level}; expected one of {known}",
                    {
                        "field": field,
                        "value": value,
                        "level": self.level,
                        "known": ", ".join(metrics),
                    },
                )
        return self

    @model_validator(mode="after")
    def _rollup_has_a_parent(self) -> DetectorSpec:
        if self.rollup is not None and len(DETECT_LEVELS[self.level]) < 2:
            raise ValueError(f"rollup needs a level with a parent; {self.level} has none")
        return self

    @model_validator(mode="after")
    def _params_fit_algorithm(self) -> DetectorSpec:
        # The loader validates params itself first to report per-field locations; this guard
        # keeps specs built in code just as safe.
        try:
            params = ALGORITHMS[self.algorithm].model_validate(self.params)
        except ValidationError as exc:
            raise PydanticCustomError(
                "params_invalid",
                "params do not fit algorithm {algorithm}: {detail}",
                {"algorithm": self.algorithm, "detail": str(exc)},
            ) from exc
        columns = (*DETECT_LEVELS[self.level], *level_metrics(self.level))
        missing = [name for name in params.inputs() if name not in columns]
        if missing:
            raise PydanticCustomError(
                "params_invalid",
                "algorithm {algorithm} needs column(s) {missing} that level {level} lacks",
                {"algorithm": self.algorithm, "missing": ", ".join(missing), "level": self.level},
            )
        return self

    def algorithm_params(self) -> AlgorithmParams:
        return ALGORITHMS[self.algorithm].model_validate(self.params)

    def build_detector(self) -> Detector:
        detector = self.algorithm_params().build(self.filter.min_volume)
        if self.transform == "log":
            detector = Log(detector)
        if self.cusum is not None:
            detector = Cusum(detector, **self.cusum.model_dump())
        return detector

    def build_filter(self) -> Filter:
        return self.filter.build()


def parse_detector_specs(text: str, *, origin: Path | str = "<text>") -> list[DetectorSpec]:
    """Specs of one YAML document; raises ConfigError listing every problem found."""
    raw = parse_yaml(text, origin=origin)
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
            loc: Loc = tuple(e["loc"])
            if e["type"] == "unknown_metric":
                field = str(e.get("ctx", {}).get("field", ""))
                loc = (field,)  # a model-level check, but the problem is in this field
                message = e["msg"].removeprefix(f"{field}: ")
                errors.append((loc, message))
                continue
            errors.append((loc, e["msg"]))
    return None, errors


def _name_line(text: str, name: str) -> int | None:
    """Line of the ``name:`` field holding ``name`` (files may hold a list of specs)."""
    raw = parse_yaml(text)  # parsed once already: cannot fail here
    if isinstance(raw, list):
        for i, item in enumerate(raw):
            if isinstance(item, dict) and item.get("name") == name:
                return locate(text, (i, "name"))
    return locate(text, ("name",))
