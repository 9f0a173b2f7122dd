"""LiteLLM-compatible admin endpoints: keys and teams (:mod:`.admin_keys`), deployments,
fallbacks.

Shapes follow the LiteLLM proxy (``/key/block``, ``/key/update``, ``/key/info``, ``/key/list``,
``/team/info``, ``/v2/team/list``, ``/team/update``, ``/model/info``, ``/model/update``,
``/fallback``). Every call, authorised or not, is recorded with its sim time so tests and the
demo can assert on what the remediation actually did. Bad input gets a 4xx JSON error in
LiteLLM's ``{"error": {...}}`` shape, never a 500.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gatewarden.simulator.admin_http import (
    ApiError,
    error_response,
    optional_int,
    read_json,
    string,
)
from gatewarden.simulator.admin_keys import KeyEndpoints
from gatewarden.simulator.gateway_state import AdminCall, DeploymentSettings
from gatewarden.simulator.sim import Simulator

Handler = Callable[[Request], Awaitable[Response]]


class AdminApi(KeyEndpoints):
    """Handlers bound to one simulator; ``wrap`` adds auth, recording and error mapping."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.master_key = sim.scenario.master_key

    def routes(self) -> list[Route]:
        """Every admin endpoint, wrapped: what the server mounts."""
        table: list[tuple[str, Callable[[Request, Any], Awaitable[Any]], str]] = [
            ("/key/block", self.key_block, "POST"),
            ("/key/unblock", self.key_unblock, "POST"),
            ("/key/update", self.key_update, "POST"),
            ("/key/info", self.key_info, "GET"),
            ("/key/list", self.key_list, "GET"),
            ("/team/info", self.team_info, "GET"),
            ("/v2/team/list", self.team_list, "GET"),
            ("/team/update", self.team_update, "POST"),
            ("/model/info", self.model_info, "GET"),
            ("/model/update", self.model_update, "POST"),
            ("/fallback", self.fallback_create, "POST"),
            ("/fallback/{model:path}", self.fallback_get, "GET"),
            ("/fallback/{model:path}", self.fallback_delete, "DELETE"),
        ]
        return [Route(path, self.wrap(handler), methods=[m]) for path, handler, m in table]

    def wrap(self, handler: Callable[[Request, Any], Awaitable[Any]]) -> Handler:
        async def endpoint(request: Request) -> Response:
            body: Any = None
            try:
                if request.method in ("POST", "PUT", "PATCH"):
                    body = await read_json(request)
                if not self._authorised(request):
                    raise ApiError(
                        401,
                        "Authentication Error, Invalid proxy server token passed. "
                        "Received API Key = invalid",
                        kind="auth_error",
                    )
                with self.sim.lock:
                    # Catch traffic up to now first: the change applies from this instant on.
                    self.sim.sync()
                    result = await handler(request, body)
                response: Response = JSONResponse(result)
            except ApiError as err:
                response = err.response()
            self._record(request, body, response.status_code)
            return response

        return endpoint

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        token = token or request.headers.get("x-litellm-api-key")
        return token == self.master_key

    def _record(self, request: Request, body: Any, status: int) -> None:
        path = request.url.path
        if request.url.query:
            path = f"{path}?{request.url.query}"
        self.sim.state.record_call(
            AdminCall(
                ts=self.sim.sync(), method=request.method, path=path, body=body, status=status
            )
        )

    # -- deployments --------------------------------------------------------------------------

    def _model_entry(self, d: DeploymentSettings) -> dict[str, Any]:
        spec = self.sim.catalog.deployment(d.id)
        params: dict[str, Any] = {
            "model": spec.litellm_model,
            "api_base": self.sim.catalog.provider(spec.provider).api_base,
            "order": d.order,
        }
        if d.rpm is not None:
            params["rpm"] = d.rpm
        if d.tpm is not None:
            params["tpm"] = d.tpm
        return {
            "model_name": d.group,
            "litellm_params": params,
            "model_info": {"id": d.id, "db_model": False},
        }

    async def model_info(self, request: Request, body: None) -> dict[str, Any]:
        return {"data": [self._model_entry(d) for d in self.sim.state.deployments()]}

    async def model_update(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        info = body.get("model_info")
        if not isinstance(info, dict) or not isinstance(info.get("id"), str):
            raise ApiError(
                400, "model_info.id is required", kind="bad_request_error", param="model_info"
            )
        current = self.sim.state.deployment(info["id"])
        if current is None:
            raise ApiError(
                404,
                f"Model with id={info['id']} not found in db",
                kind="not_found",
                param="model_info.id",
            )
        params = body.get("litellm_params") or {}
        if not isinstance(params, dict):
            raise ApiError(
                400,
                "litellm_params must be an object",
                kind="bad_request_error",
                param="litellm_params",
            )
        changes: dict[str, Any] = {}
        if "order" in params:
            order = optional_int(params, "order")
            if order is None:
                raise ApiError(
                    400, "order must be an integer", kind="bad_request_error", param="order"
                )
            changes["order"] = order
        for name in ("rpm", "tpm"):
            if name in params:
                changes[name] = optional_int(params, name)
        updated = self.sim.state.update_deployment(current.id, **changes)
        return self._model_entry(updated)

    # -- fallbacks ----------------------------------------------------------------------------

    def _group(self, name: str, param: str) -> str:
        if name not in self.sim.state.groups():
            raise ApiError(404, f"Model {name} not found on proxy", kind="not_found", param=param)
        return name

    async def fallback_create(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        model = self._group(string(body, "model"), "model")
        fallback_type = body.get("fallback_type", "general")
        if fallback_type != "general":
            raise ApiError(
                400,
                "only fallback_type 'general' is simulated",
                kind="bad_request_error",
                param="fallback_type",
            )
        models = body.get("fallback_models")
        if (
            not isinstance(models, list)
            or not models
            or not all(isinstance(m, str) for m in models)
        ):
            raise ApiError(
                400,
                "fallback_models must be a non-empty list of model names",
                kind="bad_request_error",
                param="fallback_models",
            )
        if model in models:
            raise ApiError(
                400,
                "a model cannot fall back to itself",
                kind="bad_request_error",
                param="fallback_models",
            )
        for m in models:
            self._group(m, "fallback_models")
        existed = self.sim.state.fallbacks(model) is not None
        self.sim.state.set_fallbacks(model, models)
        verb = "updated" if existed else "created"
        return {
            "model": model,
            "fallback_models": models,
            "fallback_type": "general",
            "message": f"Fallback configuration {verb} successfully",
        }

    def _existing(self, request: Request) -> tuple[str, list[str]]:
        model = str(request.path_params["model"])
        fallbacks = self.sim.state.fallbacks(model)
        if not fallbacks:
            raise ApiError(
                404, f"No fallbacks configured for model {model}", kind="not_found", param="model"
            )
        return model, fallbacks

    async def fallback_get(self, request: Request, body: None) -> dict[str, Any]:
        model, fallbacks = self._existing(request)
        return {"model": model, "fallback_models": fallbacks, "fallback_type": "general"}

    async def fallback_delete(self, request: Request, body: None) -> dict[str, Any]:
        model, _ = self._existing(request)
        self.sim.state.set_fallbacks(model, None)
        return {
            "model": model,
            "fallback_type": "general",
            "message": "Fallback configuration deleted successfully",
        }


__all__ = ["AdminApi", "ApiError", "error_response", "read_json"]
