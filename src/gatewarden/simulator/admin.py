"""LiteLLM-compatible admin endpoints: keys, deployments, fallbacks.

Shapes follow the LiteLLM proxy (``/key/block``, ``/key/update``, ``/key/info``,
``/model/info``, ``/model/update``, ``/fallback``). Every call, authorised or not, is recorded
with its sim time so tests and the demo can assert on what the remediation actually did.
Bad input gets a 4xx JSON error in LiteLLM's ``{"error": {...}}`` shape, never a 500.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gatewarden.simulator.gateway_state import AdminCall, DeploymentSettings
from gatewarden.simulator.sim import Simulator

Handler = Callable[[Request], Awaitable[Response]]


class ApiError(Exception):
    """A 4xx answer with a LiteLLM-style error body."""

    def __init__(self, status: int, message: str, *, kind: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.param = param

    def response(self) -> JSONResponse:
        return error_response(self.status, str(self), kind=self.kind, param=self.param)


def error_response(
    status: int, message: str, *, kind: str, param: str | None = None
) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": str(param), "code": str(status)}}
    return JSONResponse(body, status_code=status)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


async def read_json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"null", parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad JSON, bad UTF-8, NaN/Infinity and int literals over 4300
        # digits; RecursionError, nesting deeper than the interpreter allows.
        raise ApiError(400, f"malformed JSON body: {exc}", kind="bad_request_error") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "expected a JSON object body", kind="bad_request_error")
    return body


def _optional_int(body: dict[str, Any], name: str) -> int | None:
    value = body[name]
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ApiError(
            400,
            f"{name} must be a non-negative integer or null",
            kind="bad_request_error",
            param=name,
        )
    return value


def _optional_float(body: dict[str, Any], name: str) -> float | None:
    value = body[name]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ApiError(
            400,
            f"{name} must be a non-negative number or null",
            kind="bad_request_error",
            param=name,
        )
    return float(value)


def _string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ApiError(
            400, f"{name} must be a non-empty string", kind="bad_request_error", param=name
        )
    return value


class AdminApi:
    """Handlers bound to one simulator; ``wrap`` adds auth, recording and error mapping."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.master_key = sim.scenario.master_key

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

    def _alias(self, key: str) -> str:
        alias = self.sim.state.resolve_key(key)
        if alias is None:
            raise ApiError(404, f"Key not found: {key[:12]}...", kind="not_found", param="key")
        return alias

    # -- keys ---------------------------------------------------------------------------------

    async def key_block(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        return self._set_blocked(_string(body, "key"), blocked=True)

    async def key_unblock(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        return self._set_blocked(_string(body, "key"), blocked=False)

    def _set_blocked(self, key: str, *, blocked: bool) -> dict[str, Any]:
        updated = self.sim.state.update_key(self._alias(key), blocked=blocked)
        return {
            "token": updated.hashed,
            "key_alias": updated.alias,
            "team_id": updated.team,
            "blocked": updated.blocked,
        }

    async def key_update(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        key = _string(body, "key")
        alias = self._alias(key)
        changes: dict[str, Any] = {}
        for name in ("rpm_limit", "tpm_limit"):
            if name in body:
                changes[name] = _optional_int(body, name)
        if "max_budget" in body:
            changes["max_budget"] = _optional_float(body, "max_budget")
        updated = self.sim.state.update_key(alias, **changes)
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
        settings = self.sim.state.key(self._alias(key))
        spec = next(k for k in self.sim.catalog.keys if k.alias == settings.alias)
        info = {
            "key_name": f"sk-...{spec.token[-4:]}",
            "key_alias": settings.alias,
            "token": settings.hashed,
            "team_id": settings.team,
            "blocked": settings.blocked,
            "rpm_limit": settings.rpm_limit,
            "tpm_limit": settings.tpm_limit,
            "max_budget": settings.max_budget,
            "spend": round(self.sim.spend(settings.alias), 6),
            "models": [],
            "metadata": {"workflow": spec.workflow},
        }
        return {"key": key, "info": info}

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
            order = _optional_int(params, "order")
            if order is None:
                raise ApiError(
                    400, "order must be an integer", kind="bad_request_error", param="order"
                )
            changes["order"] = order
        for name in ("rpm", "tpm"):
            if name in params:
                changes[name] = _optional_int(params, name)
        updated = self.sim.state.update_deployment(current.id, **changes)
        return self._model_entry(updated)

    # -- fallbacks ----------------------------------------------------------------------------

    def _group(self, name: str, param: str) -> str:
        if name not in self.sim.state.groups():
            raise ApiError(404, f"Model {name} not found on proxy", kind="not_found", param=param)
        return name

    async def fallback_create(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        model = self._group(_string(body, "model"), "model")
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
