"""A playbook with a generic http action, through the engine: incident templates rendered,
secrets substituted only at call time and never stored, the declared inverse on rollback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatewarden.errors import ConfigError
from gatewarden.gateways.http_action import HttpActionGateway
from gatewarden.gateways.router import GatewayRouter
from gatewarden.models import EventType
from gatewarden.remediate.language import Playbook, load_playbooks
from gatewarden.remediate.runlog import run_id_for

from .helpers import Harness, make_gateway, open_incident

TOKEN = "kong-admin-SECRET-5150"
RUN = run_id_for("inc-1", "kong-throttle")


def request(minute: int) -> dict[str, Any]:
    return {
        "method": "PUT",
        "url": "http://kong.internal:8001/consumers/{{ incident.scope.api_key }}/plugins/rl",
        "headers": {"Authorization": "Bearer {{ secrets.kong_token }}"},
        "json": {"name": "rate-limiting", "config": {"minute": minute}},
    }


def playbook() -> Playbook:
    return Playbook.model_validate(
        {
            "name": "kong-throttle",
            "mode": "auto",
            "match": {"kinds": ["cost"], "scope": {"api_key": "*"}},
            "steps": [
                {
                    "type": "action",
                    "action": "http",
                    "params": {
                        "request": request(10),
                        "inverse": request(1000),
                        "description": "throttle {{ incident.scope.api_key }} in Kong",
                    },
                },
                {
                    "type": "verify",
                    "checks": [{"metric": "cost", "where": {}, "below": 1.0}],
                    "for_ticks": 1,
                    "timeout_s": 30,
                },
            ],
            "cooldown_s": 0,
        }
    )


def test_http_action_runs_rolls_back_and_never_stores_the_secret() -> None:
    seen: list[httpx.Request] = []

    def kong(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json={"ok": True})

    http = HttpActionGateway(
        secrets={"kong_token": TOKEN},
        allowed_hosts=["kong.internal:8001"],
        client=httpx.Client(transport=httpx.MockTransport(kong)),
    )
    gateway = GatewayRouter(make_gateway(), {"http": http})
    h = Harness([playbook()])
    h.stage = h.new_stage(gateway)
    h.metrics.set("cost", {}, 5.0)  # never recovers: the run rolls back
    open_incident(h.store, "inc-1", {"api_key": "team-a-1"}, kind="cost")
    for _ in range(4):
        h.tick(stage=h.stage)
    assert h.finished_state(RUN) == "rolled_back"
    assert [(r.method, r.url.path) for r in seen] == [
        ("PUT", "/consumers/team-a-1/plugins/rl"),
        ("PUT", "/consumers/team-a-1/plugins/rl"),
    ]
    assert [json.loads(r.content)["config"]["minute"] for r in seen] == [10, 1000]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in seen)
    assert [r.headers["idempotency-key"] for r in seen] == [f"action:{RUN}:0", f"rollback:{RUN}:0"]
    intended = h.events(EventType.ACTION_INTENDED)[0]
    headers = intended.payload["action"]["params"]["request"]["headers"]
    assert headers == {"Authorization": "Bearer {{ secrets.kong_token }}"}
    assert intended.payload["preview"] == "will call throttle team-a-1 in Kong"
    stored = json.dumps([e.model_dump(mode="json") for e in h.store.events()])
    assert TOKEN not in stored


def test_malformed_http_step_is_refused_at_load(tmp_path: Path) -> None:
    bad = request(10) | {"json": {"token": "{{ secrets.kong_token }}"}}
    text = json.dumps(
        {
            "name": "leaky",
            "steps": [{"type": "action", "action": "http", "params": {"request": bad}}],
        }
    )
    (tmp_path / "leaky.yaml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_playbooks(tmp_path)
    assert "secrets.* }} may only be used in header values" in "\n".join(info.value.problems)
