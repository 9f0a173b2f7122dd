"""The generic http action and the GatewayRouter, against httpx.MockTransport."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from gatewarden.errors import GatewayRejected, GatewayUnavailable
from gatewarden.gateways.actions import HttpRequestSpec
from gatewarden.gateways.http_action import HttpActionGateway
from gatewarden.gateways.memory import InMemoryGateway
from gatewarden.gateways.router import GatewayRouter, Reconciling
from gatewarden.models import GatewayAction
from gatewarden.protocols import GatewayAdmin

TOKEN = "kong-admin-SECRET-9f8e7d"


class Kong:
    """A fake Kong admin API: records every request, answers ``status``."""

    def __init__(self, status: int = 200, body: Any = None) -> None:
        self.requests: list[httpx.Request] = []
        self.status = status
        self.body = body if body is not None else {"ok": True}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, json=self.body)


def gateway(kong: Kong, **kwargs: Any) -> HttpActionGateway:
    defaults: dict[str, Any] = {
        "secrets": {"kong_token": TOKEN},
        "allowed_hosts": ["kong.internal:8001"],
    }
    return HttpActionGateway(
        client=httpx.Client(transport=httpx.MockTransport(kong)), **(defaults | kwargs)
    )


def rate_limit(minute: int) -> dict[str, Any]:
    return {
        "method": "PUT",
        "url": "http://kong.internal:8001/consumers/team-a/plugins/rl-team-a",
        "headers": {"Authorization": "Bearer {{ secrets.kong_token }}", "X-Why": "gatewarden"},
        "json": {"name": "rate-limiting", "config": {"minute": minute}},
    }


def http(**params: Any) -> GatewayAction:
    return GatewayAction(type="http", params=params)


def test_plan_returns_the_declared_inverse_and_previews() -> None:
    gw = gateway(Kong())
    assert isinstance(gw, GatewayAdmin)
    action = http(request=rate_limit(10), inverse=rate_limit(1000), description="throttle team-a")
    plan = gw.plan(action)
    assert plan.preview == "will call throttle team-a"
    assert plan.inverse is not None
    assert plan.inverse.params["request"]["json"] == {
        "name": "rate-limiting",
        "config": {"minute": 1000},
    }
    # The inverse of the inverse is the original request: "undo" of an undo works.
    undo_of_undo = gw.plan(plan.inverse).inverse
    assert undo_of_undo is not None
    assert undo_of_undo.params["request"]["json"]["config"] == {"minute": 10}
    assert gw.plan(http(request=rate_limit(10))).inverse is None


def test_apply_sends_the_request_with_the_secret_and_an_idempotency_key() -> None:
    kong = Kong()
    gw = gateway(kong)
    outcome = gw.apply(http(request=rate_limit(10)), key="run-1:2")
    assert outcome.ok and outcome.status == 200
    [req] = kong.requests
    assert (req.method, str(req.url)) == (
        "PUT",
        "http://kong.internal:8001/consumers/team-a/plugins/rl-team-a",
    )
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert req.headers["idempotency-key"] == "run-1:2"
    assert req.headers["x-why"] == "gatewarden"
    assert json.loads(req.content) == {"name": "rate-limiting", "config": {"minute": 10}}
    assert gw.apply(http(request=rate_limit(10)), key="run-1:2") == outcome
    assert len(kong.requests) == 1
    # Previews mask the secret; nothing about the adapter shows it.
    shown = gw.describe_request(HttpRequestSpec.model_validate(rate_limit(10)))
    assert shown["headers"]["Authorization"] == "Bearer ***"
    assert TOKEN not in repr(gw) and TOKEN not in repr(vars(gw))


def test_hosts_and_secrets_come_only_from_the_allow_lists() -> None:
    kong = Kong()
    gw = gateway(kong)
    elsewhere = {**rate_limit(10), "url": "https://attacker.example/collect"}
    with pytest.raises(GatewayRejected, match=r"'attacker\.example' refused"):
        gw.plan(http(request=elsewhere))
    with pytest.raises(GatewayRejected, match="refused"):
        gw.apply(http(request=elsewhere), key="k")
    other_port = {**rate_limit(10), "url": "http://kong.internal:9999/x"}
    with pytest.raises(GatewayRejected, match="refused"):
        gw.apply(http(request=other_port), key="k")
    unknown = {**rate_limit(10), "headers": {"Authorization": "{{ secrets.aws_key }}"}}
    with pytest.raises(GatewayRejected, match="unknown secret 'aws_key'"):
        gw.apply(http(request=unknown), key="k")
    leftover = {**rate_limit(10), "headers": {"X": "{{ env.HOME }}"}}
    with pytest.raises(GatewayRejected, match="unrendered template"):
        gw.apply(http(request=leftover), key="k")
    in_body = {**rate_limit(10), "json": {"token": "{{ secrets.kong_token }}"}}
    with pytest.raises(GatewayRejected, match="only be used in header"):
        gw.apply(http(request=in_body), key="k")
    assert kong.requests == []
    with pytest.raises(GatewayRejected, match="refused"):
        HttpActionGateway(allowed_hosts=[]).plan(http(request=rate_limit(1)))


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (503, GatewayUnavailable),
        (429, GatewayUnavailable),
        (404, GatewayRejected),
        (401, GatewayRejected),
    ],
)
def test_status_classification(status: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        gateway(Kong(status)).apply(http(request=rate_limit(10)), key="k")


def test_declared_ok_status_and_transport_errors() -> None:
    created = {**rate_limit(10), "ok_status": [201, 409]}
    assert gateway(Kong(409)).apply(http(request=created), key="k").ok
    with pytest.raises(GatewayRejected):
        gateway(Kong(200)).apply(http(request=created), key="k")

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    down = HttpActionGateway(
        secrets={"kong_token": TOKEN},
        allowed_hosts=["kong.internal:8001"],
        client=httpx.Client(transport=httpx.MockTransport(refuse)),
    )
    with pytest.raises(GatewayUnavailable, match="ConnectError"):
        down.apply(http(request=rate_limit(10)), key="k")


def test_secret_never_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    echo = Kong(400, {"error": f"bad token Bearer {TOKEN}"})
    with caplog.at_level(logging.DEBUG), pytest.raises(GatewayRejected) as info:
        gateway(echo).apply(http(request=rate_limit(10)), key="k")
    assert TOKEN not in str(info.value) and "***" in str(info.value)
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


def test_router_dispatches_by_action_type() -> None:
    kong = Kong()
    memory = InMemoryGateway.build(keys=["team-a-1"])
    router = GatewayRouter(memory, {"http": gateway(kong)})
    assert isinstance(router, GatewayAdmin) and isinstance(router, Reconciling)
    assert router.name == "memory+http"
    router.apply(GatewayAction(type="block_key", params={"key": "team-a-1"}), key="k1")
    router.apply(http(request=rate_limit(10)), key="k2")
    assert [c.action.type for c in memory.calls] == ["block_key"]
    assert len(kong.requests) == 1
    # satisfied is asked of the adapter that owns the action.
    assert router.satisfied(GatewayAction(type="block_key", params={"key": "team-a-1"}))
    assert not router.satisfied(http(request=rate_limit(10)))
    with pytest.raises(GatewayRejected, match="not supported by memory"):
        GatewayRouter(memory).apply(http(request=rate_limit(10)), key="k3")
