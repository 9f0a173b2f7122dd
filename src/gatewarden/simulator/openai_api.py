"""OpenAI-compatible inference on the simulator: ``POST /v1/chat/completions`` (and LiteLLM's
``/chat/completions`` alias) and ``GET /v1/models`` (and ``/models``).

Calls authenticate with a catalog key (``Authorization: Bearer sk-...`` or
``x-litellm-api-key``), looked up by its sha256 as LiteLLM stores keys. The master key may
list models but not call them: every record names a key alias, team and workflow, and the
master key has none.

Latency is simulated, not waited for: the simulator usually runs on a virtual or accelerated
clock, where sleeping for a simulated duration would be meaningless. The answer returns at
once; the simulated figures are in the request-log record and in response headers:
``x-litellm-response-duration-ms`` (arrival to answer across every hop),
``x-gatewarden-sim-ttft-ms`` (the serving call's time to first token, streaming only) and
``x-gatewarden-sim-ts`` (the sim time the call arrived).

Failures answer with the status of the hop the client gets, the last one: the status the
request log and ``litellm_proxy_failed_requests_metric`` record for the call. (A real LiteLLM
re-raises the *first* group's error when its whole fallback chain fails.) Requests rejected
before routing (no or unknown key, malformed body, unknown model) leave no record, as in
LiteLLM, where they fail before a call id exists.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from gatewarden.simulator.admin import ApiError, read_json
from gatewarden.simulator.client_calls import ChatCall, Outcome, client_calls
from gatewarden.simulator.openai_schema import (
    ChatRequest,
    answer_words,
    completion_body,
    error_body,
    models_body,
    stream_events,
)
from gatewarden.simulator.sim import Simulator

#: LiteLLM tells clients to wait out its one-minute rate-limit window. Only the gateway's own
#: 429s carry it, which is how a client tells them from a provider's.
_RETRY_AFTER_S = "60"
#: The router's ``error`` for a call the proxy answered itself -> (error type, message).
_GATEWAY_ERRORS: dict[str, tuple[str, str]] = {
    "key_blocked": (
        "auth_error",
        "Authentication Error - Key is blocked. Update via `/key/unblock` if you're admin.",
    ),
    "team_blocked": (
        "auth_error",
        "Authentication Error - Team={team} is blocked. Update via `/team/unblock` if you're "
        "admin.",
    ),
    "budget_exceeded": (
        "budget_exceeded",
        "Budget has been exceeded! Key={alias} or its team={team} reached its max_budget.",
    ),
    "rate_limited": (
        "throttling_error",
        "Rate limit exceeded for api_key: {hashed}. The rpm/tpm limit of the key or of its "
        "team={team} is reached for the current minute.",
    ),
    "router_rate_limit": (
        "throttling_error",
        "No deployments available for selected model: every deployment of model_group={group} "
        "is at its rpm/tpm limit.",
    ),
}
#: Error type of a gateway error code this module does not know yet.
_KIND_BY_STATUS = {400: "bad_request_error", 401: "auth_error", 429: "throttling_error"}


class OpenAIError(Exception):
    """An error answer in OpenAI's ``{"error": {...}}`` shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.param = param
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body = error_body(self.status, str(self), kind=self.kind, param=self.param)
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    return token or request.headers.get("x-litellm-api-key") or None


class OpenAIApi:
    """Inference handlers bound to one simulator."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.calls = client_calls(sim)
        self._aliases = {k.hashed: k.alias for k in sim.catalog.keys}
        self._hashed = {k.alias: k.hashed for k in sim.catalog.keys}
        self._groups = [g.name for g in sim.catalog.model_groups]

    # -- auth ---------------------------------------------------------------------------------

    def _authenticate(self, request: Request) -> str | None:
        """The key alias of the caller, None for the master key; raises a 401 otherwise."""
        token = _presented_key(request)
        if token is None:
            raise OpenAIError(401, "Authentication Error, No api key passed in.", kind="auth_error")
        if token == self.sim.scenario.master_key:
            return None
        alias = self._aliases.get(hashlib.sha256(token.encode()).hexdigest())
        if alias is None:
            raise OpenAIError(
                401,
                f"Authentication Error, Invalid proxy server token passed. Received API Key = "
                f"{token[:6]}...{token[-4:]}. Unable to find token in the simulator's catalog.",
                kind="token_not_found_in_db",
                param="key",
            )
        return alias

    def _virtual_key(self, request: Request) -> str:
        alias = self._authenticate(request)
        if alias is None:
            raise OpenAIError(
                401,
                "Authentication Error, the simulator's master key has no key alias, team or "
                "workflow to log a call under: call with one of the catalog's keys.",
                kind="auth_error",
            )
        return alias

    # -- handlers -----------------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        try:
            self._authenticate(request)
        except OpenAIError as err:
            return err.response()
        return JSONResponse(models_body(self._groups))

    async def chat_completions(self, request: Request) -> Response:
        try:
            alias = self._virtual_key(request)
            chat = await self._request(request)
            outcome = self.calls.execute(
                ChatCall(
                    alias=alias,
                    group=chat.model,
                    stream=chat.stream,
                    input_tokens=chat.prompt_tokens(),
                    max_output_tokens=chat.output_cap,
                    prompt_hash=chat.prompt_hash(),
                    session_id=chat.session_id,
                    trace_id=chat.trace_id,
                )
            )
            if not outcome.ok:
                raise self._failure(alias, outcome)
        except OpenAIError as err:
            return err.response()
        return self._success(chat, outcome)

    async def _request(self, request: Request) -> ChatRequest:
        try:
            body = await read_json(request)
        except ApiError as err:
            raise OpenAIError(
                400, str(err), kind="bad_request_error", param="request_body"
            ) from err
        try:
            chat = ChatRequest.model_validate(body)
        except ValidationError as exc:
            problems = exc.errors()
            message = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in problems
            )
            param = ".".join(str(p) for p in problems[0]["loc"]) or None
            raise OpenAIError(400, message, kind="invalid_request_error", param=param) from exc
        if chat.model not in self._groups:
            raise OpenAIError(
                400,
                f"/chat/completions: Invalid model name passed in model={chat.model}. "
                "Call `/v1/models` to view available models for your key.",
                kind="invalid_request_error",
                param="model",
            )
        return chat

    # -- answers ------------------------------------------------------------------------------

    def _headers(self, outcome: Outcome) -> dict[str, str]:
        final = outcome.final
        headers = {
            "x-litellm-call-id": str(final["request_id"]),
            "x-litellm-response-duration-ms": str(outcome.duration_ms),
            "x-gatewarden-sim-ts": str(outcome.started),
        }
        if outcome.ok:
            # LiteLLM sends these on success only.
            headers |= {
                "x-litellm-model-group": outcome.groups[-1],
                "x-litellm-model-id": outcome.deployments[-1] or "",
                "x-litellm-attempted-fallbacks": str(len(outcome.records) - 1),
                "x-litellm-response-cost": str(final["cost_usd"]),
            }
        if final["ttft_ms"] is not None:
            headers["x-gatewarden-sim-ttft-ms"] = str(final["ttft_ms"])
        return headers

    def _success(self, chat: ChatRequest, outcome: Outcome) -> Response:
        final = outcome.final
        words = answer_words(int(final["output_tokens"]))
        cap = chat.output_cap
        finish = "length" if cap is not None and len(words) >= cap else "stop"
        common: dict[str, Any] = {
            "call_id": str(final["request_id"]),
            "created": int(outcome.started),
            "model": str(final["model"]),
            "words": words,
            "finish": finish,
            "prompt": int(final["input_tokens"]),
        }
        headers = self._headers(outcome)
        if chat.stream:
            events = stream_events(**common, include_usage=chat.include_usage)
            return StreamingResponse(
                iter(events),
                media_type="text/event-stream",
                headers=headers | {"cache-control": "no-cache"},
            )
        return JSONResponse(completion_body(**common), headers=headers)

    def _failure(self, alias: str, outcome: Outcome) -> OpenAIError:
        """The error the client gets for a call whose last hop failed, worded as LiteLLM's."""
        final = outcome.final
        status, error = int(final["status"]), str(final["error"])
        headers = self._headers(outcome)
        if final["provider"] == "gateway":
            # The proxy answered itself. The record does not say whether the key's or the
            # team's limit was hit, so the wording names both rather than guess.
            kind, template = _GATEWAY_ERRORS.get(error, ("", ""))
            if not kind:
                kind = _KIND_BY_STATUS.get(status, "api_error")
                template = "Request rejected by the gateway: {error}"
            message = template.format(
                alias=alias,
                team=final["team"],
                hashed=self._hashed[alias][:12],
                group=outcome.groups[-1],
                error=error,
            )
            if status == 429:
                headers["retry-after"] = _RETRY_AFTER_S
            return OpenAIError(status, message, kind=kind, headers=headers)
        # A provider's error, e.g. "Openai.RateLimitError": name both layers, as LiteLLM does.
        prefix, _, exc = error.partition(".")
        fallbacks = list(outcome.groups[1:]) or None
        return OpenAIError(
            status,
            f"litellm.{exc}: {exc}: {prefix}Exception - simulated {status} from "
            f"{final['provider']}/{final['model']}. Received Model Group="
            f"{final['requested_model']}\nAvailable Model Group Fallbacks={fallbacks}",
            kind="throttling_error" if status == 429 else "api_error",
            headers=headers,
        )
