"""Bearer-token check for the daemon's non-health endpoints (console, admin, API)."""

from __future__ import annotations

import hmac

from starlette.requests import Request


def bearer_ok(request: Request, token: str | None) -> bool:
    """True when the request carries ``Authorization: Bearer <token>`` (constant-time compare).
    With no token configured, nothing but health endpoints is served: always False."""
    if not token:
        return False
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value:
        cookie = request.cookies.get("gatewarden_token", "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), token.encode())
    return hmac.compare_digest(value.strip().encode(), token.encode())
