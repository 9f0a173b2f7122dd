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


def test_team_and_workflow_throttles_round_trip_and_validate() -> None:
    gw = InMemoryGateway.build(
        keys={"team-a-1": {"rpm_limit": 100}, "team-b-1": {"max_budget": 5.0}},
        teams={"team-a": {"tpm_limit": 9000}},
    )
    team = gw.plan(act("update_team_limits", team="team-a", rpm_limit=60, tpm_limit=100))
    assert team.inverse == act("update_team_limits", team="team-a", rpm_limit=None, tpm_limit=9000)
    gw.apply(team.action, key="t")
    assert vars(gw.teams["team-a"]) == {"rpm_limit": 60, "tpm_limit": 100, "max_budget": None}
    assert team.inverse is not None
    gw.apply(team.inverse, key="t-undo")
    assert vars(gw.teams["team-a"]) == {"rpm_limit": None, "tpm_limit": 9000, "max_budget": None}

    keys = ["team-a-1", "team-b-1"]
    flow = gw.plan(act("throttle_workflow", workflow="wf", max_budget=0, keys=keys))
    gw.apply(flow.action, key="w")
    assert [gw.keys[k].max_budget for k in keys] == [0, 0]
    assert flow.inverse is not None and gw.satisfied(flow.action)
    gw.apply(flow.inverse, key="w-undo")
    assert [gw.keys[k].max_budget for k in keys] == [None, 5.0]
    assert gw.keys["team-a-1"].rpm_limit == 100  # only the limits given were touched

    # An unknown key refuses the whole action: nothing half-applied.
    both = {"team-a-1": {"rpm_limit": 1}, "ghost": {"rpm_limit": 1}}
    with pytest.raises(GatewayRejected, match="unknown key 'ghost'"):
        gw.apply(act("set_keys_limits", limits=both), key="x")
    assert gw.keys["team-a-1"].rpm_limit == 100
    with pytest.raises(GatewayRejected, match="unknown field"):
        gw.plan(act("set_keys_limits", limits={"team-a-1": {"rpm": 1}}))
    with pytest.raises(GatewayRejected, match="no limits"):
        gw.plan(act("set_keys_limits", limits={"team-a-1": {}}))
    with pytest.raises(GatewayRejected, match="exceed max_keys"):
        gw.plan(act("throttle_workflow", workflow="wf", rpm_limit=1, max_keys=1, keys=keys))
    with pytest.raises(GatewayRejected, match="at least one of"):
        gw.plan(act("throttle_workflow", workflow="wf", keys=keys))
    with pytest.raises(GatewayRejected, match="unknown team"):
        gw.plan(act("update_team_limits", team="nope", rpm_limit=1))
