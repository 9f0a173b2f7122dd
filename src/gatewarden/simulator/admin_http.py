"""What every simulated admin endpoint shares: LiteLLM's error body, JSON body and parameter
checks. Bad input gets a 4xx in LiteLLM's ``{"error": {...}}`` shape, never a 500."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

#: LiteLLM's ``is_valid_api_key``: a key (``sk-...``) or its sha256, 3 to 100 characters
_KEY_FORMAT = re.compile(r"sk-[A-Za-z0-9_-]+|[a-fA-F0-9]{64}")


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


def optional_int(body: dict[str, Any], name: str) -> int | None:
    value = body[name]
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ApiError(
            400,
            f"{name} must be a non-negative integer or null",
            kind="bad_request_error",
            param=name,
        )
    return value


def optional_float(body: dict[str, Any], name: str) -> float | None:
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


def string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ApiError(
            400, f"{name} must be a non-empty string", kind="bad_request_error", param=name
        )
    return value


def key_format(key: str) -> str:
    """``key`` if LiteLLM's ``/key/block`` would accept its format (an alias is refused)."""
    if not 3 <= len(key) <= 100 or _KEY_FORMAT.fullmatch(key) is None:
        raise ApiError(400, "Invalid key format.", kind="bad_request_error", param="key")
    return key


def flag(request: Request, name: str) -> bool:
    """A boolean query parameter the way FastAPI parses one (422 on anything else)."""
    raw = request.query_params.get(name, "false").lower()
    if raw in ("true", "1", "yes", "on"):
        return True
    if raw in ("false", "0", "no", "off"):
        return False
    raise ApiError(422, f"{name}: not a valid boolean", kind="bad_request_error", param=name)


def positive_int(request: Request, name: str, default: int, maximum: int) -> int:
    """An integer query parameter in 1..maximum (FastAPI answers 422 outside it)."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        message = f"{name}: not an integer"
        raise ApiError(422, message, kind="bad_request_error", param=name) from None
    if not 1 <= value <= maximum:
        raise ApiError(422, f"{name}: must be 1..{maximum}", kind="bad_request_error", param=name)
    return value
