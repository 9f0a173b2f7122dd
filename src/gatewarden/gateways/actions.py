"""The gateway action vocabulary, shared by every GatewayAdmin and by playbook validation.

Each action type has a small parameter model; adapters parse ``GatewayAction.params`` through
:func:`parse_params` so a malformed action is refused the same way everywhere. The failover
computation lives here too, so the LiteLLM adapter and the in-memory gateway plan identically.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gatewarden.errors import GatewayRejected
from gatewarden.models import GatewayAction


class _Params(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KeyParams(_Params):
    key: str = Field(min_length=1)


class KeyLimitsParams(_Params):
    """Only the fields given are changed; ``None`` given explicitly removes a limit."""

    key: str = Field(min_length=1)
    rpm_limit: int | None = Field(default=None, ge=0)
    tpm_limit: int | None = Field(default=None, ge=0)
    max_budget: float | None = Field(default=None, ge=0)

    def limits(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in LIMIT_FIELDS if f in self.model_fields_set}


class DeploymentOrderParams(_Params):
    deployment_id: str = Field(min_length=1)
    order: int | None = Field(ge=0)


class DeploymentOrdersParams(_Params):
    orders: dict[str, int | None] = Field(min_length=1)


class FailoverParams(_Params):
    provider: str = Field(min_length=1)
    #: filled in by ``plan``: the concrete new orders, so a re-apply after a crash is a setter
    orders: dict[str, int | None] | None = None


class FallbacksParams(_Params):
    model: str = Field(min_length=1)
    fallback_models: list[str] = Field(min_length=1)


class ModelParams(_Params):
    model: str = Field(min_length=1)


LIMIT_FIELDS: tuple[str, ...] = ("rpm_limit", "tpm_limit", "max_budget")

#: action type -> parameter model; the playbook loader checks ``action:`` against these keys.
ACTION_PARAMS: dict[str, type[_Params]] = {
    "block_key": KeyParams,
    "unblock_key": KeyParams,
    "update_key_limits": KeyLimitsParams,
    "set_deployment_order": DeploymentOrderParams,
    "set_deployment_orders": DeploymentOrdersParams,
    "failover_provider": FailoverParams,
    "set_fallbacks": FallbacksParams,
    "delete_fallbacks": ModelParams,
}


def parse_params(action: GatewayAction) -> Any:
    """The typed parameters of ``action``; GatewayRejected when the type or params are invalid
    (a malformed action is a permanent refusal: retrying cannot fix it)."""
    model = ACTION_PARAMS.get(action.type)
    if model is None:
        raise GatewayRejected(f"unknown action type {action.type!r}")
    try:
        return model.model_validate(action.params)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(params)'}: {e['msg']}" for e in exc.errors()
        )
        raise GatewayRejected(f"invalid params for {action.type}: {problems}") from exc


def param_names(action_type: str) -> tuple[set[str], set[str]]:
    """(required, allowed) parameter names of an action type, for load-time checks."""
    fields = ACTION_PARAMS[action_type].model_fields
    required = {n for n, f in fields.items() if f.is_required()}
    return required, set(fields)


# -- failover ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeploymentView:
    """What failover needs to know about one deployment."""

    id: str
    model_name: str
    provider: str
    order: int | None


@dataclass(frozen=True)
class FailoverPlan:
    new_orders: dict[str, int | None]
    old_orders: dict[str, int | None]
    groups: list[str]
    from_provider: str
    to_providers: list[str]

    def action(self) -> GatewayAction:
        params = {"provider": self.from_provider, "orders": self.new_orders}
        return GatewayAction(type="failover_provider", params=params)

    def inverse(self) -> GatewayAction:
        return GatewayAction(type="set_deployment_orders", params={"orders": self.old_orders})

    def preview(self) -> str:
        groups = ", ".join(self.groups)
        plural = "model groups" if len(self.groups) > 1 else "model group"
        targets = ", ".join(self.to_providers)
        return f"will move {plural} {groups} from {self.from_provider} to {targets}"


def provider_of(model: str, custom_provider: str | None = None) -> str:
    """LiteLLM's provider of a deployment: ``custom_llm_provider`` or the ``provider/`` prefix."""
    if custom_provider:
        return custom_provider
    return model.split("/", 1)[0] if "/" in model else model


def _first(deps: list[DeploymentView]) -> list[DeploymentView]:
    # LiteLLM routes to the lowest ``order`` present; deployments without an order only take
    # traffic when no deployment in the group has one.
    orders = [d.order for d in deps if d.order is not None]
    if not orders:
        return deps
    return [d for d in deps if d.order == min(orders)]


def plan_failover(deployments: Iterable[DeploymentView], provider: str) -> FailoverPlan | None:
    """New orders that move traffic off ``provider`` in every model group where it is first
    and another provider can take over; None when no group qualifies."""
    groups: dict[str, list[DeploymentView]] = {}
    for dep in deployments:
        groups.setdefault(dep.model_name, []).append(dep)
    new: dict[str, int | None] = {}
    old: dict[str, int | None] = {}
    moved: list[str] = []
    targets: set[str] = set()
    for name in sorted(groups):
        deps = groups[name]
        ours = [d for d in deps if d.provider == provider]
        others = [d for d in deps if d.provider != provider]
        if not others or not any(d in ours for d in _first(deps)):
            continue
        other_orders = [d.order for d in others if d.order is not None]
        changes: dict[str, int | None] = {}
        if not other_orders:
            # Nobody has an order yet: give the others 1 so ours can rank behind them.
            changes.update({d.id: 1 for d in others})
            other_orders = [1]
        behind = max(other_orders) + 1
        changes.update({d.id: behind for d in ours if d.order is None or d.order < behind})
        for dep in deps:
            if dep.id in changes:
                new[dep.id] = changes[dep.id]
                old[dep.id] = dep.order
        moved.append(name)
        after = [
            DeploymentView(d.id, d.model_name, d.provider, changes.get(d.id, d.order)) for d in deps
        ]
        targets.update(d.provider for d in _first(after))
    if not moved:
        return None
    return FailoverPlan(new, old, moved, provider, sorted(targets))


def describe(action: GatewayAction) -> str:
    """A short human sentence for an action, used when a richer preview is not available."""
    p: Mapping[str, Any] = action.params
    match action.type:
        case "block_key":
            return f"block key {p.get('key')}"
        case "unblock_key":
            return f"unblock key {p.get('key')}"
        case "update_key_limits":
            limits = ", ".join(f"{k}={p[k]}" for k in LIMIT_FIELDS if k in p)
            return f"set limits of key {p.get('key')}: {limits}"
        case "set_deployment_order":
            return f"set order of deployment {p.get('deployment_id')} to {p.get('order')}"
        case "set_deployment_orders":
            orders = p.get("orders") or {}
            return "set deployment orders " + ", ".join(f"{k}={v}" for k, v in orders.items())
        case "failover_provider":
            return f"fail over from provider {p.get('provider')}"
        case "set_fallbacks":
            return f"set fallbacks of {p.get('model')} to {', '.join(p.get('fallback_models', []))}"
        case "delete_fallbacks":
            return f"remove fallbacks of {p.get('model')}"
    return action.type
