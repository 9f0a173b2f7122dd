"""LiteLLMAdmin turns the incident's key and team names into what LiteLLM 1.106.2 accepts: a
key alias into its hashed token (``/key/list?key_alias=``), a team alias into its ``team_id``
(``/v2/team/list?team_alias=``). Against httpx.MockTransport."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gatewarden.errors import GatewayRejected
from gatewarden.gateways.litellm_admin import admin_requests, lookup_requests
from gatewarden.gateways.litellm_ids import Placeholders, is_key_token
from gatewarden.models import GatewayAction
from tests.gateways.test_litellm_admin import KEY_INFO, Recorder, admin

HASH_A = "a" * 64
HASH_B = "b" * 64


def key_list(request: httpx.Request) -> dict[str, Any]:
    """``GET /key/list?key_alias=...&return_full_object=true``, exact match like the proxy."""
    keys = [
        {"token": HASH_A, "key_alias": "team-a-1", "blocked": False, "rpm_limit": 100},
        {"token": HASH_B, "key_alias": "team-a-10", "blocked": False, "rpm_limit": None},
    ]
    alias = request.url.params.get("key_alias")
    found = [k for k in keys if alias is None or k["key_alias"] == alias]
    full = request.url.params.get("return_full_object") == "true"
    return {
        "keys": found if full else [k["token"] for k in found],
        "total_count": len(found),
        "current_page": 1,
        "total_pages": 1,
    }


def team_list(request: httpx.Request) -> dict[str, Any]:
    """``GET /v2/team/list?team_alias=...``: a partial match, like the proxy."""
    teams = [
        {"team_id": "9f1c-uuid", "team_alias": "search", "rpm_limit": None},
        {"team_id": "77aa-uuid", "team_alias": "search-eu", "rpm_limit": 50},
    ]
    alias = request.url.params.get("team_alias", "")
    found = [t for t in teams if alias in str(t["team_alias"])]
    return {"teams": found, "total": len(found), "page": 1, "page_size": 100, "total_pages": 1}


TEAM_INFO: dict[str, Any] = {
    "team_id": "9f1c-uuid",
    "team_info": {"team_id": "9f1c-uuid", "team_alias": "search", "rpm_limit": 400},
    "keys": [],
}


def recorder() -> Recorder:
    return Recorder(
        {
            ("GET", "/key/list"): key_list,
            ("GET", "/v2/team/list"): team_list,
            ("GET", "/team/info"): TEAM_INFO,
        }
    )


def act(type_: str, **params: Any) -> GatewayAction:
    return GatewayAction(type=type_, params=params)


def test_a_key_alias_is_sent_as_its_hashed_token() -> None:
    rec = recorder()
    gw = admin(rec)
    plan = gw.plan(act("block_key", key="team-a-1"))
    lookup, info = rec.requests[0], rec.requests[1]
    assert (lookup.url.path, dict(lookup.url.params)) == (
        "/key/list",
        {"key_alias": "team-a-1", "return_full_object": "true"},
    )
    assert (info.url.path, info.url.params["key"]) == ("/key/info", HASH_A)
    # The persisted action and inverse keep the alias: humans read them, and a regenerated
    # key is looked up again when the inverse runs.
    assert plan.inverse == act("unblock_key", key="team-a-1")
    gw.apply(plan.action, key="k1")
    gw.apply(act("update_key_limits", key="team-a-1", rpm_limit=5), key="k2")
    assert rec.writes() == [
        ("POST", "/key/block", {"key": HASH_A}),
        ("POST", "/key/update", {"key": HASH_A, "rpm_limit": 5}),
    ]


def test_a_hash_or_a_key_is_used_as_it_is() -> None:
    rec = recorder()
    gw = admin(rec)
    gw.apply(act("block_key", key=HASH_B), key="k1")
    gw.apply(act("block_key", key="sk-team-a"), key="k2")
    assert [r.url.path for r in rec.requests] == ["/key/block", "/key/block"]
    assert is_key_token(HASH_B) and is_key_token("sk-x") and not is_key_token("team-a-1")


def test_an_unknown_or_ambiguous_alias_is_refused_without_a_write() -> None:
    rec = recorder()
    with pytest.raises(GatewayRejected, match="no LiteLLM key has key_alias 'nobody'") as info:
        admin(rec).apply(act("block_key", key="nobody"), key="k")
    assert info.value.status == 404

    def twice(request: httpx.Request) -> dict[str, Any]:
        dup = {"key_alias": "team-a-1", "token": HASH_B}
        return {"keys": [{"key_alias": "team-a-1", "token": HASH_A}, dup]}

    dup = Recorder({("GET", "/key/list"): twice})
    with pytest.raises(GatewayRejected, match="2 LiteLLM keys have key_alias"):
        admin(dup).apply(act("block_key", key="team-a-1"), key="k")
    assert rec.writes() == [] and dup.writes() == []


def test_team_limits_resolve_the_alias_exactly_and_invert() -> None:
    rec = recorder()
    gw = admin(rec)
    plan = gw.plan(act("update_team_limits", team="search", rpm_limit=60))
    assert plan.inverse == act("update_team_limits", team="search", rpm_limit=400)
    info = next(r for r in rec.requests if r.url.path == "/team/info")
    assert info.url.params["team_id"] == "9f1c-uuid"  # "search-eu" matched too: not taken
    gw.apply(plan.action, key="k")
    assert rec.writes() == [("POST", "/team/update", {"team_id": "9f1c-uuid", "rpm_limit": 60})]


def test_a_team_without_that_alias_is_taken_as_a_team_id() -> None:
    rec = recorder()
    gw = admin(rec)
    gw.apply(act("update_team_limits", team="0b7e-raw-id", tpm_limit=1000), key="k")
    assert rec.writes() == [("POST", "/team/update", {"team_id": "0b7e-raw-id", "tpm_limit": 1000})]


def test_workflow_throttle_updates_each_key_and_inverts_per_key() -> None:
    rec = recorder()
    gw = admin(rec)
    action = act("throttle_workflow", workflow="wf", rpm_limit=10, keys=["team-a-1", HASH_B])
    plan = gw.plan(action)
    assert plan.inverse == act(
        "set_keys_limits", limits={"team-a-1": {"rpm_limit": 100}, HASH_B: {"rpm_limit": 100}}
    )
    outcome = gw.apply(plan.action, key="k")
    assert outcome.response == {"updated": sorted(["team-a-1", HASH_B])}
    assert rec.writes() == [
        ("POST", "/key/update", {"key": HASH_A, "rpm_limit": 10}),
        ("POST", "/key/update", {"key": HASH_B, "rpm_limit": 10}),
    ]
    assert gw.satisfied(act("set_keys_limits", limits={"team-a-1": {"rpm_limit": 100}}))
    assert not gw.satisfied(plan.action)


def test_a_workflow_throttle_without_keys_cannot_be_planned() -> None:
    rec = recorder()
    with pytest.raises(GatewayRejected, match="no keys"):
        admin(rec).plan(act("throttle_workflow", workflow="wf", rpm_limit=10))
    assert rec.requests == []


def test_requests_shown_without_a_proxy_use_placeholders() -> None:
    action = act("throttle_workflow", workflow="wf", max_budget=0, keys=["team-a-1", HASH_A])
    assert [r.as_dict() for r in lookup_requests(action)] == [
        {
            "method": "GET",
            "path": "/key/list?key_alias=team-a-1&return_full_object=true",
            "body": None,
        }
    ]
    assert [r.body for r in admin_requests(action)] == [
        {"key": "<hashed token of key_alias team-a-1>", "max_budget": 0},
        {"key": HASH_A, "max_budget": 0},
    ]
    team = act("update_team_limits", team="search", rpm_limit=5)
    assert admin_requests(team, Placeholders())[0].body == {
        "team_id": "<team_id of team search>",
        "rpm_limit": 5,
    }


def test_key_info_is_read_by_hash() -> None:
    rec = recorder()
    assert admin(rec).key("team-a-1") == KEY_INFO["info"]
    assert rec.requests[-1].url.params["key"] == HASH_A
