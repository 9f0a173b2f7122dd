"""GatewayAdmin over the LiteLLM proxy admin API (``Authorization: Bearer <master key>``).

Every action is a setter, so applying it twice leaves the gateway as applying it once: that is
what makes ``apply(..., key=...)`` idempotent even though LiteLLM has no idempotency header.
The master key is held privately and never logged, put in an error message or shown by repr.

Request shapes were checked against the OpenAPI document of a real ``litellm[proxy]==1.106.2``
served offline (excerpt: ``tests/fixtures/litellm_openapi_excerpt.json``, every request this
module builds is validated against it): ``BlockKeyRequest {key}``, ``UpdateKeyRequest {key,
rpm_limit, tpm_limit, max_budget}``, ``UpdateTeamRequest {team_id, rpm_limit, tpm_limit,
max_budget}``, ``updateDeployment {model_info: {id}, litellm_params: {order|rpm|tpm}}`` (extra
params allowed), ``FallbackCreateRequest {model, fallback_models, fallback_type}``. Keys are sent
as their hashed token and teams as their ``team_id``, resolved from the incident's aliases by
:mod:`gatewarden.gateways.litellm_ids`. On that proxy, key, team and model endpoints need a
database and ``/model/update`` refuses deployments defined in the config file; such proxies are
changed through :mod:`gatewarden.gateways.litellm_config`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from pydantic import SecretStr

from gatewarden.errors import GatewayRejected, GatewayUnavailable
from gatewarden.gateways import litellm_ids, planner
from gatewarden.gateways.actions import (
    DeploymentLimitsParams,
    DeploymentOrderParams,
    DeploymentOrdersParams,
    FailoverParams,
    FallbacksParams,
    GroupFailoverParams,
    KeyLimitsParams,
    KeyParams,
    KeysLimitsParams,
    ModelParams,
    TeamLimitsParams,
    WorkflowThrottleParams,
    describe,
    parse_params,
)
from gatewarden.gateways.litellm_ids import Ids, Placeholders
from gatewarden.gateways.routing import (
    DeploymentView,
    provider_of,
    restorable_orders,
    served_model,
)
from gatewarden.models import ActionOutcome, ActionPlan, GatewayAction

log = logging.getLogger(__name__)

_MAX_DETAIL = 300
#: What a LiteLLM proxy without a database answers (as a 500) on key and model endpoints.
_NO_DB = ("No DB Connected", "Database not connected")


@dataclass(frozen=True)
class AdminRequest:
    """One write request of an action, as sent to the proxy."""

    method: str
    path: str
    body: dict[str, Any] | None = None
    #: a 404 is the wanted state (deleting what is already gone)
    missing_ok: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "body": self.body}


def _order(dep_id: str, order: int | None) -> AdminRequest:
    body = {"model_info": {"id": dep_id}, "litellm_params": {"order": order}}
    return AdminRequest("POST", "/model/update", body)


def lookup_requests(action: GatewayAction) -> list[AdminRequest]:
    """The reads that turn the action's key and team names into LiteLLM identifiers (none for
    a hashed token). Shown by ``gatewarden playbook test`` before the writes."""
    params = parse_params(action)
    keys: list[str] = []
    if isinstance(params, KeyParams | KeyLimitsParams):
        keys = [params.key]
    elif isinstance(params, KeysLimitsParams | WorkflowThrottleParams):
        keys = list(planner.keys_limits(action))
    out = []
    for key in keys:
        if not litellm_ids.is_key_token(key):
            path, query = litellm_ids.key_lookup(key)
            out.append(AdminRequest("GET", f"{path}?{urlencode(query)}"))
    if isinstance(params, TeamLimitsParams):
        path, query = litellm_ids.team_lookup(params.team)
        out.append(AdminRequest("GET", f"{path}?{urlencode(query)}"))
    return out


def admin_requests(action: GatewayAction, ids: Ids | None = None) -> list[AdminRequest]:
    """The write requests ``apply`` sends for a concrete (planned) action. ``ids`` turns key
    and team names into what LiteLLM wants; without it, placeholders say what would be sent
    (that is how ``gatewarden playbook test`` shows the calls a playbook would make)."""
    ids = ids or Placeholders()
    params = parse_params(action)
    if isinstance(params, KeyParams):
        path = "/key/block" if action.type == "block_key" else "/key/unblock"
        return [AdminRequest("POST", path, {"key": ids.key_token(params.key)})]
    if isinstance(params, KeyLimitsParams):
        body = {"key": ids.key_token(params.key), **params.limits()}
        return [AdminRequest("POST", "/key/update", body)]
    if isinstance(params, KeysLimitsParams | WorkflowThrottleParams):
        return [
            AdminRequest("POST", "/key/update", {"key": ids.key_token(key), **fields})
            for key, fields in planner.keys_limits(action).items()
        ]
    if isinstance(params, TeamLimitsParams):
        body = {"team_id": ids.team_id(params.team), **params.limits()}
        return [AdminRequest("POST", "/team/update", body)]
    if isinstance(params, DeploymentOrderParams):
        return [_order(params.deployment_id, params.order)]
    if isinstance(params, DeploymentOrdersParams | FailoverParams | GroupFailoverParams):
        if params.orders is None:
            raise GatewayRejected(f"{action.type} must be planned before its calls are known")
        return [_order(i, o) for i, o in params.orders.items()]
    if isinstance(params, DeploymentLimitsParams):
        body = {"model_info": {"id": params.deployment_id}, "litellm_params": params.limits()}
        return [AdminRequest("POST", "/model/update", body)]
    if isinstance(params, FallbacksParams):
        body = {
            "model": params.model,
            "fallback_models": params.fallback_models,
            "fallback_type": "general",
        }
        return [AdminRequest("POST", "/fallback", body)]
    if isinstance(params, ModelParams):
        return [AdminRequest("DELETE", f"/fallback/{params.model}", missing_ok=True)]
    raise GatewayRejected(f"action {action.type} is not supported by LiteLLM")


class LiteLLMAdmin:
    """LiteLLM proxy admin client. ``client`` is injectable (tests pass an httpx.MockTransport)."""

    name = "litellm"

    def __init__(
        self,
        base_url: str,
        master_key: str,
        *,
        client: httpx.Client | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # SecretStr: the key stays masked even in vars(), debuggers and traceback locals.
        self._master_key = SecretStr(master_key)
        self._timeout = timeout
        self._client = client if client is not None else httpx.Client(timeout=timeout)

    def __repr__(self) -> str:
        return f"LiteLLMAdmin(base_url={self.base_url!r})"

    def close(self) -> None:
        self._client.close()

    # -- HTTP --------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        missing_ok: bool = False,
    ) -> dict[str, Any] | None:
        """One call; returns the JSON object (None on a tolerated 404). Raises GatewayError."""
        what = f"{method} {path}"
        try:
            response = self._client.request(
                method,
                self.base_url + path,
                json=body,
                params=params,
                headers={"Authorization": f"Bearer {self._master_key.get_secret_value()}"},
                timeout=self._timeout,
            )
        except httpx.TimeoutException as exc:
            raise GatewayUnavailable(f"{what}: timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            # ``from None``: the transport exception may carry the request, headers included.
            raise GatewayUnavailable(f"{what}: {type(exc).__name__}: {exc}") from None
        status = response.status_code
        if status == 404 and missing_ok:
            return None
        if status >= 400:
            secret = self._master_key.get_secret_value()
            detail = response.text[:_MAX_DETAIL]
            if secret:
                detail = detail.replace(secret, "***")
            message = f"{what}: HTTP {status}: {detail}"
            if any(marker in detail for marker in _NO_DB):
                # A 500, but permanent: retrying cannot give the proxy a database.
                raise GatewayRejected(
                    f"{message} (the proxy runs without a database: use the litellm "
                    "config-file adapter for deployment orders and fallbacks)",
                    status=status,
                )
            if status >= 500 or status == 429:
                raise GatewayUnavailable(message, status=status)
            raise GatewayRejected(message, status=status)
        log.debug("litellm admin %s -> %s", what, status)
        if not response.content:
            return {}
        try:
            data = response.json()
        except ValueError:
            raise GatewayUnavailable(f"{what}: response is not JSON", status=status) from None
        return data if isinstance(data, dict) else {"data": data}

    # -- Ids ---------------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, str]) -> Mapping[str, Any]:
        return self._request("GET", path, params=params) or {}

    def key_token(self, key: str) -> str:
        return litellm_ids.resolve_key(key, self._get)

    def team_id(self, team: str) -> str:
        return litellm_ids.resolve_team(team, self._get)

    # -- StateReader -------------------------------------------------------------------------

    def key(self, key: str) -> Mapping[str, Any]:
        # The hash, not the key: a query string ends up in access logs (LiteLLM's advice).
        data = self._get("/key/info", {"key": self.key_token(key)})
        info = data.get("info")
        if not isinstance(info, dict):
            raise GatewayRejected(f"GET /key/info: no info for key {key!r}")
        return info

    def team(self, team: str) -> Mapping[str, Any]:
        data = self._get("/team/info", {"team_id": self.team_id(team)})
        info = data.get("team_info")
        if not isinstance(info, dict):
            raise GatewayRejected(f"GET /team/info: no team_info for team {team!r}")
        return info

    def deployments(self) -> list[DeploymentView]:
        data = self._request("GET", "/model/info") or {}
        items = data.get("data")
        if not isinstance(items, list):
            raise GatewayUnavailable("GET /model/info: response has no data list")
        views = []
        for dep in items:
            if not isinstance(dep, dict):
                continue
            params = dep.get("litellm_params") or {}
            info = dep.get("model_info") or {}
            if "id" not in info:
                continue
            order = params.get("order", info.get("order"))
            model = str(params.get("model", ""))
            views.append(
                DeploymentView(
                    id=str(info["id"]),
                    model_name=str(dep.get("model_name", "")),
                    provider=provider_of(model, params.get("custom_llm_provider")),
                    order=None if order is None else int(order),
                    model=served_model(model),
                    rpm=_int_or_none(params.get("rpm")),
                    tpm=_int_or_none(params.get("tpm")),
                )
            )
        return views

    def fallbacks(self, model: str) -> list[str]:
        data = self._request("GET", f"/fallback/{model}", missing_ok=True)
        if data is None:
            return []
        return [str(m) for m in data.get("fallback_models") or []]

    # -- GatewayAdmin ------------------------------------------------------------------------

    def plan(self, action: GatewayAction) -> ActionPlan:
        params = parse_params(action)
        orders = getattr(params, "orders", None) or {}
        if isinstance(params, DeploymentOrderParams):
            orders = {params.deployment_id: params.order}
        if any(o is None for o in orders.values()):
            raise GatewayRejected("LiteLLM cannot remove a deployment's order: give an integer")
        plan = planner.plan_action(action, self)
        inverse = plan.inverse
        if inverse is not None and inverse.type == "set_deployment_orders":
            # The previous state may hold deployments without an order; restore an equivalent.
            restored = restorable_orders(inverse.params["orders"], self.deployments())
            inverse = GatewayAction(type=inverse.type, params={"orders": restored})
            plan = plan.model_copy(update={"inverse": inverse})
        return plan

    def satisfied(self, action: GatewayAction) -> bool:
        return planner.satisfied(action, self)

    def apply(self, action: GatewayAction, *, key: str) -> ActionOutcome:
        # An unplanned failover is computed now (plan() normally fills its orders in).
        action = planner.concrete(action, self)
        log.info("litellm admin: applying %s (idempotency key %s)", action.type, key)
        requests = admin_requests(action, self)
        for req in requests:
            self._request(req.method, req.path, body=req.body, missing_ok=req.missing_ok)
        response: dict[str, Any] = {}
        params = parse_params(action)
        if isinstance(params, DeploymentOrdersParams | FailoverParams | GroupFailoverParams):
            response = {"updated": sorted(params.orders or {})}
        elif isinstance(params, KeysLimitsParams | WorkflowThrottleParams):
            response = {"updated": sorted(planner.keys_limits(action))}
        return ActionOutcome(ok=True, status=200, detail=describe(action), response=response)


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


__all__ = ["AdminRequest", "LiteLLMAdmin", "admin_requests", "lookup_requests"]
