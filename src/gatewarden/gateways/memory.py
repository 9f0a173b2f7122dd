"""InMemoryGateway: a real in-process GatewayAdmin over a dict state.

It implements the same actions as the LiteLLM adapter (planning is shared:
:mod:`gatewarden.gateways.planner`), records every applied call, honours the idempotency key
(a repeated key returns the first outcome without touching the state again), and can be told to
fail transiently or permanently. Engine tests and ``playbook test`` run against it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gatewarden.errors import GatewayRejected, GatewayUnavailable
from gatewarden.gateways import planner
from gatewarden.gateways.actions import (
    DeploymentLimitsParams,
    DeploymentOrderParams,
    DeploymentOrdersParams,
    FailoverParams,
    FallbacksParams,
    GroupFailoverParams,
    KeyLimitsParams,
    KeyParams,
    KeysLimitsParams,
    ModelParams,
    TeamLimitsParams,
    WorkflowThrottleParams,
    describe,
    parse_params,
)
from gatewarden.gateways.routing import DeploymentView, provider_of, served_model
from gatewarden.models import ActionOutcome, ActionPlan, GatewayAction

Phase = Literal["plan", "apply", "both"]


@dataclass
class KeyState:
    blocked: bool = False
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_budget: float | None = None
    team_id: str | None = None


@dataclass
class TeamState:
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_budget: float | None = None


@dataclass
class DeploymentState:
    id: str
    model_name: str
    model: str
    order: int | None = None
    rpm: int | None = None
    tpm: int | None = None

    @property
    def provider(self) -> str:
        return provider_of(self.model)

    def view(self) -> DeploymentView:
        return DeploymentView(
            self.id,
            self.model_name,
            self.provider,
            self.order,
            served_model(self.model),
            self.rpm,
            self.tpm,
        )


@dataclass(frozen=True)
class AppliedCall:
    action: GatewayAction
    key: str


@dataclass
class _Failure:
    remaining: int
    permanent: bool
    phase: Phase
    types: frozenset[str] | None = None


@dataclass
class InMemoryGateway:
    """``keys`` maps key -> limits, ``deployments`` is a LiteLLM-like model list
    (``id``, ``model_name``, ``model`` as ``provider/model``, ``order``)."""

    keys: dict[str, KeyState] = field(default_factory=dict)
    deployments: dict[str, DeploymentState] = field(default_factory=dict)
    fallbacks: dict[str, list[str]] = field(default_factory=dict)
    teams: dict[str, TeamState] = field(default_factory=dict)
    name: str = "memory"
    #: every call that changed (or re-set) the state, in order
    calls: list[AppliedCall] = field(default_factory=list)
    #: apply() calls answered from the idempotency cache
    replays: list[AppliedCall] = field(default_factory=list)
    _outcomes: dict[str, ActionOutcome] = field(default_factory=dict)
    _failures: list[_Failure] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @classmethod
    def build(
        cls,
        *,
        keys: Iterable[str] | Mapping[str, Mapping[str, Any]] = (),
        deployments: Iterable[Mapping[str, Any]] = (),
        fallbacks: Mapping[str, list[str]] | None = None,
        teams: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> InMemoryGateway:
        key_states = (
            {k: KeyState(**dict(v)) for k, v in keys.items()}
            if isinstance(keys, Mapping)
            else {k: KeyState() for k in keys}
        )
        deps = {str(d["id"]): DeploymentState(**dict(d)) for d in deployments}
        team_states = {t: TeamState(**dict(v or {})) for t, v in (teams or {}).items()}
        return cls(
            keys=key_states,
            deployments=deps,
            fallbacks=dict(fallbacks or {}),
            teams=team_states,
        )

    # -- failure switches --------------------------------------------------------------------

    def fail_next(
        self,
        times: int = 1,
        *,
        permanent: bool = False,
        phase: Phase = "apply",
        types: Iterable[str] | None = None,
    ) -> None:
        """Make the next ``times`` calls (of ``phase``, optionally only for ``types``) fail:
        GatewayUnavailable, or GatewayRejected when ``permanent``."""
        with self._lock:
            self._failures.append(
                _Failure(times, permanent, phase, None if types is None else frozenset(types))
            )

    def _maybe_fail(self, phase: Phase, action: GatewayAction) -> None:
        with self._lock:
            for failure in self._failures:
                if failure.remaining <= 0 or failure.phase not in (phase, "both"):
                    continue
                if failure.types is not None and action.type not in failure.types:
                    continue
                failure.remaining -= 1
                if failure.permanent:
                    raise GatewayRejected(f"{self.name}: {action.type} rejected", status=400)
                raise GatewayUnavailable(f"{self.name}: {action.type} unavailable", status=503)

    # -- reads -------------------------------------------------------------------------------

    def _key(self, key: str) -> KeyState:
        state = self.keys.get(key)
        if state is None:
            raise GatewayRejected(f"{self.name}: unknown key {key!r}", status=404)
        return state

    def orders(self) -> dict[str, int | None]:
        with self._lock:
            return {d.id: d.order for d in self.deployments.values()}

    def applied(self, action_type: str | None = None) -> list[GatewayAction]:
        with self._lock:
            return [c.action for c in self.calls if action_type in (None, c.action.type)]

    # -- GatewayAdmin ------------------------------------------------------------------------

    def plan(self, action: GatewayAction) -> ActionPlan:
        with self._lock:
            self._maybe_fail("plan", action)
            return planner.plan_action(action, _Reader(self))

    def satisfied(self, action: GatewayAction) -> bool:
        with self._lock:
            return planner.satisfied(action, _Reader(self))

    def apply(self, action: GatewayAction, *, key: str) -> ActionOutcome:
        with self._lock:
            if key in self._outcomes:
                self.replays.append(AppliedCall(action, key))
                return self._outcomes[key]
            self._maybe_fail("apply", action)
            response = self._apply(action)
            outcome = ActionOutcome(ok=True, status=200, detail=describe(action), response=response)
            self.calls.append(AppliedCall(action, key))
            self._outcomes[key] = outcome
            return outcome

    def _apply(self, action: GatewayAction) -> dict[str, Any]:
        action = planner.concrete(action, _Reader(self))
        params = parse_params(action)
        action_type = action.type
        if isinstance(params, KeyParams):
            self._key(params.key).blocked = action_type == "block_key"
            return {}
        if isinstance(params, KeyLimitsParams):
            state = self._key(params.key)
            for name, value in params.limits().items():
                setattr(state, name, value)
            return {}
        if isinstance(params, KeysLimitsParams | WorkflowThrottleParams):
            changes = planner.keys_limits(action)
            for key in changes:
                self._key(key)  # all known before any changes: all or nothing
            for key, fields in changes.items():
                for name, value in fields.items():
                    setattr(self.keys[key], name, value)
            return {"updated": sorted(changes)}
        if isinstance(params, TeamLimitsParams):
            team = self.teams.get(params.team)
            if team is None:
                raise GatewayRejected(f"{self.name}: unknown team {params.team!r}", status=404)
            for name, value in params.limits().items():
                setattr(team, name, value)
            return {}
        if isinstance(params, DeploymentOrderParams):
            return self._set_orders({params.deployment_id: params.order})
        if isinstance(params, DeploymentOrdersParams | FailoverParams | GroupFailoverParams):
            return self._set_orders(params.orders or {})
        if isinstance(params, DeploymentLimitsParams):
            if params.deployment_id not in self.deployments:
                raise GatewayRejected(f"unknown deployment: {params.deployment_id}", status=404)
            for name, value in params.limits().items():
                setattr(self.deployments[params.deployment_id], name, value)
            return {}
        if isinstance(params, FallbacksParams):
            if params.model in params.fallback_models:
                raise GatewayRejected(f"{params.model} cannot be its own fallback", status=400)
            self.fallbacks[params.model] = list(params.fallback_models)
            return {}
        if isinstance(params, ModelParams):
            self.fallbacks.pop(params.model, None)
            return {}
        raise GatewayRejected(f"action {action_type} is not supported by {self.name}")

    def _set_orders(self, orders: Mapping[str, int | None]) -> dict[str, Any]:
        unknown = sorted(set(orders) - set(self.deployments))
        if unknown:
            raise GatewayRejected(f"unknown deployment(s): {', '.join(unknown)}", status=404)
        for dep_id, order in orders.items():
            self.deployments[dep_id].order = order
        return {"updated": sorted(orders)}


class _Reader:
    """The planner's view of an InMemoryGateway (its fields already use the reader's names)."""

    def __init__(self, gateway: InMemoryGateway) -> None:
        self._gw = gateway

    def key(self, key: str) -> Mapping[str, Any]:
        state = self._gw.keys.get(key)
        if state is None:
            raise GatewayRejected(f"{self._gw.name}: unknown key {key!r}", status=404)
        return vars(state)

    def team(self, team: str) -> Mapping[str, Any]:
        state = self._gw.teams.get(team)
        if state is None:
            raise GatewayRejected(f"{self._gw.name}: unknown team {team!r}", status=404)
        return vars(state)

    def deployments(self) -> list[DeploymentView]:
        return [d.view() for d in self._gw.deployments.values()]

    def fallbacks(self, model: str) -> list[str]:
        return list(self._gw.fallbacks.get(model) or [])
