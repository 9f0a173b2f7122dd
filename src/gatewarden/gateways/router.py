"""GatewayRouter: one GatewayAdmin made of several adapters, chosen by action type.

A playbook picks its adapter through the action it names: ``http`` goes to the generic HTTP
adapter, everything else to the gateway's own adapter (the LiteLLM admin API or its config file)
unless a route says otherwise. The engine sees one gateway, so its idempotency, retries and
rollback work the same for every adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from gatewarden.models import ActionOutcome, ActionPlan, GatewayAction
from gatewarden.protocols import GatewayAdmin


@runtime_checkable
class Reconciling(Protocol):
    """An adapter that can tell whether an action's effect is already in place."""

    def satisfied(self, action: GatewayAction) -> bool: ...


class GatewayRouter:
    """Dispatches ``plan``/``apply``/``satisfied`` to ``routes[action.type]`` or ``default``."""

    def __init__(
        self, default: GatewayAdmin, routes: Mapping[str, GatewayAdmin] | None = None
    ) -> None:
        self.default = default
        self.routes = dict(routes or {})
        names = [default.name, *(g.name for g in self.routes.values())]
        self.name = "+".join(dict.fromkeys(names))

    def __repr__(self) -> str:
        routes = {t: g.name for t, g in self.routes.items()}
        return f"GatewayRouter(default={self.default.name!r}, routes={routes})"

    def adapter_for(self, action_type: str) -> GatewayAdmin:
        return self.routes.get(action_type, self.default)

    def plan(self, action: GatewayAction) -> ActionPlan:
        return self.adapter_for(action.type).plan(action)

    def apply(self, action: GatewayAction, *, key: str) -> ActionOutcome:
        return self.adapter_for(action.type).apply(action, key=key)

    def satisfied(self, action: GatewayAction) -> bool:
        adapter = self.adapter_for(action.type)
        return isinstance(adapter, Reconciling) and adapter.satisfied(action)


def with_http(default: GatewayAdmin, http: GatewayAdmin | None) -> GatewayAdmin:
    """``default`` alone, or routed together with an HTTP adapter for ``http`` actions."""
    if http is None:
        return default
    return GatewayRouter(default, {"http": http})


__all__ = ["GatewayRouter", "Reconciling", "with_http"]
