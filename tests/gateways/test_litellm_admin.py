"""LiteLLMAdmin request shapes and error classification, against httpx.MockTransport."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gatewarden.errors import GatewayRejected, GatewayUnavailable
from gatewarden.gateways.litellm_admin import LiteLLMAdmin
from gatewarden.models import GatewayAction
from gatewarden.protocols import GatewayAdmin

MASTER = "sk-master-SECRET-1234"
BASE = "http://litellm.test:4000"

MODELS: dict[str, Any] = {
    "data": [
        {
            "model_name": "gpt-4o",
            "litellm_params": {"model": "openai/gpt-4o", "order": 1},
            "model_info": {"id": "oa-4o"},
        },
        {
            "model_name": "gpt-4o",
            "litellm_params": {"model": "azure/gpt-4o", "order": 2},
            "model_info": {"id": "az-4o"},
        },
        {
            "model_name": "gpt-4o-mini",
            "litellm_params": {"model": "openai/gpt-4o-mini"},
            "model_info": {"id": "oa-mini"},
        },
        {
            "model_name": "gpt-4o-mini",
            "litellm_params": {"model": "azure/gpt-4o-mini"},
            "model_info": {"id": "az-mini"},
        },
        {
            "model_name": "claude",
            "litellm_params": {"model": "anthropic/claude-sonnet", "order": 1},
            "model_info": {"id": "an-son"},
        },
    ]
}

KEY_INFO: dict[str, Any] = {
    "key": "sk-team-a",
    "info": {
        "key_alias": "team-a-1",
        "team_id": "team-a",
        "blocked": False,
        "rpm_limit": 100,
        "tpm_limit": None,
        "max_budget": 50.0,
    },
}


class Recorder:
    """A fake LiteLLM: answers from a route table and records every request."""

    def __init__(self, routes: dict[tuple[str, str], Any] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.routes: dict[tuple[str, str], Any] = {
            ("GET", "/model/info"): MODELS,
            ("GET", "/key/info"): KEY_INFO,
            ("GET", "/fallback/gpt-4o"): (404, {"detail": {"error": "none"}}),
            ("GET", "/fallback/claude"): {
                "model": "claude",
                "fallback_models": ["gpt-4o"],
                "fallback_type": "general",
            },
        }
        self.routes.update(routes or {})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.routes.get((request.method, request.url.path), {"ok": True})
        if callable(answer):
            answer = answer(request)
        if isinstance(answer, httpx.Response):
            return answer
        status, body = answer if isinstance(answer, tuple) else (200, answer)
        return httpx.Response(status, json=body)

    def writes(self) -> list[tuple[str, str, Any]]:
        return [
            (r.method, r.url.path, json.loads(r.content) if r.content else None)
            for r in self.requests
            if r.method != "GET"
        ]


def admin(recorder: Recorder | Callable[[httpx.Request], httpx.Response]) -> LiteLLMAdmin:
    client = httpx.Client(transport=httpx.MockTransport(recorder))
    return LiteLLMAdmin(BASE + "/", MASTER, client=client)


def act(type_: str, **params: Any) -> GatewayAction:
    return GatewayAction(type=type_, params=params)


def test_satisfies_protocol_and_hides_the_master_key() -> None:
    gw = admin(Recorder())
    assert isinstance(gw, GatewayAdmin)
    assert MASTER not in repr(gw)
    assert repr(gw) == f"LiteLLMAdmin(base_url={BASE!r})"
    assert MASTER not in str(vars(gw))


def test_every_request_carries_the_bearer_master_key() -> None:
    rec = Recorder()
    gw = admin(rec)
    gw.plan(act("block_key", key="sk-team-a"))
    gw.apply(act("block_key", key="sk-team-a"), key="k1")
    assert rec.requests
    assert all(r.headers["authorization"] == f"Bearer {MASTER}" for r in rec.requests)
    assert all(str(r.url).startswith(BASE + "/") for r in rec.requests)


def test_block_and_unblock_key() -> None:
    rec = Recorder()
    gw = admin(rec)
    plan = gw.plan(act("block_key", key="sk-team-a"))
    info = rec.requests[0]
    assert (info.method, info.url.path, info.url.params["key"]) == ("GET", "/key/info", "sk-team-a")
    assert plan.inverse == act("unblock_key", key="sk-team-a")
    outcome = gw.apply(plan.action, key="k1")
    assert outcome.ok
    gw.apply(act("unblock_key", key="sk-team-a"), key="k2")
    assert rec.writes() == [
        ("POST", "/key/block", {"key": "sk-team-a"}),
        ("POST", "/key/unblock", {"key": "sk-team-a"}),
    ]


def test_blocking_an_already_blocked_key_has_no_inverse() -> None:
    blocked = {"key": "sk-x", "info": {**KEY_INFO["info"], "blocked": True}}
    gw = admin(Recorder({("GET", "/key/info"): blocked}))
    plan = gw.plan(act("block_key", key="sk-x"))
    assert plan.inverse is None
    assert "already blocked" in plan.preview


def test_update_key_limits_inverse_is_previous_limits() -> None:
    rec = Recorder()
    gw = admin(rec)
    plan = gw.plan(act("update_key_limits", key="sk-team-a", rpm_limit="10", tpm_limit=1000))
    assert plan.inverse == act("update_key_limits", key="sk-team-a", rpm_limit=100, tpm_limit=None)
    gw.apply(plan.action, key="k")
    # Only the limits given are sent; templated strings are coerced to numbers.
    assert rec.writes() == [
        ("POST", "/key/update", {"key": "sk-team-a", "rpm_limit": 10, "tpm_limit": 1000})
    ]


def test_set_deployment_order() -> None:
    rec = Recorder()
    gw = admin(rec)
    plan = gw.plan(act("set_deployment_order", deployment_id="az-4o", order=0))
    assert plan.inverse == act("set_deployment_orders", orders={"az-4o": 2})
    gw.apply(plan.action, key="k")
    gw.apply(plan.inverse, key="k-undo")
    assert rec.writes() == [
        ("POST", "/model/update", {"model_info": {"id": "az-4o"}, "litellm_params": {"order": 0}}),
        ("POST", "/model/update", {"model_info": {"id": "az-4o"}, "litellm_params": {"order": 2}}),
    ]
    with pytest.raises(GatewayRejected, match="unknown deployment"):
        gw.plan(act("set_deployment_order", deployment_id="nope", order=1))


def test_failover_provider_moves_groups_and_inverts() -> None:
    rec = Recorder()
    gw = admin(rec)
    plan = gw.plan(act("failover_provider", provider="openai"))
    assert plan.preview == "will move model groups gpt-4o, gpt-4o-mini from openai to azure"
    assert plan.action.params["orders"] == {"oa-4o": 3, "oa-mini": 2, "az-mini": 1}
    # gpt-4o-mini had no orders (all deployments shared traffic): LiteLLM cannot remove an
    # order again, so the inverse restores the equivalent "all order 1".
    assert plan.inverse == act(
        "set_deployment_orders", orders={"oa-4o": 1, "oa-mini": 1, "az-mini": 1}
    )
    gw.apply(plan.action, key="k")
    body = [(b["model_info"]["id"], b["litellm_params"]["order"]) for _, _, b in rec.writes()]
    assert sorted(body) == [("az-mini", 1), ("oa-4o", 3), ("oa-mini", 2)]
    assert {(m, p) for m, p, _ in rec.writes()} == {("POST", "/model/update")}
    rec.requests.clear()
    assert plan.inverse is not None
    gw.apply(plan.inverse, key="k-undo")
    body = [(b["model_info"]["id"], b["litellm_params"]["order"]) for _, _, b in rec.writes()]
    assert sorted(body) == [("az-mini", 1), ("oa-4o", 1), ("oa-mini", 1)]


def test_failover_without_alternative_is_rejected() -> None:
    gw = admin(Recorder())
    with pytest.raises(GatewayRejected, match="no model group has anthropic first"):
        gw.plan(act("failover_provider", provider="anthropic"))


def test_set_fallbacks_and_inverse() -> None:
    rec = Recorder()
    gw = admin(rec)
    fresh = gw.plan(act("set_fallbacks", model="gpt-4o", fallback_models=["claude"]))
    assert fresh.inverse == act("delete_fallbacks", model="gpt-4o")
    existing = gw.plan(act("set_fallbacks", model="claude", fallback_models=["gpt-4o-mini"]))
    assert existing.inverse == act("set_fallbacks", model="claude", fallback_models=["gpt-4o"])
    gw.apply(fresh.action, key="k")
    assert fresh.inverse is not None
    gw.apply(fresh.inverse, key="k-undo")
    assert rec.writes() == [
        (
            "POST",
            "/fallback",
            {"model": "gpt-4o", "fallback_models": ["claude"], "fallback_type": "general"},
        ),
        ("DELETE", "/fallback/gpt-4o", None),
    ]


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_5xx_and_429_are_unavailable(status: int) -> None:
    gw = admin(Recorder({("POST", "/key/block"): (status, {"error": "busy"})}))
    with pytest.raises(GatewayUnavailable) as info:
        gw.apply(act("block_key", key="sk-a"), key="k")
    assert info.value.status == status


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_4xx_are_rejected(status: int) -> None:
    gw = admin(Recorder({("POST", "/key/block"): (status, {"error": "no"})}))
    with pytest.raises(GatewayRejected) as info:
        gw.apply(act("block_key", key="sk-a"), key="k")
    assert info.value.status == status


@pytest.mark.parametrize(
    "exc",
    [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("x")],
)
def test_transport_errors_are_unavailable(exc: Exception) -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(GatewayUnavailable):
        admin(boom).apply(act("block_key", key="sk-a"), key="k")


def test_invalid_action_is_rejected_without_a_call() -> None:
    rec = Recorder()
    gw = admin(rec)
    with pytest.raises(GatewayRejected, match="unknown action type"):
        gw.apply(act("reboot"), key="k")
    with pytest.raises(GatewayRejected, match="invalid params for block_key"):
        gw.plan(act("block_key"))
    assert rec.requests == []


def test_master_key_never_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    echo = (401, {"error": f"bad key {MASTER}"})
    gw = admin(Recorder({("POST", "/key/block"): echo}))
    with caplog.at_level(logging.DEBUG), pytest.raises(GatewayRejected) as info:
        gw.apply(act("block_key", key="sk-a"), key="k")
    assert MASTER not in str(info.value)
    assert "***" in str(info.value)
    assert all(MASTER not in r.getMessage() for r in caplog.records)


def test_default_client_uses_timeout() -> None:
    gw = LiteLLMAdmin(BASE, MASTER, timeout=1.5)
    try:
        assert gw._client.timeout.read == 1.5
    finally:
        gw.close()


def test_proxy_without_database_is_a_permanent_refusal() -> None:
    # The exact answers of litellm[proxy]==1.106.2 run without a database (checked offline).
    no_db = (500, {"error": {"message": "{'error': 'Database not connected'}", "code": "500"}})
    gw = admin(Recorder({("POST", "/key/update"): no_db}))
    with pytest.raises(GatewayRejected) as info:
        gw.apply(act("update_key_limits", key="sk-a", rpm_limit=5), key="k")
    assert "config-file adapter" in str(info.value)
    assert info.value.status == 500


def test_litellm_cannot_remove_an_order() -> None:
    rec = Recorder()
    with pytest.raises(GatewayRejected, match="cannot remove a deployment's order"):
        admin(rec).plan(act("set_deployment_order", deployment_id="oa-4o", order=None))
    assert rec.writes() == []


def test_group_failover_and_deployment_limit_requests() -> None:
    rec = Recorder()
    gw = admin(rec)
    plan = gw.plan(act("failover_model_group", model_group="gpt-4o"))
    gw.apply(plan.action, key="k1")
    limits = gw.plan(act("set_deployment_limits", deployment_id="an-son", rpm=60))
    assert limits.inverse == act("set_deployment_limits", deployment_id="an-son", rpm=None)
    gw.apply(limits.action, key="k2")
    assert rec.writes() == [
        ("POST", "/model/update", {"model_info": {"id": "oa-4o"}, "litellm_params": {"order": 3}}),
        ("POST", "/model/update", {"model_info": {"id": "an-son"}, "litellm_params": {"rpm": 60}}),
    ]


def test_satisfied_reads_the_proxy_state() -> None:
    rec = Recorder()
    gw = admin(rec)
    assert gw.satisfied(act("unblock_key", key="sk-team-a"))
    assert not gw.satisfied(act("block_key", key="sk-team-a"))
    assert gw.satisfied(act("update_key_limits", key="sk-team-a", rpm_limit=100))
    assert gw.satisfied(act("set_deployment_orders", orders={"oa-4o": 1, "az-4o": 2}))
    assert not gw.satisfied(act("set_deployment_order", deployment_id="oa-4o", order=3))
    assert gw.satisfied(act("set_fallbacks", model="claude", fallback_models=["gpt-4o"]))
    assert rec.writes() == []
