"""Routing plans and the shared planner, through the in-memory gateway (same code as LiteLLM)."""

from __future__ import annotations

import pytest

from gatewarden.errors import GatewayRejected
from gatewarden.gateways.memory import InMemoryGateway
from gatewarden.gateways.routing import (
    DeploymentView,
    plan_failover,
    plan_group_failover,
    restorable_orders,
)
from gatewarden.models import GatewayAction


def act(type_: str, **params: object) -> GatewayAction:
    return GatewayAction(type=type_, params=params)


def gateway() -> InMemoryGateway:
    return InMemoryGateway.build(
        keys={"k": {"rpm_limit": 100}},
        deployments=[
            {"id": "oa-4o", "model_name": "gpt-4o", "model": "openai/gpt-4o", "order": 1},
            {"id": "az-4o", "model_name": "gpt-4o", "model": "azure/gpt-4o", "order": 2},
            {"id": "oa-mini", "model_name": "mini", "model": "openai/gpt-4o-mini", "order": 1},
            {"id": "az-mini", "model_name": "mini", "model": "azure/gpt-4o-mini", "order": 2},
            {"id": "an", "model_name": "claude", "model": "anthropic/claude", "rpm": 600},
        ],
    )


def test_failover_of_one_model_leaves_the_providers_other_models_alone() -> None:
    gw = gateway()
    plan = gw.plan(act("failover_provider", provider="openai", model="gpt-4o"))
    assert plan.preview == "will move model group gpt-4o from openai/gpt-4o to azure/gpt-4o"
    assert plan.action.params == {"provider": "openai", "model": "gpt-4o", "orders": {"oa-4o": 3}}
    assert plan.inverse == act("set_deployment_orders", orders={"oa-4o": 1})
    gw.apply(plan.action, key="k")
    assert gw.orders() == {"oa-4o": 3, "az-4o": 2, "oa-mini": 1, "az-mini": 2, "an": None}
    # The model may be given with its provider prefix; "" means every model of the provider.
    fresh = gateway()
    prefixed = fresh.plan(act("failover_provider", provider="openai", model="openai/gpt-4o"))
    assert prefixed.action.params["orders"] == {"oa-4o": 3}
    everything = fresh.plan(act("failover_provider", provider="openai", model=""))
    assert everything.action.params["orders"] == {"oa-4o": 3, "oa-mini": 3}
    with pytest.raises(GatewayRejected, match="no model group has openai/gpt-5 first"):
        fresh.plan(act("failover_provider", provider="openai", model="gpt-5"))


def test_group_failover_moves_the_group_off_its_primary() -> None:
    gw = gateway()
    plan = gw.plan(act("failover_model_group", model_group="gpt-4o"))
    assert plan.preview == "will move model group gpt-4o from oa-4o to az-4o"
    assert plan.action.params == {"model_group": "gpt-4o", "orders": {"oa-4o": 3}}
    gw.apply(plan.action, key="k")
    # Once moved, the group's primary is azure: a second failover would move it back behind.
    again = gw.plan(act("failover_model_group", model_group="gpt-4o"))
    assert again.action.params["orders"] == {"az-4o": 4}
    with pytest.raises(GatewayRejected, match="claude has no other deployment"):
        gw.plan(act("failover_model_group", model_group="claude"))
    # An unplanned group failover (no orders) is planned at apply time.
    fresh = gateway()
    fresh.apply(act("failover_model_group", model_group="mini"), key="k2")
    assert fresh.orders()["oa-mini"] == 3


def test_deployment_limits_and_their_inverse() -> None:
    gw = gateway()
    plan = gw.plan(act("set_deployment_limits", deployment_id="an", rpm=60, tpm=1000))
    assert plan.inverse == act("set_deployment_limits", deployment_id="an", rpm=600, tpm=None)
    gw.apply(plan.action, key="k")
    assert (gw.deployments["an"].rpm, gw.deployments["an"].tpm) == (60, 1000)
    assert plan.inverse is not None
    gw.apply(plan.inverse, key="undo")
    assert (gw.deployments["an"].rpm, gw.deployments["an"].tpm) == (600, None)
    with pytest.raises(GatewayRejected, match="unknown deployment"):
        gw.plan(act("set_deployment_limits", deployment_id="nope", rpm=1))


@pytest.mark.parametrize(
    "action",
    [
        act("block_key", key="k"),
        act("update_key_limits", key="k", rpm_limit=5),
        act("set_deployment_order", deployment_id="az-4o", order=0),
        act("set_deployment_limits", deployment_id="an", rpm=1),
        act("set_fallbacks", model="gpt-4o", fallback_models=["claude"]),
    ],
)
def test_satisfied_is_true_exactly_after_the_change(action: GatewayAction) -> None:
    gw = gateway()
    assert not gw.satisfied(action)
    gw.apply(gw.plan(action).action, key="k")
    assert gw.satisfied(action)


def test_satisfied_for_failover_needs_its_planned_orders() -> None:
    gw = gateway()
    plan = gw.plan(act("failover_provider", provider="openai"))
    assert not gw.satisfied(act("failover_provider", provider="openai"))  # nothing concrete
    assert not gw.satisfied(plan.action)
    gw.apply(plan.action, key="k")
    assert gw.satisfied(plan.action)
    assert gw.satisfied(act("delete_fallbacks", model="gpt-4o"))  # it had none


def test_restorable_orders_keep_the_routing_effect_of_missing_orders() -> None:
    views = [
        DeploymentView("a", "g", "openai", 2),
        DeploymentView("b", "g", "azure", 1),
        DeploymentView("c", "h", "openai", 2),
        DeploymentView("d", "h", "azure", 1),
    ]
    # g: nobody had an order before -> all share traffic again with order 1.
    # h: c had none while d had one -> c ranks behind d.
    assert restorable_orders({"a": None, "b": None, "c": None}, views) == {"a": 1, "b": 1, "c": 2}
    assert plan_failover(views, "anthropic") is None
    assert plan_group_failover(views, "nope") is None
