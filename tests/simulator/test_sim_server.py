"""The HTTP server: LiteLLM admin API (auth, validation, effects), request log, sim control."""

from __future__ import annotations

import pytest

from gatewarden.models import RequestRecord
from gatewarden.simulator.catalog import default_catalog
from tests.simulator.helpers import START, Live

#: LiteLLM's key endpoints take the key or its sha256, never the alias
SEARCH_PROD = next(k for k in default_catalog().keys if k.alias == "search-prod").hashed

ADMIN_CALLS = [
    ("POST", "/key/block", {"key": SEARCH_PROD}),
    ("POST", "/key/unblock", {"key": SEARCH_PROD}),
    ("POST", "/key/update", {"key": SEARCH_PROD, "rpm_limit": 5}),
    ("GET", f"/key/info?key={SEARCH_PROD}", None),
    ("GET", "/key/list?key_alias=search-prod", None),
    ("GET", "/team/info?team_id=search", None),
    ("GET", "/v2/team/list?team_alias=sea", None),
    ("POST", "/team/update", {"team_id": "it", "rpm_limit": None}),
    ("GET", "/model/info", None),
    ("POST", "/model/update", {"model_info": {"id": "openai-gpt-4o"}, "litellm_params": {}}),
    ("POST", "/fallback", {"model": "gpt-4o", "fallback_models": ["claude-sonnet"]}),
    ("GET", "/fallback/gpt-4o", None),
    ("DELETE", "/fallback/gpt-4o", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
def test_admin_requires_master_key(shared_live: Live, method: str, path: str, body: object) -> None:
    live = shared_live
    for headers in ({}, {"Authorization": "Bearer sk-wrong"}, {"Authorization": "sk-test"}):
        resp = live.client.request(method, path, json=body, headers=headers)
        assert resp.status_code == 401
        error = resp.json()["error"]
        assert error["type"] == "auth_error" and error["code"] == "401"
    ok = live.client.request(method, path, json=body, headers=live.auth)
    assert ok.status_code == 200, ok.text
    calls = live.client.get("/sim/admin-calls").json()[-4:]
    assert [c["status"] for c in calls] == [401, 401, 401, 200]
    assert calls[-1]["method"] == method and calls[-1]["body"] == body
    assert calls[-1]["path"] == path


def test_litellm_header_alias_is_accepted(shared_live: Live) -> None:
    resp = shared_live.client.get("/model/info", headers={"x-litellm-api-key": "sk-test-master"})
    assert resp.status_code == 200


@pytest.mark.parametrize(
    "path", ["/key/block", "/key/unblock", "/key/update", "/model/update", "/fallback"]
)
@pytest.mark.parametrize("payload", [b"{not json", b"[1, 2]", b"\xff\xfe", b'"text"'])
def test_malformed_json_is_400(shared_live: Live, path: str, payload: bytes) -> None:
    live = shared_live
    resp = live.client.post(path, content=payload, headers=live.auth)
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "bad_request_error"


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/key/block", {}, 400),
        ("/key/block", {"key": 42}, 400),
        ("/key/block", {"key": "sk-nope"}, 404),
        # An alias is not a key to LiteLLM 1.106.2: a bad format for /key/block, unknown else.
        ("/key/block", {"key": "search-prod"}, 400),
        ("/key/unblock", {"key": "search-prod"}, 400),
        ("/key/update", {"key": "search-prod", "rpm_limit": 5}, 404),
        ("/key/update", {"key": SEARCH_PROD, "rpm_limit": "many"}, 400),
        ("/key/update", {"key": SEARCH_PROD, "rpm_limit": -1}, 400),
        ("/key/update", {"key": SEARCH_PROD, "tpm_limit": True}, 400),
        ("/key/update", {"key": SEARCH_PROD, "max_budget": "x"}, 400),
        ("/key/update", {"key": "nobody", "rpm_limit": 5}, 404),
        ("/key/update", {"rpm_limit": 5}, 400),
        ("/team/update", {"rpm_limit": 5}, 400),
        ("/team/update", {"team_id": "nope", "rpm_limit": 5}, 404),
        ("/team/update", {"team_id": "it", "rpm_limit": -1}, 400),
        ("/model/update", {"litellm_params": {"order": 2}}, 400),
        ("/model/update", {"model_info": {"id": "nope"}, "litellm_params": {"order": 2}}, 404),
        ("/model/update", {"model_info": {"id": "openai-gpt-4o"}, "litellm_params": [1]}, 400),
        (
            "/model/update",
            {"model_info": {"id": "openai-gpt-4o"}, "litellm_params": {"order": None}},
            400,
        ),
        (
            "/model/update",
            {"model_info": {"id": "openai-gpt-4o"}, "litellm_params": {"order": 1.5}},
            400,
        ),
        ("/fallback", {"model": "gpt-4o"}, 400),
        ("/fallback", {"model": "gpt-4o", "fallback_models": []}, 400),
        ("/fallback", {"model": "gpt-4o", "fallback_models": ["gpt-4o"]}, 400),
        ("/fallback", {"model": "nope", "fallback_models": ["gpt-4o"]}, 404),
        ("/fallback", {"model": "gpt-4o", "fallback_models": ["nope"]}, 404),
        (
            "/fallback",
            {
                "model": "gpt-4o",
                "fallback_models": ["claude-sonnet"],
                "fallback_type": "context_window",
            },
            400,
        ),
    ],
)
def test_bad_input_is_4xx_never_500(
    shared_live: Live, path: str, body: object, status: int
) -> None:
    live = shared_live
    before = live.sim.state.version
    resp = live.client.post(path, json=body, headers=live.auth)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == str(status)
    assert live.sim.state.version == before  # nothing changed


def test_unknown_routes_and_params(live: Live) -> None:
    assert live.client.get("/nope").status_code == 404
    assert live.client.get("/nope").json()["error"]["code"] == "404"
    assert live.client.get("/metrics", params={"x": 1}).status_code == 200
    assert live.client.delete("/key/block").status_code == 405
    resp = live.client.get("/key/info", headers=live.auth)
    assert resp.status_code == 400
    assert live.client.get("/fallback/claude-haiku", headers=live.auth).status_code == 404
    for bad in ("abc", "nan", "inf"):
        resp = live.client.get("/gatewarden/requests", params={"since": bad})
        assert resp.status_code == 400


def test_key_info_by_token_or_hash_and_an_alias_only_through_key_list(live: Live) -> None:
    spec = next(k for k in default_catalog().keys if k.alias == "support-web")
    for key in (spec.token, spec.hashed):
        resp = live.client.get("/key/info", params={"key": key}, headers=live.auth)
        assert resp.status_code == 200
        body = resp.json()
        assert body["key"] == key
        info = body["info"]
        assert info["key_alias"] == "support-web" and info["team_id"] == "support"
        assert "token" not in info and info["blocked"] is False  # LiteLLM drops the hash
        assert info["rpm_limit"] is None and info["tpm_limit"] is None
        assert info["max_budget"] is None
    alias = live.client.get("/key/info", params={"key": spec.alias}, headers=live.auth)
    assert alias.status_code == 404
    found = live.client.get(
        "/key/list",
        params={"key_alias": "support-web", "return_full_object": "true"},
        headers=live.auth,
    ).json()
    assert [(k["key_alias"], k["token"]) for k in found["keys"]] == [("support-web", spec.hashed)]
    tokens = live.client.get("/key/list", params={"key_alias": "support"}, headers=live.auth)
    assert tokens.json()["keys"] == []  # exact unless substring_matching=true
    update = {"key": spec.token, "rpm_limit": 7, "tpm_limit": None, "max_budget": 12.5}
    assert live.client.post("/key/update", json=update, headers=live.auth).status_code == 200
    info = live.client.get("/key/info", params={"key": spec.hashed}, headers=live.auth).json()
    assert info["info"]["rpm_limit"] == 7 and info["info"]["max_budget"] == 12.5
    # Only the fields sent change; without "key", 1.106.2 takes the alias from key_alias.
    live.client.post(
        "/key/update", json={"key_alias": "support-web", "tpm_limit": 1000}, headers=live.auth
    )
    info = live.client.get("/key/info", params={"key": spec.hashed}, headers=live.auth).json()
    assert info["info"]["rpm_limit"] == 7 and info["info"]["tpm_limit"] == 1000


def test_block_over_http_affects_only_that_key(live: Live) -> None:
    live.step(300)
    t_block = live.clock.now()
    resp = live.client.post("/key/block", json={"key": SEARCH_PROD}, headers=live.auth)
    assert resp.status_code == 200 and resp.json()["blocked"] is True
    live.step(300)
    records = live.requests(START)
    for r in records:
        RequestRecord.model_validate(r)
        blocked = r["api_key"] == "search-prod" and r["ts"] >= t_block
        assert (r["status"] == 401) == blocked
    assert sum(r["status"] == 401 for r in records) > 50
    calls = live.client.get("/sim/admin-calls").json()
    assert calls[-1]["ts"] == t_block and calls[-1]["path"] == "/key/block"


def test_rpm_limit_over_http_yields_429(live: Live) -> None:
    body = {"key": SEARCH_PROD, "rpm_limit": 10}
    live.client.post("/key/update", json=body, headers=live.auth)
    live.step(600)
    mine = [r for r in live.requests(START) if r["api_key"] == "search-prod"]
    assert sum(r["error"] == "rate_limited" and r["status"] == 429 for r in mine) > 100
    assert sum(r["status"] == 200 for r in mine) <= 10 * 11


def test_model_update_moves_traffic_to_azure(live: Live) -> None:
    live.step(300)
    t_change = live.clock.now()
    for dep in ("openai-gpt-4o", "openai-gpt-4o-mini"):
        body = {"model_info": {"id": dep}, "litellm_params": {"order": 5}}
        resp = live.client.post("/model/update", json=body, headers=live.auth)
        assert resp.status_code == 200
        assert resp.json()["litellm_params"]["order"] == 5
        assert resp.json()["model_info"]["id"] == dep
    live.step(300)
    records = live.requests(START)
    assert any(r["provider"] == "openai" for r in records if r["ts"] < t_change)
    after = [r for r in records if r["ts"] >= t_change]
    assert not any(r["provider"] == "openai" for r in after)
    assert sum(r["provider"] == "azure" for r in after) > 500
    data = live.client.get("/model/info", headers=live.auth).json()["data"]
    orders = {d["model_info"]["id"]: d["litellm_params"]["order"] for d in data}
    assert orders["openai-gpt-4o"] == 5 and orders["azure-gpt-4o"] == 2
    entry = next(d for d in data if d["model_info"]["id"] == "azure-gpt-4o")
    assert entry["model_name"] == "gpt-4o" and entry["litellm_params"]["model"] == "azure/gpt-4o"
    # Deployment rate limits are reported once set.
    body = {"model_info": {"id": "azure-gpt-4o"}, "litellm_params": {"rpm": 100, "tpm": 50000}}
    resp = live.client.post("/model/update", json=body, headers=live.auth)
    assert resp.json()["litellm_params"]["rpm"] == 100


def test_fallback_endpoints(live: Live) -> None:
    get = live.client.get("/fallback/gpt-4o", headers=live.auth)
    assert get.json() == {
        "model": "gpt-4o",
        "fallback_models": ["claude-sonnet"],
        "fallback_type": "general",
    }
    body = {"model": "claude-haiku", "fallback_models": ["gpt-4o-mini"], "fallback_type": "general"}
    created = live.client.post("/fallback", json=body, headers=live.auth).json()
    assert created["message"] == "Fallback configuration created successfully"
    body["fallback_models"] = ["gpt-4o-mini", "claude-sonnet"]
    updated = live.client.post("/fallback", json=body, headers=live.auth).json()
    assert updated["message"] == "Fallback configuration updated successfully"
    assert live.client.get("/fallback/claude-haiku", headers=live.auth).json()[
        "fallback_models"
    ] == ["gpt-4o-mini", "claude-sonnet"]
    deleted = live.client.delete("/fallback/gpt-4o", headers=live.auth)
    assert deleted.status_code == 200 and "deleted" in deleted.json()["message"]
    assert live.client.get("/fallback/gpt-4o", headers=live.auth).status_code == 404
    assert live.client.delete("/fallback/gpt-4o", headers=live.auth).status_code == 404
    assert live.sim.state.fallbacks("gpt-4o") is None


def test_requests_endpoint_window(live: Live) -> None:
    live.step(120.5)
    now = live.clock.now()
    everything = live.requests(0)
    assert everything and all(r["ts"] < now for r in everything)
    assert everything == live.requests(START)
    part = live.requests(START + 30, START + 60)
    assert part and all(START + 30 <= r["ts"] < START + 60 for r in part)
    assert part == [r for r in everything if START + 30 <= r["ts"] < START + 60]
    assert live.requests(now + 10) == []
    # An until in the future is clamped to now; stepping reveals more.
    assert live.requests(START, now + 1000) == everything
    live.step(10)
    assert len(live.requests(START)) > len(everything)
    resp = live.client.get("/gatewarden/requests", params={"since": START})
    assert resp.headers["content-type"].startswith("application/x-ndjson")


def test_health_and_sim_control(live: Live) -> None:
    assert live.client.get("/health/liveliness").json() == "I'm alive!"
    state = live.client.get("/sim/state").json()
    assert state["now"] == START and state["gateway"]["blocked_keys"] == []
    live.step(60)
    resp = live.client.post(
        "/sim/faults",
        json={"type": "ttft_degradation", "provider": "openai", "duration": 120, "factor": 4},
    )
    assert resp.status_code == 201
    label = resp.json()["label"]
    assert label == {
        "kind": "ttft",
        "start": START + 60,
        "end": START + 180,
        "scope": {"provider": "openai"},
        "fault": "ttft_degradation",
    }
    assert live.client.get("/sim/labels").json() == [label]
    assert live.client.get("/sim/state").json()["active_faults"] == [label]
    live.step(120)
    slow = [
        r["ttft_ms"]
        for r in live.requests(START + 60)
        if r["provider"] == "openai" and r["ttft_ms"] is not None
    ]
    fast = [
        r["ttft_ms"]
        for r in live.requests(START, START + 60)
        if r["provider"] == "openai" and r["ttft_ms"] is not None
    ]
    assert sorted(slow)[len(slow) // 2] > 2.5 * sorted(fast)[len(fast) // 2]
    for bad in (
        {"type": "nope", "duration": 5},
        {"type": "key_surge", "api_key": "x", "duration": 5},
        {"type": "key_surge"},
        {"type": "ttft_degradation", "provider": "openai", "duration": 5, "start": 1},
    ):
        assert live.client.post("/sim/faults", json=bad).status_code == 400
    assert live.client.post("/sim/faults", content=b"{").status_code == 400
