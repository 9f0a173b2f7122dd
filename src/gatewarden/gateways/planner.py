"""One planner for every LiteLLM-shaped adapter: the admin API, the config file, the in-memory
gateway. Each adapter only says how to *read* its state (:class:`StateReader`); what an action
changes, its inverse and its preview are computed here, so the adapters cannot drift apart.

:func:`satisfied` answers "is the gateway already in the state this action sets?". The engine
asks it before re-applying an action whose outcome was lost (a crash or a timeout after the
call left), so a resumed run does not repeat a call that already took effect.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from gatewarden.errors import GatewayRejected
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
from gatewarden.gateways.routing import (
    DeploymentView,
    plan_failover,
    plan_group_failover,
)
from gatewarden.models import ActionPlan, GatewayAction


class StateReader(Protocol):
    """Read access to a LiteLLM-shaped gateway. Each method may raise GatewayError."""

    def key(self, key: str) -> Mapping[str, Any]:
        """``blocked``, ``rpm_limit``, ``tpm_limit``, ``max_budget`` of a virtual key."""
        ...

    def team(self, team: str) -> Mapping[str, Any]:
        """``rpm_limit``, ``tpm_limit``, ``max_budget`` of a team (by alias or id)."""
        ...

    def deployments(self) -> list[DeploymentView]: ...

    def fallbacks(self, model: str) -> list[str]:
        """The model group's general fallbacks; [] when it has none."""
        ...


def _keys_limits(
    params: KeysLimitsParams | WorkflowThrottleParams,
) -> dict[str, dict[str, Any]]:
    """key -> the limits to set on it."""
    if isinstance(params, KeysLimitsParams):
        return {k: dict(v) for k, v in params.limits.items()}
    if params.keys is None:
        raise GatewayRejected(
            f"throttle_workflow {params.workflow}: no keys (the engine fills them in from "
            "the workflow's recent traffic before planning)"
        )
    return {k: params.limits() for k in params.keys}


def keys_limits(action: GatewayAction) -> dict[str, dict[str, Any]]:
    """key -> limits of a ``set_keys_limits`` or (concrete) ``throttle_workflow`` action."""
    params = parse_params(action)
    if not isinstance(params, KeysLimitsParams | WorkflowThrottleParams):
        raise GatewayRejected(f"{action.type} does not set key limits")
    return _keys_limits(params)


def _by_id(reader: StateReader, wanted: Mapping[str, object]) -> dict[str, DeploymentView]:
    views = {v.id: v for v in reader.deployments()}
    unknown = sorted(set(wanted) - set(views))
    if unknown:
        raise GatewayRejected(f"unknown deployment(s): {', '.join(unknown)}", status=404)
    return views


def concrete(action: GatewayAction, reader: StateReader) -> GatewayAction:
    """``action`` with everything its apply needs filled in (a failover's concrete orders)."""
    params = parse_params(action)
    if isinstance(params, FailoverParams | GroupFailoverParams) and params.orders is None:
        return plan_action(action, reader).action
    return action


def plan_action(action: GatewayAction, reader: StateReader) -> ActionPlan:
    """The action made concrete, its inverse from the current state, and a preview."""
    params = parse_params(action)
    preview = f"will {describe(action)}"
    inverse: GatewayAction | None
    if isinstance(params, KeyParams):
        blocked = bool(reader.key(params.key).get("blocked"))
        wants_blocked = action.type == "block_key"
        if blocked == wants_blocked:
            state = "blocked" if blocked else "not blocked"
            return ActionPlan(action=action, inverse=None, preview=f"key is already {state}")
        undo = "unblock_key" if wants_blocked else "block_key"
        inverse = GatewayAction(type=undo, params={"key": params.key})
        return ActionPlan(action=action, inverse=inverse, preview=preview)
    if isinstance(params, KeyLimitsParams):
        info = reader.key(params.key)
        before = {f: info.get(f) for f in params.limits()}
        inverse = GatewayAction(type="update_key_limits", params={"key": params.key, **before})
        return ActionPlan(action=action, inverse=inverse, preview=preview)
    if isinstance(params, KeysLimitsParams | WorkflowThrottleParams):
        wanted_limits = _keys_limits(params)
        previous = {
            k: {f: reader.key(k).get(f) for f in fields} for k, fields in wanted_limits.items()
        }
        inverse = GatewayAction(type="set_keys_limits", params={"limits": previous})
        return ActionPlan(action=action, inverse=inverse, preview=preview)
    if isinstance(params, TeamLimitsParams):
        team = reader.team(params.team)
        before = {f: team.get(f) for f in params.limits()}
        inverse = GatewayAction(type="update_team_limits", params={"team": params.team, **before})
        return ActionPlan(action=action, inverse=inverse, preview=preview)
    if isinstance(params, DeploymentOrderParams | DeploymentOrdersParams):
        wanted = (
            {params.deployment_id: params.order}
            if isinstance(params, DeploymentOrderParams)
            else params.orders
        )
        views = _by_id(reader, wanted)
        old = {i: views[i].order for i in wanted}
        inverse = GatewayAction(type="set_deployment_orders", params={"orders": old})
        return ActionPlan(action=action, inverse=inverse, preview=preview)
    if isinstance(params, DeploymentLimitsParams):
        views = _by_id(reader, {params.deployment_id: None})
        dep = views[params.deployment_id]
        before = {f: getattr(dep, f) for f in params.limits()}
        inverse = GatewayAction(
            type="set_deployment_limits", params={"deployment_id": dep.id, **before}
        )
        return ActionPlan(action=action, inverse=inverse, preview=preview)
    if isinstance(params, FailoverParams):
        plan = plan_failover(reader.deployments(), params.provider, params.model)
        if plan is None:
            what = f"{params.provider}/{params.model}" if params.model else params.provider
            raise GatewayRejected(f"no model group has {what} first and another deployment to use")
        return ActionPlan(action=plan.action(), inverse=plan.inverse(), preview=plan.preview())
    if isinstance(params, GroupFailoverParams):
        group_plan = plan_group_failover(reader.deployments(), params.model_group)
        if group_plan is None:
            raise GatewayRejected(
                f"model group {params.model_group} has no other deployment to fail over to"
            )
        return ActionPlan(
            action=group_plan.action(), inverse=group_plan.inverse(), preview=group_plan.preview()
        )
    if isinstance(params, FallbacksParams | ModelParams):
        before_fb = reader.fallbacks(params.model)
        if before_fb:
            inverse = GatewayAction(
                type="set_fallbacks", params={"model": params.model, "fallback_models": before_fb}
            )
        elif isinstance(params, FallbacksParams):
            inverse = GatewayAction(type="delete_fallbacks", params={"model": params.model})
        else:
            inverse = None
        return ActionPlan(action=action, inverse=inverse, preview=preview)
    raise GatewayRejected(f"action {action.type} is not supported by this gateway")


def satisfied(action: GatewayAction, reader: StateReader) -> bool:
    """True when the gateway already is in the state ``action`` sets. An action whose target
    is only computed at plan time (an unplanned failover, an http request) is never satisfied."""
    params = parse_params(action)
    if isinstance(params, KeyParams):
        return bool(reader.key(params.key).get("blocked")) == (action.type == "block_key")
    if isinstance(params, KeyLimitsParams):
        info = reader.key(params.key)
        return all(info.get(f) == v for f, v in params.limits().items())
    if isinstance(params, KeysLimitsParams | WorkflowThrottleParams):
        if isinstance(params, WorkflowThrottleParams) and params.keys is None:
            return False
        return all(
            all(reader.key(k).get(f) == v for f, v in fields.items())
            for k, fields in _keys_limits(params).items()
        )
    if isinstance(params, TeamLimitsParams):
        team = reader.team(params.team)
        return all(team.get(f) == v for f, v in params.limits().items())
    if isinstance(params, DeploymentOrderParams):
        orders: Mapping[str, int | None] | None = {params.deployment_id: params.order}
    elif isinstance(params, DeploymentOrdersParams | FailoverParams | GroupFailoverParams):
        orders = params.orders
    else:
        orders = None
    if orders is not None:
        views = {v.id: v for v in reader.deployments()}
        return all(i in views and views[i].order == o for i, o in orders.items())
    if isinstance(params, DeploymentLimitsParams):
        views = {v.id: v for v in reader.deployments()}
        dep = views.get(params.deployment_id)
        return dep is not None and all(getattr(dep, f) == v for f, v in params.limits().items())
    if isinstance(params, FallbacksParams):
        return reader.fallbacks(params.model) == list(params.fallback_models)
    if isinstance(params, ModelParams):
        return not reader.fallbacks(params.model)
    return False
