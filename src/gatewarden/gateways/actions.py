"""The gateway action vocabulary, shared by every GatewayAdmin and by playbook validation.

Each action type has a small parameter model; adapters parse ``GatewayAction.params`` through
:func:`parse_params` so a malformed action is refused the same way everywhere. Routing-order
planning (failover) lives in :mod:`gatewarden.gateways.routing` so every adapter plans alike.

=======================  =====================================  ==================================
action                   params                                 inverse (computed by ``plan``)
=======================  =====================================  ==================================
block_key                key, ttl_s?                            unblock_key (none if already so)
unblock_key              key                                    block_key
update_key_limits        key, rpm_limit?, tpm_limit?,           update_key_limits with the
                         max_budget?                            previous values
set_keys_limits          limits {key: {rpm_limit?, ...}}        set_keys_limits (previous)
update_team_limits       team, rpm_limit?, tpm_limit?,          update_team_limits with the
                         max_budget?                            previous values
throttle_workflow        workflow, rpm_limit?, tpm_limit?,      set_keys_limits (previous)
                         max_budget?, max_keys, keys?
set_deployment_order     deployment_id, order                   set_deployment_orders (previous)
set_deployment_orders    orders {id: order}                     set_deployment_orders (previous)
set_deployment_limits    deployment_id, rpm?, tpm?              set_deployment_limits (previous)
failover_provider        provider, model?                       set_deployment_orders (previous)
failover_model_group     model_group                            set_deployment_orders (previous)
set_fallbacks            model, fallback_models                 set_fallbacks / delete_fallbacks
delete_fallbacks         model                                  set_fallbacks (previous)
http                     request, inverse?, description?        the declared inverse request
=======================  =====================================  ==================================

``key`` is what incidents name a key by: its alias (else LiteLLM's hash of it); ``team`` its
alias, else its id. Adapters resolve them to what their API wants (see ``litellm_admin``).

A workflow is not a gateway object: ``throttle_workflow`` limits the keys that carried the
workflow's recent traffic. The engine fills ``keys`` in (at most ``max_keys``, the biggest
spenders first) before planning, so the persisted intent names every key it changes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gatewarden.errors import GatewayRejected
from gatewarden.gateways.routing import (
    DeploymentView,
    FailoverPlan,
    plan_failover,
    plan_group_failover,
    provider_of,
)
from gatewarden.models import GatewayAction


class _Params(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KeyParams(_Params):
    key: str = Field(min_length=1)


class BlockKeyParams(KeyParams):
    #: unblock automatically this long after the block was applied (the engine schedules it)
    ttl_s: float | None = Field(default=None, gt=0)


class KeyLimitsParams(_Params):
    """Only the fields given are changed; ``None`` given explicitly removes a limit."""

    key: str = Field(min_length=1)
    rpm_limit: int | None = Field(default=None, ge=0)
    tpm_limit: int | None = Field(default=None, ge=0)
    max_budget: float | None = Field(default=None, ge=0)

    def limits(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in LIMIT_FIELDS if f in self.model_fields_set}


class TeamLimitsParams(_Params):
    """A team's limits (LiteLLM enforces them over all of its keys together)."""

    team: str = Field(min_length=1)
    rpm_limit: int | None = Field(default=None, ge=0)
    tpm_limit: int | None = Field(default=None, ge=0)
    max_budget: float | None = Field(default=None, ge=0)

    def limits(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in LIMIT_FIELDS if f in self.model_fields_set}


class KeysLimitsParams(_Params):
    """Several keys' limits at once, each key its own values (a workflow throttle's inverse)."""

    limits: dict[str, dict[str, int | float | None]] = Field(min_length=1)

    @field_validator("limits")
    @classmethod
    def _known_fields(
        cls, limits: dict[str, dict[str, int | float | None]]
    ) -> dict[str, dict[str, int | float | None]]:
        for key, fields in limits.items():
            unknown = sorted(set(fields) - set(LIMIT_FIELDS))
            if unknown:
                raise ValueError(f"key {key!r}: unknown field(s) {unknown}")
            if not fields:
                raise ValueError(f"key {key!r}: no limits (give some of {list(LIMIT_FIELDS)})")
            KeyLimitsParams.model_validate({"key": key, **fields})  # the same bounds per key
        return limits


#: most keys one ``throttle_workflow`` may change (its blast radius)
MAX_WORKFLOW_KEYS = 20


class WorkflowThrottleParams(_Params):
    workflow: str = Field(min_length=1)
    rpm_limit: int | None = Field(default=None, ge=0)
    tpm_limit: int | None = Field(default=None, ge=0)
    max_budget: float | None = Field(default=None, ge=0)
    max_keys: int = Field(default=5, ge=1, le=MAX_WORKFLOW_KEYS)
    #: filled in by the engine from recent traffic (the keys that carried the workflow)
    keys: list[str] | None = Field(default=None, min_length=1, max_length=MAX_WORKFLOW_KEYS)

    def limits(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in LIMIT_FIELDS if f in self.model_fields_set}

    @model_validator(mode="after")
    def _bounded(self) -> WorkflowThrottleParams:
        if not self.limits():
            raise ValueError("give at least one of rpm_limit, tpm_limit, max_budget")
        if self.keys is not None and len(self.keys) > self.max_keys:
            raise ValueError(f"{len(self.keys)} keys exceed max_keys={self.max_keys}")
        return self


class DeploymentOrderParams(_Params):
    deployment_id: str = Field(min_length=1)
    order: int | None = Field(ge=0)


class DeploymentOrdersParams(_Params):
    orders: dict[str, int | None] = Field(min_length=1)


class DeploymentLimitsParams(_Params):
    """A deployment's ``rpm``/``tpm`` in the router; only the fields given are changed."""

    deployment_id: str = Field(min_length=1)
    rpm: int | None = Field(default=None, ge=0)
    tpm: int | None = Field(default=None, ge=0)

    def limits(self) -> dict[str, int | None]:
        return {f: getattr(self, f) for f in ("rpm", "tpm") if f in self.model_fields_set}


class FailoverParams(_Params):
    provider: str = Field(min_length=1)
    #: only the provider's deployments serving this model ("" or absent = all of them)
    model: str | None = None
    #: filled in by ``plan``: the concrete new orders, so a re-apply after a crash is a setter
    orders: dict[str, int | None] | None = None

    @field_validator("model")
    @classmethod
    def _empty_is_all(cls, value: str | None) -> str | None:
        return value or None


class GroupFailoverParams(_Params):
    model_group: str = Field(min_length=1)
    orders: dict[str, int | None] | None = None


class FallbacksParams(_Params):
    model: str = Field(min_length=1)
    fallback_models: list[str] = Field(min_length=1)


class ModelParams(_Params):
    model: str = Field(min_length=1)


#: ``{{ secrets.NAME }}``: the only form in which a playbook may name a configured secret
SECRET_REF = re.compile(r"\{\{\s*secrets\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class HttpRequestSpec(_Params):
    """One request of a generic ``http`` action. ``json`` is the JSON body."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    url: str = Field(pattern=r"^https?://[^/\s]+", description="absolute http(s) URL")
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = Field(default=None, alias="json")
    #: statuses that count as success; empty = any 2xx
    ok_status: list[int] = Field(default_factory=list)

    @model_validator(mode="after")
    def _secrets_only_in_headers(self) -> HttpRequestSpec:
        # A secret in a URL or a body ends up in access logs and payload stores; headers are
        # where credentials belong, and the only place the adapter substitutes them.
        if SECRET_REF.search(self.url) or SECRET_REF.search(repr(self.body)):
            raise ValueError("{{ secrets.* }} may only be used in header values")
        return self


class HttpParams(_Params):
    request: HttpRequestSpec
    inverse: HttpRequestSpec | None = None
    description: str = ""


LIMIT_FIELDS: tuple[str, ...] = ("rpm_limit", "tpm_limit", "max_budget")

#: action type -> parameter model; the playbook loader checks ``action:`` against these keys.
ACTION_PARAMS: dict[str, type[_Params]] = {
    "block_key": BlockKeyParams,
    "unblock_key": KeyParams,
    "update_key_limits": KeyLimitsParams,
    "set_keys_limits": KeysLimitsParams,
    "update_team_limits": TeamLimitsParams,
    "throttle_workflow": WorkflowThrottleParams,
    "set_deployment_order": DeploymentOrderParams,
    "set_deployment_orders": DeploymentOrdersParams,
    "set_deployment_limits": DeploymentLimitsParams,
    "failover_provider": FailoverParams,
    "failover_model_group": GroupFailoverParams,
    "set_fallbacks": FallbacksParams,
    "delete_fallbacks": ModelParams,
    "http": HttpParams,
}

#: actions on virtual keys and teams (impossible on a proxy without a database)
KEY_ACTIONS: frozenset[str] = frozenset(
    {
        "block_key",
        "unblock_key",
        "update_key_limits",
        "set_keys_limits",
        "update_team_limits",
        "throttle_workflow",
    }
)


def parse_params(action: GatewayAction) -> Any:
    """The typed parameters of ``action``; GatewayRejected when the type or params are invalid
    (a malformed action is a permanent refusal: retrying cannot fix it)."""
    model = ACTION_PARAMS.get(action.type)
    if model is None:
        raise GatewayRejected(f"unknown action type {action.type!r}")
    try:
        return model.model_validate(action.params)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(params)'}: {e['msg']}" for e in exc.errors()
        )
        raise GatewayRejected(f"invalid params for {action.type}: {problems}") from exc


def param_names(action_type: str) -> tuple[set[str], set[str]]:
    """(required, allowed) parameter names of an action type, for load-time checks."""
    fields = ACTION_PARAMS[action_type].model_fields
    required = {n for n, f in fields.items() if f.is_required()}
    return required, set(fields)


def _limits_text(p: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={p[k]}" for k in LIMIT_FIELDS if k in p)


def describe(action: GatewayAction) -> str:
    """A short human sentence for an action, used when a richer preview is not available."""
    p: Mapping[str, Any] = action.params
    match action.type:
        case "block_key":
            ttl = p.get("ttl_s")
            return f"block key {p.get('key')}" + (f" for {ttl:g}s" if ttl else "")
        case "unblock_key":
            return f"unblock key {p.get('key')}"
        case "update_key_limits":
            limits = ", ".join(f"{k}={p[k]}" for k in LIMIT_FIELDS if k in p)
            return f"set limits of key {p.get('key')}: {limits}"
        case "set_keys_limits":
            per_key: Mapping[str, Mapping[str, Any]] = p.get("limits") or {}
            return f"set limits of {len(per_key)} key(s): " + "; ".join(
                f"{k} " + ", ".join(f"{f}={v}" for f, v in fields.items())
                for k, fields in per_key.items()
            )
        case "update_team_limits":
            return f"set limits of team {p.get('team')}: {_limits_text(p)}"
        case "throttle_workflow":
            keys = p.get("keys")
            which = f"keys {', '.join(keys)}" if keys else f"up to {p.get('max_keys', 5)} keys"
            return f"throttle workflow {p.get('workflow')} ({which}): {_limits_text(p)}"
        case "set_deployment_order":
            return f"set order of deployment {p.get('deployment_id')} to {p.get('order')}"
        case "set_deployment_orders":
            orders = p.get("orders") or {}
            return "set deployment orders " + ", ".join(f"{k}={v}" for k, v in orders.items())
        case "set_deployment_limits":
            limits = ", ".join(f"{k}={p[k]}" for k in ("rpm", "tpm") if k in p)
            return f"set limits of deployment {p.get('deployment_id')}: {limits}"
        case "failover_provider":
            model = f" for {p['model']}" if p.get("model") else ""
            return f"fail over from provider {p.get('provider')}{model}"
        case "failover_model_group":
            return f"fail over model group {p.get('model_group')} to its next deployment"
        case "set_fallbacks":
            return f"set fallbacks of {p.get('model')} to {', '.join(p.get('fallback_models', []))}"
        case "delete_fallbacks":
            return f"remove fallbacks of {p.get('model')}"
        case "http":
            request = p.get("request") or {}
            what = p.get("description") or f"{request.get('method')} {request.get('url')}"
            return f"http: {what}"
    return action.type


__all__ = [
    "ACTION_PARAMS",
    "KEY_ACTIONS",
    "LIMIT_FIELDS",
    "MAX_WORKFLOW_KEYS",
    "SECRET_REF",
    "BlockKeyParams",
    "DeploymentLimitsParams",
    "DeploymentOrderParams",
    "DeploymentOrdersParams",
    "DeploymentView",
    "FailoverParams",
    "FailoverPlan",
    "FallbacksParams",
    "GroupFailoverParams",
    "HttpParams",
    "HttpRequestSpec",
    "KeyLimitsParams",
    "KeyParams",
    "KeysLimitsParams",
    "ModelParams",
    "TeamLimitsParams",
    "WorkflowThrottleParams",
    "describe",
    "param_names",
    "parse_params",
    "plan_failover",
    "plan_group_failover",
    "provider_of",
]
