"""GatewayAdmin over the LiteLLM proxy admin API (``Authorization: Bearer <master key>``).

Every action is a setter, so applying it twice leaves the gateway as applying it once: that is
what makes ``apply(..., key=...)`` idempotent even though LiteLLM has no idempotency header.
The master key is held privately and never logged, put in an error message or shown by repr.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from pydantic import SecretStr

from gatewarden.errors import GatewayRejected, GatewayUnavailable
from gatewarden.gateways.actions import (
    DeploymentOrderParams,
    DeploymentOrdersParams,
    DeploymentView,
    FailoverParams,
    FallbacksParams,
    KeyLimitsParams,
    KeyParams,
    ModelParams,
    describe,
    parse_params,
    plan_failover,
    provider_of,
)
from gatewarden.models import ActionOutcome, ActionPlan, GatewayAction

log = logging.getLogger(__name__)

_MAX_DETAIL = 300


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

    def _key_info(self, key: str) -> dict[str, Any]:
        data = self._request("GET", "/key/info", params={"key": key}) or {}
        info = data.get("info")
        if not isinstance(info, dict):
            raise GatewayRejected(f"GET /key/info: no info for key {key!r}")
        return info

    def _deployments(self) -> list[dict[str, Any]]:
        data = self._request("GET", "/model/info") or {}
        items = data.get("data")
        if not isinstance(items, list):
            raise GatewayUnavailable("GET /model/info: response has no data list")
        return [d for d in items if isinstance(d, dict)]

    def _views(self) -> list[DeploymentView]:
        views = []
        for dep in self._deployments():
            params = dep.get("litellm_params") or {}
            info = dep.get("model_info") or {}
            if "id" not in info:
                continue
            order = params.get("order", info.get("order"))
            views.append(
                DeploymentView(
                    id=str(info["id"]),
                    model_name=str(dep.get("model_name", "")),
                    provider=provider_of(
                        str(params.get("model", "")), params.get("custom_llm_provider")
                    ),
                    order=None if order is None else int(order),
                )
            )
        return views

    def _fallbacks(self, model: str) -> list[str]:
        data = self._request("GET", f"/fallback/{model}", missing_ok=True)
        if data is None:
            return []
        return [str(m) for m in data.get("fallback_models") or []]

    def _set_order(self, deployment_id: str, order: int | None) -> None:
        body = {"model_info": {"id": deployment_id}, "litellm_params": {"order": order}}
        self._request("POST", "/model/update", body=body)

    # -- GatewayAdmin ------------------------------------------------------------------------

    def plan(self, action: GatewayAction) -> ActionPlan:
        params = parse_params(action)
        inverse: GatewayAction | None
        if isinstance(params, KeyParams):
            blocked = bool(self._key_info(params.key).get("blocked"))
            wants_blocked = action.type == "block_key"
            if blocked == wants_blocked:
                state = "blocked" if blocked else "not blocked"
                return ActionPlan(action=action, inverse=None, preview=f"key is already {state}")
            undo = "unblock_key" if wants_blocked else "block_key"
            inverse = GatewayAction(type=undo, params={"key": params.key})
            return ActionPlan(action=action, inverse=inverse, preview=f"will {describe(action)}")
        if isinstance(params, KeyLimitsParams):
            info = self._key_info(params.key)
            before = {f: info.get(f) for f in params.limits()}
            inverse = GatewayAction(type="update_key_limits", params={"key": params.key, **before})
            return ActionPlan(action=action, inverse=inverse, preview=f"will {describe(action)}")
        if isinstance(params, DeploymentOrderParams | DeploymentOrdersParams):
            wanted = (
                {params.deployment_id: params.order}
                if isinstance(params, DeploymentOrderParams)
                else params.orders
            )
            current = {v.id: v.order for v in self._views()}
            unknown = sorted(set(wanted) - set(current))
            if unknown:
                raise GatewayRejected(f"unknown deployment(s): {', '.join(unknown)}")
            inverse = GatewayAction(
                type="set_deployment_orders", params={"orders": {i: current[i] for i in wanted}}
            )
            return ActionPlan(action=action, inverse=inverse, preview=f"will {describe(action)}")
        if isinstance(params, FailoverParams):
            plan = plan_failover(self._views(), params.provider)
            if plan is None:
                raise GatewayRejected(
                    f"no model group has {params.provider} first and another provider to use"
                )
            concrete = plan.action()
            inverse = plan.inverse()
            return ActionPlan(action=concrete, inverse=inverse, preview=plan.preview())
        if isinstance(params, FallbacksParams | ModelParams):
            before_fb = self._fallbacks(params.model)
            if before_fb:
                inverse = GatewayAction(
                    type="set_fallbacks",
                    params={"model": params.model, "fallback_models": before_fb},
                )
            elif isinstance(params, FallbacksParams):
                inverse = GatewayAction(type="delete_fallbacks", params={"model": params.model})
            else:
                inverse = None
            return ActionPlan(action=action, inverse=inverse, preview=f"will {describe(action)}")
        raise GatewayRejected(f"action {action.type} is not supported by LiteLLM")

    def apply(self, action: GatewayAction, *, key: str) -> ActionOutcome:
        params = parse_params(action)
        log.info("litellm admin: applying %s (idempotency key %s)", action.type, key)
        if isinstance(params, KeyParams):
            path = "/key/block" if action.type == "block_key" else "/key/unblock"
            self._request("POST", path, body={"key": params.key})
            return ActionOutcome(ok=True, status=200, detail=describe(action))
        if isinstance(params, KeyLimitsParams):
            body = {"key": params.key, **params.limits()}
            self._request("POST", "/key/update", body=body)
            return ActionOutcome(ok=True, status=200, detail=describe(action))
        if isinstance(params, DeploymentOrderParams):
            self._set_order(params.deployment_id, params.order)
            return ActionOutcome(ok=True, status=200, detail=describe(action))
        if isinstance(params, DeploymentOrdersParams | FailoverParams):
            orders = params.orders
            if orders is None:
                # An unplanned failover: compute it now (plan() normally fills ``orders`` in).
                plan = plan_failover(self._views(), getattr(params, "provider", ""))
                orders = plan.new_orders if plan else {}
            for dep_id, order in orders.items():
                self._set_order(dep_id, order)
            return ActionOutcome(
                ok=True, status=200, detail=describe(action), response={"updated": sorted(orders)}
            )
        if isinstance(params, FallbacksParams):
            body = {
                "model": params.model,
                "fallback_models": params.fallback_models,
                "fallback_type": "general",
            }
            self._request("POST", "/fallback", body=body)
            return ActionOutcome(ok=True, status=200, detail=describe(action))
        if isinstance(params, ModelParams):
            # Already absent is the state we want: a 404 is success for a delete.
            self._request("DELETE", f"/fallback/{params.model}", missing_ok=True)
            return ActionOutcome(ok=True, status=200, detail=describe(action))
        raise GatewayRejected(f"action {action.type} is not supported by LiteLLM")


__all__ = ["LiteLLMAdmin"]
