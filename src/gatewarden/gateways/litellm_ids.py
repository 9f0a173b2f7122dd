"""Turning the names incidents use into the identifiers LiteLLM's admin API wants.

Incidents name a key by its alias (else LiteLLM's sha256 hash of it: the metrics, spans and
spend logs never carry the key itself) and a team by its alias (else its id). LiteLLM 1.106.2
wants the key (``sk-...``) or its hashed token in ``/key/info``, ``/key/block``,
``/key/unblock`` and ``/key/update`` (an alias is "Key not found"; ``/key/block`` even checks
the format), and a ``team_id`` in ``/team/info`` and ``/team/update``. So:

* a key alias resolves through ``GET /key/list?key_alias=ALIAS&return_full_object=true``
  (exact match unless ``substring_matching`` is set), whose ``keys[].token`` is the hash;
* a team alias resolves through ``GET /v2/team/list?team_alias=ALIAS`` (a *partial* match
  there, so the exact alias is picked from the page); no team with that alias means the name
  already is a ``team_id``.

Nothing is cached: a key regenerated or an alias moved since the last call must not send a
stale hash, and one extra read per action is nothing next to an incident.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from gatewarden.errors import GatewayRejected

#: what LiteLLM's ``is_valid_api_key`` accepts as a hashed token
_HASHED = re.compile(r"[a-fA-F0-9]{64}")
#: pages of ``/v2/team/list`` read at most while looking for an exact alias
_MAX_TEAM_PAGES = 10

#: ``get(path, params)`` -> the JSON object answered (raises GatewayError)
Get = Callable[[str, dict[str, str]], Mapping[str, Any]]


class Ids(Protocol):
    """What a LiteLLM request needs in place of the incident's names."""

    def key_token(self, key: str) -> str: ...

    def team_id(self, team: str) -> str: ...


def is_key_token(key: str) -> bool:
    """True for a key (``sk-...``) or a hashed token: usable by the key endpoints as it is."""
    return key.startswith("sk-") or _HASHED.fullmatch(key) is not None


def key_lookup(alias: str) -> tuple[str, dict[str, str]]:
    return "/key/list", {"key_alias": alias, "return_full_object": "true"}


def team_lookup(alias: str, page: int = 1) -> tuple[str, dict[str, str]]:
    return "/v2/team/list", {"team_alias": alias, "page": str(page), "page_size": "100"}


def resolve_key(key: str, get: Get) -> str:
    """The hashed token of ``key`` (an alias, a hash or a key)."""
    if is_key_token(key):
        return key
    path, params = key_lookup(key)
    data = get(path, params)
    items = data.get("keys")
    if not isinstance(items, list):
        raise GatewayRejected(f"GET {path}: response has no keys list")
    tokens = {
        str(item["token"])
        for item in items
        if isinstance(item, Mapping) and item.get("key_alias") == key and item.get("token")
    }
    if not tokens:
        raise GatewayRejected(f"no LiteLLM key has key_alias {key!r}", status=404)
    if len(tokens) > 1:
        raise GatewayRejected(f"{len(tokens)} LiteLLM keys have key_alias {key!r}", status=409)
    return tokens.pop()


def resolve_team(team: str, get: Get) -> str:
    """The ``team_id`` of ``team`` (an alias or an id)."""
    ids: set[str] = set()
    for page in range(1, _MAX_TEAM_PAGES + 1):
        path, params = team_lookup(team, page)
        data = get(path, params)
        items = data.get("teams")
        if not isinstance(items, list):
            raise GatewayRejected(f"GET {path}: response has no teams list")
        ids.update(
            str(item["team_id"])
            for item in items
            if isinstance(item, Mapping) and item.get("team_alias") == team and item.get("team_id")
        )
        pages = data.get("total_pages")
        if ids or not isinstance(pages, int) or page >= pages:
            break
    if len(ids) > 1:
        raise GatewayRejected(f"{len(ids)} LiteLLM teams have team_alias {team!r}", status=409)
    return ids.pop() if ids else team


class Placeholders:
    """Ids for showing requests without asking a proxy (``gatewarden playbook test``)."""

    def key_token(self, key: str) -> str:
        return key if is_key_token(key) else f"<hashed token of key_alias {key}>"

    def team_id(self, team: str) -> str:
        return f"<team_id of team {team}>"


__all__ = [
    "Get",
    "Ids",
    "Placeholders",
    "is_key_token",
    "key_lookup",
    "resolve_key",
    "resolve_team",
    "team_lookup",
]
