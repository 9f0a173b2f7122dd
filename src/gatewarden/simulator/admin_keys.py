"""LiteLLM's key and team admin endpoints, as ``litellm[proxy]==1.106.2`` answers them.

What matters for gatewarden is what the real proxy refuses: the key endpoints take the key
(``sk-...``) or its sha256 hash, never the alias (``/key/block`` answers 400 "Invalid key
format.", the others 404 "Key not found"); an alias is looked up with ``GET /key/list?key_alias=``
(exact match unless ``substring_matching=true``). Team endpoints take a ``team_id``; a team alias
is looked up with ``GET /v2/team/list?team_alias=`` (a case-insensitive partial match).
"""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request

from gatewarden.simulator.admin_http import (
    ApiError,
    flag,
    key_format,
    optional_float,
    optional_int,
    positive_int,
    string,
)
from gatewarden.simulator.gateway_state import KeySettings, TeamSettings
from gatewarden.simulator.sim import Simulator


def _limit_changes(body: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name in ("rpm_limit", "tpm_limit"):
        if name in body:
            changes[name] = optional_int(body, name)
    if "max_budget" in body:
        changes["max_budget"] = optional_float(body, "max_budget")
    return changes


def _page(items: list[Any], page: int, size: int) -> tuple[list[Any], int]:
    pages = max(1, math.ceil(len(items) / size))
    return items[(page - 1) * size : page * size], pages


class KeyEndpoints:
    """Mixed into :class:`~gatewarden.simulator.admin.AdminApi` (which wraps each handler
    with auth, recording and the simulator lock)."""

    sim: Simulator

    def _alias(self, key: str) -> str:
        alias = self.sim.state.resolve_key(key)
        if alias is None:
            raise ApiError(404, "Key not found.", kind="not_found", param="key")
        return alias

    def _key_object(self, settings: KeySettings) -> dict[str, Any]:
        """A key as ``/key/list?return_full_object=true`` shows it (``UserAPIKeyAuth``)."""
        spec = next(k for k in self.sim.catalog.keys if k.alias == settings.alias)
        return {
            "token": settings.hashed,
            "key_name": f"sk-...{spec.token[-4:]}",
            "key_alias": settings.alias,
            "team_id": settings.team,
            "blocked": settings.blocked,
            "rpm_limit": settings.rpm_limit,
            "tpm_limit": settings.tpm_limit,
            "max_budget": settings.max_budget,
            "spend": round(self.sim.spend(settings.alias), 6),
            "models": [],
            "metadata": {"workflow": spec.workflow},
        }

    # -- keys ---------------------------------------------------------------------------------

    async def key_block(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        return self._set_blocked(key_format(string(body, "key")), blocked=True)

    async def key_unblock(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        return self._set_blocked(key_format(string(body, "key")), blocked=False)

    def _set_blocked(self, key: str, *, blocked: bool) -> dict[str, Any]:
        updated = self.sim.state.update_key(self._alias(key), blocked=blocked)
        return {
            "token": updated.hashed,
            "key_alias": updated.alias,
            "team_id": updated.team,
            "blocked": updated.blocked,
        }

    async def key_update(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("key") is not None:
            key = string(body, "key")
            alias = self._alias(key)
            renamed = body.get("key_alias")
            if renamed is not None and renamed != alias:
                raise ApiError(
                    400,
                    "renaming a key is not simulated",
                    kind="bad_request_error",
                    param="key_alias",
                )
        elif body.get("key_alias") is not None:
            # 1.106.2: without ``key``, ``key_alias`` names the key (exactly one must match).
            alias = string(body, "key_alias")
            if alias not in {k.alias for k in self.sim.state.all_keys()}:
                message = f"Key not found. No key with key_alias='{alias}'."
                raise ApiError(404, message, kind="not_found", param="key_alias")
            key = self.sim.state.key(alias).hashed
        else:
            raise ApiError(
                400,
                "either key or key_alias must be provided",
                kind="bad_request_error",
                param="key",
            )
        updated = self.sim.state.update_key(alias, **_limit_changes(body))
        return {
            "key": key,
            "key_alias": updated.alias,
            "team_id": updated.team,
            "rpm_limit": updated.rpm_limit,
            "tpm_limit": updated.tpm_limit,
            "max_budget": updated.max_budget,
            "blocked": updated.blocked,
        }

    async def key_info(self, request: Request, body: None) -> dict[str, Any]:
        key = request.query_params.get("key")
        if not key:
            raise ApiError(
                400, "missing query parameter: key", kind="bad_request_error", param="key"
            )
        alias = self.sim.state.resolve_key(key)
        if alias is None:
            raise ApiError(404, "Key not found in database", kind="not_found", param="key")
        info = self._key_object(self.sim.state.key(alias))
        del info["token"]  # LiteLLM removes the hashed token before answering
        return {"key": key, "info": info}

    async def key_list(self, request: Request, body: None) -> dict[str, Any]:
        q = request.query_params
        page = positive_int(request, "page", 1, 10_000)
        size = positive_int(request, "size", 10, 100)
        full = flag(request, "return_full_object")
        substring = flag(request, "substring_matching")
        found = self.sim.state.all_keys()
        if q.get("key_alias"):
            wanted = q["key_alias"]
            if substring:
                found = [k for k in found if wanted.lower() in k.alias.lower()]
            else:
                found = [k for k in found if k.alias == wanted]
        if q.get("key_hash"):
            found = [k for k in found if k.hashed == q["key_hash"]]
        if q.get("team_id"):
            found = [k for k in found if k.team == q["team_id"]]
        shown, pages = _page(sorted(found, key=lambda k: k.alias), page, size)
        return {
            "keys": [self._key_object(k) if full else k.hashed for k in shown],
            "total_count": len(found),
            "current_page": page,
            "total_pages": pages,
        }

    # -- teams --------------------------------------------------------------------------------

    def _team(self, team_id: str) -> TeamSettings:
        team = self.sim.state.team(team_id)
        if team is None:
            message = f"Team not found, passed team_id={team_id}"
            raise ApiError(404, message, kind="not_found", param="team_id")
        return team

    def _team_object(self, team: TeamSettings) -> dict[str, Any]:
        return {
            "team_id": team.team_id,
            "team_alias": team.alias,
            "blocked": team.blocked,
            "rpm_limit": team.rpm_limit,
            "tpm_limit": team.tpm_limit,
            "max_budget": team.max_budget,
            "spend": round(self.sim.router.team_spend.get(team.team_id, 0.0), 6),
            "models": [],
            "metadata": {},
        }

    async def team_info(self, request: Request, body: None) -> dict[str, Any]:
        team_id = request.query_params.get("team_id")
        if not team_id:
            raise ApiError(
                422, "missing query parameter: team_id", kind="bad_request_error", param="team_id"
            )
        team = self._team(team_id)
        keys = [self._key_object(k) for k in self.sim.state.all_keys() if k.team == team.team_id]
        return {
            "team_id": team.team_id,
            "team_info": self._team_object(team),
            "keys": keys,
            "team_memberships": [],
        }

    async def team_list(self, request: Request, body: None) -> dict[str, Any]:
        q = request.query_params
        page = positive_int(request, "page", 1, 10_000)
        size = positive_int(request, "page_size", 10, 100)
        found = self.sim.state.teams()
        if q.get("team_alias"):
            wanted = q["team_alias"].lower()
            found = [t for t in found if wanted in t.alias.lower()]
        if q.get("team_id"):
            found = [t for t in found if t.team_id == q["team_id"]]
        shown, pages = _page(sorted(found, key=lambda t: t.team_id), page, size)
        return {
            "teams": [self._team_object(t) for t in shown],
            "total": len(found),
            "page": page,
            "page_size": size,
            "total_pages": pages,
        }

    async def team_update(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        team = self._team(string(body, "team_id"))
        changes = _limit_changes(body)
        if "blocked" in body:
            if not isinstance(body["blocked"], bool):
                raise ApiError(
                    400, "blocked must be a boolean", kind="bad_request_error", param="blocked"
                )
            changes["blocked"] = body["blocked"]
        updated = self.sim.state.update_team(team.team_id, **changes)
        return {"team_id": updated.team_id, "data": self._team_object(updated)}


__all__ = ["KeyEndpoints"]
