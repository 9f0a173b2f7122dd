"""InMemoryGateway: same actions as LiteLLM over a dict, idempotent by key, failure switches."""

from __future__ import annotations

import pytest

from gatewarden.errors import GatewayRejected, GatewayUnavailable
from gatewarden.gateways.actions import DeploymentView, plan_failover
from gatewarden.gateways.memory import InMemoryGateway
from gatewarden.models import GatewayAction
from gatewarden.protocols import GatewayAdmin


def gateway() -> InMemoryGateway:
    return InMemoryGateway.build(
        keys={"team-a-1": {"rpm_limit": 100}, "team-b-1": {}},
        deployments=[
            {"id": "oa", "model_name": "gpt-4o", "model": "openai/gpt-4o", "order": 1},
            {"id": "az", "model_name": "gpt-4o", "model": "azure/gpt-4o", "order": 2},
        ],
        fallbacks={"gpt-4o": ["claude"]},
    )


def act(type_: str, **params: object) -> GatewayAction:
    return GatewayAction(type=type_, params=params)


def test_protocol_and_round_trips() -> None:
    gw = gateway()
    assert isinstance(gw, GatewayAdmin)
    for action in [
        act("block_key", key="team-a-1"),
        act("update_key_limits", key="team-a-1", rpm_limit=5, max_budget=1.0),
        act("failover_provider", provider="openai"),
        act("set_fallbacks", model="gpt-4o", fallback_models=["gpt-4o-mini"]),
        act("delete_fallbacks", model="gpt-4o"),
        act("set_deployment_order", deployment_id="az", order=0),
    ]:
        before = (
            {k: vars(v).copy() for k, v in gw.keys.items()},
            gw.orders(),
            {k: list(v) for k, v in gw.fallbacks.items()},
        )
        plan = gw.plan(action)
        gw.apply(plan.action, key=f"do:{action.type}")
        assert plan.inverse is not None, action
        gw.apply(plan.inverse, key=f"undo:{action.type}")
        after = (
            {k: vars(v).copy() for k, v in gw.keys.items()},
            gw.orders(),
            {k: list(v) for k, v in gw.fallbacks.items()},
        )
        assert after == before, action


def test_apply_is_idempotent_by_key() -> None:
    gw = gateway()
    first = gw.apply(act("block_key", key="team-a-1"), key="k")
    gw.keys["team-a-1"].blocked = False  # someone unblocked it meanwhile
    again = gw.apply(act("block_key", key="team-a-1"), key="k")
    assert again == first
    assert not gw.keys["team-a-1"].blocked  # the replay did not touch the state
    assert len(gw.calls) == 1 and len(gw.replays) == 1
    assert gw.applied("block_key") == [act("block_key", key="team-a-1")]


def test_failure_switches() -> None:
    gw = gateway()
    gw.fail_next(2)
    for _ in range(2):
        with pytest.raises(GatewayUnavailable):
            gw.apply(act("block_key", key="team-a-1"), key="k")
    gw.apply(act("block_key", key="team-a-1"), key="k")
    assert gw.keys["team-a-1"].blocked

    gw.fail_next(1, permanent=True, phase="plan", types=["unblock_key"])
    gw.plan(act("block_key", key="team-b-1"))  # other types unaffected
    with pytest.raises(GatewayRejected):
        gw.plan(act("unblock_key", key="team-a-1"))
    gw.plan(act("unblock_key", key="team-a-1"))


def test_unknown_targets_are_rejected() -> None:
    gw = gateway()
    with pytest.raises(GatewayRejected, match="unknown key"):
        gw.plan(act("block_key", key="nope"))
    with pytest.raises(GatewayRejected, match="unknown deployment"):
        gw.apply(act("set_deployment_orders", orders={"nope": 1}), key="k")
    with pytest.raises(GatewayRejected, match="own fallback"):
        gw.apply(act("set_fallbacks", model="a", fallback_models=["a"]), key="k2")
    assert gw.calls == []


def test_plan_failover_rules() -> None:
    deps = [
        DeploymentView("oa", "g", "openai", None),
        DeploymentView("az", "g", "azure", None),
        DeploymentView("solo", "h", "openai", 1),
        DeploymentView("oa2", "i", "openai", 2),
        DeploymentView("az2", "i", "azure", 1),
    ]
    plan = plan_failover(deps, "openai")
    assert plan is not None
    # g: nobody had an order -> others get 1, openai goes behind; h: no alternative;
    # i: openai is not first -> untouched.
    assert plan.groups == ["g"]
    assert plan.new_orders == {"oa": 2, "az": 1}
    assert plan.old_orders == {"oa": None, "az": None}
    assert plan.preview() == "will move model group g from openai to azure"
    azure = plan_failover(deps, "azure")
    assert azure is not None
    assert azure.groups == ["g", "i"]
    assert azure.new_orders == {"oa": 1, "az": 2, "az2": 3}
    assert azure.to_providers == ["openai"]
    assert plan_failover([DeploymentView("x", "h", "openai", 1)], "openai") is None
