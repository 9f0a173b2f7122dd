"""The gateway's mutable configuration: what the admin API changes and the traffic obeys.

Every mutation bumps ``version``; the router keeps an immutable :class:`RoutingView` and rebuilds
it only when the version moved, so the per-call hot path takes no lock for reads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any

from gatewarden.simulator.catalog import Catalog


@dataclass(frozen=True)
class KeySettings:
    alias: str
    team: str
    hashed: str
    blocked: bool = False
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_budget: float | None = None


@dataclass(frozen=True)
class TeamSettings:
    """A LiteLLM team: its limits apply to all of its keys' calls together. The simulator's
    ``team_id`` is the catalog's team name, as its ``/metrics`` labels both ``team`` and
    ``team_alias`` with it."""

    team_id: str
    alias: str
    blocked: bool = False
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_budget: float | None = None

    @property
    def limited(self) -> bool:
        return self.blocked or any(
            v is not None for v in (self.rpm_limit, self.tpm_limit, self.max_budget)
        )


@dataclass(frozen=True)
class DeploymentSettings:
    id: str
    group: str
    order: int
    weight: float
    rpm: int | None = None
    tpm: int | None = None


@dataclass(frozen=True)
class AdminCall:
    """One admin API call as the gateway saw it, for tests and the demo to assert on."""

    ts: float
    method: str
    path: str
    body: Any
    status: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "ts": self.ts,
            "method": self.method,
            "path": self.path,
            "body": self.body,
            "status": self.status,
        }


@dataclass(frozen=True)
class RoutingView:
    """An immutable snapshot of everything routing needs."""

    version: int
    keys: dict[str, KeySettings]
    #: team id -> settings, only the teams with a limit or a block (the hot path skips others)
    teams: dict[str, TeamSettings]
    #: group -> deployments sorted by (order, id)
    candidates: dict[str, tuple[DeploymentSettings, ...]]
    fallbacks: dict[str, tuple[str, ...]]


@dataclass
class GatewayState:
    """Thread-safe gateway configuration, seeded from a catalog."""

    catalog: Catalog
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    version: int = 0
    _keys: dict[str, KeySettings] = field(default_factory=dict)
    _teams: dict[str, TeamSettings] = field(default_factory=dict)
    _deployments: dict[str, DeploymentSettings] = field(default_factory=dict)
    _fallbacks: dict[str, list[str]] = field(default_factory=dict)
    _lookup: dict[str, str] = field(default_factory=dict)
    _calls: list[AdminCall] = field(default_factory=list)
    _view: RoutingView | None = None

    def __post_init__(self) -> None:
        group_of = self.catalog.group_of()
        for k in self.catalog.keys:
            self._keys[k.alias] = KeySettings(alias=k.alias, team=k.team, hashed=k.hashed)
            # LiteLLM's key endpoints take the key or its sha256, never the alias: an alias is
            # found through /key/list?key_alias=... (see key_by_alias).
            self._lookup.update({k.token: k.alias, k.hashed: k.alias})
        for t in self.catalog.teams:
            self._teams[t.name] = TeamSettings(team_id=t.name, alias=t.name)
        for d in self.catalog.deployments:
            self._deployments[d.id] = DeploymentSettings(
                id=d.id,
                group=group_of.get(d.id, d.model),
                order=d.order,
                weight=d.weight,
                rpm=d.rpm,
                tpm=d.tpm,
            )
        self._fallbacks = {g: list(fb) for g, fb in self.catalog.router.fallbacks.items()}

    # -- reads -------------------------------------------------------------------------------

    def view(self) -> RoutingView:
        with self._lock:
            if self._view is None or self._view.version != self.version:
                by_group: dict[str, list[DeploymentSettings]] = {}
                for d in self._deployments.values():
                    by_group.setdefault(d.group, []).append(d)
                self._view = RoutingView(
                    version=self.version,
                    keys=dict(self._keys),
                    teams={i: t for i, t in self._teams.items() if t.limited},
                    candidates={
                        g: tuple(sorted(ds, key=lambda d: (d.order, d.id)))
                        for g, ds in by_group.items()
                    },
                    fallbacks={g: tuple(fb) for g, fb in self._fallbacks.items()},
                )
            return self._view

    def resolve_key(self, key: str) -> str | None:
        """The alias of a key given as its token or hashed token; None otherwise (an alias is
        not a key to LiteLLM's key endpoints)."""
        with self._lock:
            return self._lookup.get(key)

    def key(self, alias: str) -> KeySettings:
        with self._lock:
            return self._keys[alias]

    def all_keys(self) -> list[KeySettings]:
        with self._lock:
            return list(self._keys.values())

    def team(self, team_id: str) -> TeamSettings | None:
        with self._lock:
            return self._teams.get(team_id)

    def teams(self) -> list[TeamSettings]:
        with self._lock:
            return list(self._teams.values())

    def deployment(self, dep_id: str) -> DeploymentSettings | None:
        with self._lock:
            return self._deployments.get(dep_id)

    def deployments(self) -> list[DeploymentSettings]:
        with self._lock:
            return list(self._deployments.values())

    def fallbacks(self, group: str) -> list[str] | None:
        with self._lock:
            fb = self._fallbacks.get(group)
            return None if fb is None else list(fb)

    def groups(self) -> set[str]:
        with self._lock:
            return {d.group for d in self._deployments.values()}

    def admin_calls(self) -> list[AdminCall]:
        with self._lock:
            return list(self._calls)

    def snapshot(self) -> dict[str, Any]:
        """Plain-JSON view for ``GET /sim/state``."""
        with self._lock:
            return {
                "version": self.version,
                "blocked_keys": sorted(a for a, k in self._keys.items() if k.blocked),
                "key_limits": {
                    a: {
                        "rpm_limit": k.rpm_limit,
                        "tpm_limit": k.tpm_limit,
                        "max_budget": k.max_budget,
                    }
                    for a, k in sorted(self._keys.items())
                    if k.rpm_limit is not None
                    or k.tpm_limit is not None
                    or k.max_budget is not None
                },
                "team_limits": {
                    i: {
                        "rpm_limit": t.rpm_limit,
                        "tpm_limit": t.tpm_limit,
                        "max_budget": t.max_budget,
                        "blocked": t.blocked,
                    }
                    for i, t in sorted(self._teams.items())
                    if t.limited
                },
                "deployments": {
                    d.id: {"model_group": d.group, "order": d.order, "rpm": d.rpm, "tpm": d.tpm}
                    for d in self._deployments.values()
                },
                "fallbacks": {g: list(fb) for g, fb in self._fallbacks.items()},
            }

    # -- writes ------------------------------------------------------------------------------

    def record_call(self, call: AdminCall) -> None:
        with self._lock:
            self._calls.append(call)

    def update_key(self, alias: str, **changes: Any) -> KeySettings:
        with self._lock:
            updated = replace(self._keys[alias], **changes)
            self._keys[alias] = updated
            self.version += 1
            return updated

    def update_team(self, team_id: str, **changes: Any) -> TeamSettings:
        with self._lock:
            updated = replace(self._teams[team_id], **changes)
            self._teams[team_id] = updated
            self.version += 1
            return updated

    def update_deployment(self, dep_id: str, **changes: Any) -> DeploymentSettings:
        with self._lock:
            updated = replace(self._deployments[dep_id], **changes)
            self._deployments[dep_id] = updated
            self.version += 1
            return updated

    def set_fallbacks(self, group: str, fallbacks: list[str] | None) -> None:
        with self._lock:
            if fallbacks is None:
                self._fallbacks.pop(group, None)
            else:
                self._fallbacks[group] = list(fallbacks)
            self.version += 1
