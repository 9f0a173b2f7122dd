"""Injectable faults, and the ground-truth label each one yields for backtests.

A fault is user-editable (scenario YAML, ``POST /sim/faults``), so it is a pydantic model
discriminated by ``type``. ``start`` is seconds from the scenario start; the label carries
absolute epoch timestamps because that is what detectors and backtests compare against.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from gatewarden.simulator.catalog import Catalog


class _Fault(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    start: float = Field(ge=0, description="seconds from scenario start")
    duration: float = Field(gt=0, description="seconds")


class ProviderOutage(_Fault):
    """A provider (optionally one model of it) returns errors at ``error_rate``."""

    type: Literal["provider_outage"] = "provider_outage"
    provider: str
    model: str | None = None
    error_rate: float = Field(default=0.6, gt=0, le=1)
    #: HTTP status -> relative share among the injected errors
    statuses: dict[int, float] = Field(default_factory=lambda: {500: 0.5, 503: 0.3, 429: 0.2})


class TtftDegradation(_Fault):
    """Time to first token (and so total latency) of a provider/model multiplied by ``factor``."""

    type: Literal["ttft_degradation"] = "ttft_degradation"
    provider: str
    model: str | None = None
    factor: float = Field(default=2.0, gt=0)


class CostSpike(_Fault):
    """Output tokens of a workflow or key grow by ``output_factor``, or a model's price changes
    by ``price_factor`` (a provider repricing, a wrong model alias)."""

    type: Literal["cost_spike"] = "cost_spike"
    workflow: str | None = None
    api_key: str | None = None
    model: str | None = None
    output_factor: float = Field(default=1.0, gt=0)
    price_factor: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _one_target(self) -> CostSpike:
        targets = [t for t in (self.workflow, self.api_key, self.model) if t is not None]
        if len(targets) != 1:
            raise ValueError("cost_spike needs exactly one of workflow, api_key, model")
        if self.model is None and self.output_factor == 1.0:
            raise ValueError("cost_spike on a workflow or key needs output_factor != 1")
        if self.model is not None and self.price_factor == 1.0:
            raise ValueError("cost_spike on a model needs price_factor != 1")
        return self


class AgentLoop(_Fault):
    """One session of an agent workflow repeats the same prompt and tool every few seconds."""

    type: Literal["agent_loop"] = "agent_loop"
    workflow: str
    api_key: str | None = Field(default=None, description="default: the workflow's first key")
    model_group: str | None = Field(default=None, description="default: workflow's first group")
    tool: str | None = Field(default=None, description="default: the workflow's first tool")
    interval_min: float = Field(default=2.0, gt=0)
    interval_max: float = Field(default=5.0, gt=0)
    input_tokens: int = Field(default=6000, ge=0)
    output_tokens: int = Field(default=120, ge=0)

    @model_validator(mode="after")
    def _interval(self) -> AgentLoop:
        if self.interval_max < self.interval_min:
            raise ValueError("interval_max must be >= interval_min")
        return self


class FallbackStorm(_Fault):
    """A model group's primary deployment fails, so its traffic falls back to other groups."""

    type: Literal["fallback_storm"] = "fallback_storm"
    requested_model: str
    error_rate: float = Field(default=0.9, gt=0, le=1)
    statuses: dict[int, float] = Field(default_factory=lambda: {503: 0.6, 500: 0.4})


class KeySurge(_Fault):
    """One key's request rate multiplied by ``factor`` (a runaway batch job, a retry storm)."""

    type: Literal["key_surge"] = "key_surge"
    api_key: str
    factor: float = Field(default=20.0, gt=1)


Fault = Annotated[
    ProviderOutage | TtftDegradation | CostSpike | AgentLoop | FallbackStorm | KeySurge,
    Field(discriminator="type"),
]
FAULT_ADAPTER: TypeAdapter[Fault] = TypeAdapter(Fault)

_KIND = {
    "provider_outage": "error_rate",
    "ttft_degradation": "ttft",
    "cost_spike": "cost",
    "agent_loop": "agent_loop",
    "fallback_storm": "fallback_storm",
    "key_surge": "traffic",
}


@dataclass(frozen=True)
class ActiveFault:
    """A fault bound to a catalog and an absolute time window, with defaults resolved."""

    uid: int
    fault: Fault
    start: float
    end: float
    #: fallback_storm: the failing deployment; agent_loop: unused
    deployment: str | None = None
    #: agent_loop / key_surge: the key alias; agent_loop: group, tool and session
    api_key: str | None = None
    model_group: str | None = None
    tool: str | None = None
    session_id: str | None = None

    def active(self, ts: float) -> bool:
        return self.start <= ts < self.end

    def label(self) -> dict[str, Any]:
        return {
            "kind": _KIND[self.fault.type],
            "start": self.start,
            "end": self.end,
            "scope": self._scope(),
            "fault": self.fault.type,
        }

    def _scope(self) -> dict[str, str]:
        f = self.fault
        if isinstance(f, ProviderOutage | TtftDegradation):
            return {"provider": f.provider} | ({"model": f.model} if f.model else {})
        if isinstance(f, CostSpike):
            if f.workflow:
                return {"workflow": f.workflow}
            if f.api_key:
                return {"api_key": f.api_key}
            return {"model": str(f.model)}
        if isinstance(f, AgentLoop):
            return {
                "api_key": str(self.api_key),
                "workflow": f.workflow,
                "session_id": str(self.session_id),
            }
        if isinstance(f, FallbackStorm):
            return {"requested_model": f.requested_model}
        return {"api_key": f.api_key}


def resolve(fault: Fault, *, uid: int, origin: float, catalog: Catalog, seed: int) -> ActiveFault:
    """Bind ``fault`` to absolute time and the catalog; raises ValueError on unknown names."""
    start = origin + fault.start
    end = start + fault.duration
    keys = {k.alias: k for k in catalog.keys}
    groups = {g.name: g for g in catalog.model_groups}
    served = {(d.provider, d.model) for d in catalog.deployments}
    if isinstance(fault, ProviderOutage | TtftDegradation):
        if fault.provider not in {p.name for p in catalog.providers}:
            raise ValueError(f"unknown provider {fault.provider!r}")
        if fault.model is not None and (fault.provider, fault.model) not in served:
            raise ValueError(f"provider {fault.provider!r} serves no model {fault.model!r}")
        return ActiveFault(uid, fault, start, end)
    if isinstance(fault, CostSpike):
        if fault.model is not None and fault.model not in {m for _, m in served}:
            raise ValueError(f"no deployment serves model {fault.model!r}")
        if fault.api_key is not None and fault.api_key not in keys:
            raise ValueError(f"unknown api_key {fault.api_key!r}")
        if fault.workflow is not None and fault.workflow not in {w.name for w in catalog.workflows}:
            raise ValueError(f"unknown workflow {fault.workflow!r}")
        return ActiveFault(uid, fault, start, end)
    if isinstance(fault, KeySurge):
        if fault.api_key not in keys:
            raise ValueError(f"unknown api_key {fault.api_key!r}")
        return ActiveFault(uid, fault, start, end, api_key=fault.api_key)
    if isinstance(fault, FallbackStorm):
        if fault.requested_model not in groups:
            raise ValueError(f"unknown model group {fault.requested_model!r}")
        # The primary is the lowest-order deployment in the catalog: if remediation later moves
        # the group to another deployment, the storm stops, as it would for real.
        deps = [catalog.deployment(d) for d in groups[fault.requested_model].deployments]
        primary = min(deps, key=lambda d: d.order).id
        return ActiveFault(uid, fault, start, end, deployment=primary)
    try:
        workflow = catalog.workflow(fault.workflow)
    except KeyError:
        raise ValueError(f"unknown workflow {fault.workflow!r}") from None
    key = fault.api_key or next(
        (k.alias for k in catalog.keys if k.workflow == workflow.name), None
    )
    if key is None or key not in keys:
        raise ValueError(f"no api_key for agent_loop on {workflow.name!r}")
    group = fault.model_group or next(iter(workflow.model_groups))
    if group not in groups:
        raise ValueError(f"unknown model group {group!r}")
    tool = fault.tool or (workflow.tools[0] if workflow.tools else "search")
    digest = hashlib.sha256(f"{seed}:{uid}:loop".encode()).hexdigest()[:16]
    return ActiveFault(
        uid,
        fault,
        start,
        end,
        api_key=key,
        model_group=group,
        tool=tool,
        session_id=f"sess-{digest}",
    )
