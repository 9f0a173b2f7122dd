"""Every request the LiteLLM adapter builds fits the real proxy's OpenAPI document.

``tests/fixtures/litellm_openapi_excerpt.json`` holds the operations gatewarden calls, taken
from ``litellm[proxy]==1.106.2``'s ``/openapi.json`` (see ``openapi_excerpt.py``). Each action
type is planned and applied (with its inverse) against a fake proxy; every request recorded --
reads included -- must name a documented operation, declared query parameters of the right
type, and a body that fits the request schema, without a field the proxy would silently ignore.
The simulator's answers are checked against the response schemas the adapter parses.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gatewarden.clock import VirtualClock
from gatewarden.gateways.actions import ACTION_PARAMS
from gatewarden.models import GatewayAction
from gatewarden.simulator import Scenario, Simulator
from gatewarden.simulator.admin import AdminApi
from tests.gateways.openapi_excerpt import OPERATIONS, problems
from tests.gateways.test_litellm_admin import admin
from tests.gateways.test_litellm_ids import HASH_B, recorder

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx; the client works as is
    from starlette.testclient import TestClient

EXCERPT = Path(__file__).resolve().parents[1] / "fixtures" / "litellm_openapi_excerpt.json"
DOC: dict[str, Any] = json.loads(EXCERPT.read_text())

#: one concrete example of every LiteLLM action type (``http`` goes to its own adapter)
SAMPLES: list[GatewayAction] = [
    GatewayAction(type=t, params=p)
    for t, p in [
        ("block_key", {"key": "team-a-1", "ttl_s": 3600}),
        ("unblock_key", {"key": HASH_B}),
        ("update_key_limits", {"key": "team-a-1", "rpm_limit": 10, "max_budget": 2.5}),
        ("set_keys_limits", {"limits": {"team-a-1": {"tpm_limit": 1000}}}),
        ("update_team_limits", {"team": "search", "rpm_limit": 60, "max_budget": None}),
        ("throttle_workflow", {"workflow": "wf", "max_budget": 0, "keys": ["team-a-1"]}),
        ("set_deployment_order", {"deployment_id": "az-4o", "order": 0}),
        ("set_deployment_orders", {"orders": {"oa-4o": 2, "az-4o": 1}}),
        ("set_deployment_limits", {"deployment_id": "an-son", "rpm": 60, "tpm": None}),
        ("failover_provider", {"provider": "openai"}),
        ("failover_model_group", {"model_group": "gpt-4o"}),
        ("set_fallbacks", {"model": "gpt-4o", "fallback_models": ["claude"]}),
        ("delete_fallbacks", {"model": "claude"}),
    ]
]


def _operation(method: str, path: str) -> tuple[str, dict[str, Any]]:
    for template, ops in DOC["paths"].items():
        pattern = re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path) and method.lower() in ops:
            return template, ops[method.lower()]
    raise AssertionError(f"{method} {path} is not an operation of the LiteLLM proxy")


def _query_problems(request: httpx.Request, op: dict[str, Any]) -> list[str]:
    declared = {p["name"]: p for p in op["parameters"] if p["in"] == "query"}
    found = []
    for name in request.url.params:
        if name not in declared:
            found.append(f"query parameter {name!r} is not declared")
            continue
        raw = request.url.params[name]
        schema = declared[name]["schema"]
        kinds = {o.get("type") for o in schema.get("anyOf", [schema])}
        value: Any = raw
        if "boolean" in kinds and raw in ("true", "false"):
            value = raw == "true"
        elif "integer" in kinds and raw.lstrip("-").isdigit():
            value = int(raw)
        found.extend(problems(value, schema, DOC, f"?{name}"))
    for name, param in declared.items():
        if param.get("required") and name not in request.url.params:
            found.append(f"required query parameter {name!r} missing")
    return found


def request_problems(request: httpx.Request) -> list[str]:
    template, op = _operation(request.method, request.url.path)
    where = f"{request.method} {template}"
    found = _query_problems(request, op)
    if request.content:
        assert "requestBody" in op, f"{where} takes no body"
        found.extend(problems(json.loads(request.content), op["requestBody"], DOC, "body"))
    elif "requestBody" in op:
        found.append("body missing")
    return [f"{where}: {p}" for p in found]


def test_every_action_type_has_a_sample() -> None:
    assert {a.type for a in SAMPLES} == set(ACTION_PARAMS) - {"http"}


@pytest.mark.parametrize("action", SAMPLES, ids=lambda a: a.type)
def test_every_request_fits_the_proxy_openapi_document(action: GatewayAction) -> None:
    rec = recorder()
    gw = admin(rec)
    plan = gw.plan(action)
    gw.apply(plan.action, key="forward")
    if plan.inverse is not None:
        gw.apply(plan.inverse, key="inverse")
    assert rec.writes(), f"{action.type} sent nothing"
    found = [p for r in rec.requests for p in request_problems(r)]
    assert found == []


def test_the_adapter_calls_every_operation_of_the_excerpt() -> None:
    rec = recorder()
    gw = admin(rec)
    for action in SAMPLES:
        plan = gw.plan(action)
        gw.apply(plan.action, key=f"k-{action.type}")
    called = {(r.method.lower(), _operation(r.method, r.url.path)[0]) for r in rec.requests}
    assert called == set(OPERATIONS)


def test_the_validator_catches_what_the_proxy_would_ignore_or_refuse() -> None:
    body = DOC["paths"]["/key/update"]["post"]["requestBody"]
    assert problems({"key": "sk-x", "rpm_limit": 5}, body, DOC, "b") == []
    assert problems({"key": "sk-x", "rpm_limt": 5}, body, DOC, "b") == [
        "b: unknown property 'rpm_limt'"
    ]
    assert problems({"key": "sk-x", "rpm_limit": "5"}, body, DOC, "b") != []
    team = DOC["paths"]["/team/update"]["post"]["requestBody"]
    assert problems({"rpm_limit": 5}, team, DOC, "b") == ["b: missing required 'team_id'"]
    block = DOC["paths"]["/key/block"]["post"]["requestBody"]
    assert problems({"key": None}, block, DOC, "b") == ["b.key: None is not string"]


def test_the_simulator_answers_in_the_shapes_the_adapter_reads() -> None:
    scenario = Scenario(name="idle", duration_s=600, base_rps=1.0)
    sim = Simulator(scenario, VirtualClock(scenario.start))
    app = Starlette(routes=AdminApi(sim).routes())
    auth = {"Authorization": f"Bearer {scenario.master_key}"}
    schemas = {
        "/key/list": ("get", {"key_alias": "search-prod", "return_full_object": "true"}),
        "/v2/team/list": ("get", {"team_alias": "search"}),
    }
    with TestClient(app) as client:
        for path, (method, params) in schemas.items():
            answer = client.request(method, path, params=params, headers=auth)
            assert answer.status_code == 200, answer.text
            schema = DOC["paths"][path][method]["response"]
            assert problems(answer.json(), schema, DOC, path) == []
        body = {"model": "gpt-4o", "fallback_models": ["claude-sonnet"]}
        answer = client.post("/fallback", json=body, headers=auth)
        schema = DOC["paths"]["/fallback"]["post"]["response"]
        assert problems(answer.json(), schema, DOC, "/fallback") == []
