"""Scenarios: seed, time window, traffic level and faults to inject; loadable from YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gatewarden.errors import ConfigError
from gatewarden.simulator.catalog import Catalog, default_catalog
from gatewarden.simulator.faults import Fault, ProviderOutage, resolve
from gatewarden.simulator.trace_shape import TraceArrivals

#: 2025-06-03T08:00:00Z: a fixed default so two runs of the same scenario match byte for byte.
DEFAULT_START = 1_748_937_600.0


class Scenario(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "custom"
    seed: int = Field(default=7, ge=0)
    start: float = Field(default=DEFAULT_START, ge=0, description="epoch seconds")
    duration_s: float = Field(default=7200.0, gt=0)
    base_rps: float = Field(default=8.0, gt=0, description="mean LLM calls per second")
    diurnal_amplitude: float = Field(default=0.3, ge=0, lt=1)
    peak_hour_utc: float = Field(default=15.0, ge=0, lt=24)
    burstiness: float = Field(default=0.25, ge=0, le=2, description="sigma of per-minute factor")
    trace: TraceArrivals | None = Field(
        default=None,
        description="take arrival intensity (instead of the per-minute factor) and token sizes "
        "from a real serving trace, looped from the scenario start",
    )
    master_key: str = Field(default="sk-sim-master-1234", min_length=1)
    faults: list[Fault] = Field(default_factory=list)
    catalog: Catalog | None = None

    @model_validator(mode="after")
    def _faults_fit_catalog(self) -> Scenario:
        catalog = self.effective_catalog()
        problems: list[str] = []
        for i, fault in enumerate(self.faults):
            try:
                resolve(fault, uid=i, origin=self.start, catalog=catalog, seed=self.seed)
            except ValueError as exc:
                problems.append(f"faults[{i}] ({fault.type}): {exc}")
        if self.trace is not None and not self.trace.path.is_file():
            problems.append(f"trace.path: no such file: {self.trace.path}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def end(self) -> float:
        return self.start + self.duration_s

    def effective_catalog(self) -> Catalog:
        return self.catalog if self.catalog is not None else default_catalog()

    def labels(self) -> list[dict[str, Any]]:
        """Ground-truth labels of the scenario's own faults (runtime faults are not included)."""
        catalog = self.effective_catalog()
        return [
            resolve(f, uid=i, origin=self.start, catalog=catalog, seed=self.seed).label()
            for i, f in enumerate(self.faults)
        ]

    @classmethod
    def from_yaml(cls, path: Path | str) -> Scenario:
        """Load a scenario; raises ConfigError with ``file: field: problem`` lines."""
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError([f"{path}: {exc}"]) from exc
        if not isinstance(raw, dict):
            raise ConfigError([f"{path}: expected a mapping at the top level"])
        trace = raw.get("trace")
        if isinstance(trace, dict) and isinstance(trace.get("path"), str):
            # Relative to the scenario file, like every path in gatewarden's config files.
            raw["trace"] = {**trace, "path": str(path.parent / trace["path"])}
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(
                [
                    f"{path}: {'.'.join(str(p) for p in err['loc']) or 'scenario'}: {err['msg']}"
                    for err in exc.errors()
                ]
            ) from exc


def default_demo_scenario() -> Scenario:
    """90 minutes at ~8 rps; OpenAI fails half its calls from minute 40 to minute 65.

    The outage shows up as openai 5xx/429 records plus fallback records on claude-sonnet and
    claude-haiku; raising the openai deployments' ``order`` via ``/model/update`` moves
    gpt-4o and gpt-4o-mini to azure and the openai errors stop.
    """
    return Scenario(
        name="openai-outage",
        seed=7,
        duration_s=90 * 60,
        base_rps=8.0,
        faults=[ProviderOutage(start=40 * 60, duration=25 * 60, provider="openai", error_rate=0.5)],
    )
