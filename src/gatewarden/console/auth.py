"""Console authentication: the daemon's local token, a login cookie, and CSRF tokens.

* Every console URL but the login form needs the token: ``Authorization: Bearer`` (scripts) or
  the HttpOnly ``gatewarden_token`` cookie the login form sets (browsers); both are checked by
  :func:`gatewarden.web.bearer_ok`, the same check as every non-health endpoint.
* A browser session also gets a random ``gatewarden_session`` cookie; each form carries
  ``HMAC(token, session)`` as its CSRF token, so another site cannot forge a POST even though
  the browser would attach the cookies. Requests authenticated by the header need no CSRF
  token: a cross-site page cannot set that header.
* Cookies are HttpOnly and SameSite=Strict, scoped to the console's path.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from gatewarden.web import bearer_ok

TOKEN_COOKIE = "gatewarden_token"
SESSION_COOKIE = "gatewarden_session"
APPROVER_COOKIE = "gatewarden_approver"


class ConsoleAuth:
    def __init__(self, token: str | None, *, path: str) -> None:
        self._token = token or None
        self.path = path

    @property
    def configured(self) -> bool:
        return self._token is not None

    def authenticated(self, request: Request) -> bool:
        return bearer_ok(request, self._token)

    def token_matches(self, candidate: str) -> bool:
        if self._token is None or not candidate:
            return False
        return hmac.compare_digest(candidate.encode(), self._token.encode())

    @staticmethod
    def by_header(request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and bool(value.strip())

    # -- sessions and CSRF ----------------------------------------------------------------------
    @staticmethod
    def session_of(request: Request) -> str | None:
        session = request.cookies.get(SESSION_COOKIE, "")
        return session if 20 <= len(session) <= 100 else None

    @staticmethod
    def new_session() -> str:
        return secrets.token_urlsafe(32)

    def csrf_for(self, session: str) -> str:
        key = (self._token or "").encode()
        return hmac.new(key, b"csrf:" + session.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, request: Request, submitted: str) -> bool:
        if self.by_header(request):
            return True
        session = self.session_of(request)
        if session is None or not submitted or self._token is None:
            return False
        return hmac.compare_digest(self.csrf_for(session).encode(), submitted.encode())

    @staticmethod
    def same_origin(request: Request) -> bool:
        """A browser's POST names its origin; it must be this host (defence in depth)."""
        origin = request.headers.get("origin")
        if origin is None or origin == "null":
            return origin is None
        return urlsplit(origin).netloc == request.headers.get("host", "")

    # -- cookies --------------------------------------------------------------------------------
    def set_cookie(self, response: Response, name: str, value: str) -> None:
        response.set_cookie(
            name, value, path=self.path, httponly=True, samesite="strict", max_age=12 * 3600
        )

    def log_in(self, response: Response, session: str) -> None:
        assert self._token is not None
        self.set_cookie(response, TOKEN_COOKIE, self._token)
        self.set_cookie(response, SESSION_COOKIE, session)

    def log_out(self, response: Response) -> None:
        for name in (TOKEN_COOKIE, SESSION_COOKIE, APPROVER_COOKIE):
            response.delete_cookie(name, path=self.path, httponly=True, samesite="strict")


def safe_next(target: str | None, prefix: str) -> str:
    """Where to go after logging in: only a path inside the console (no open redirect)."""
    if not target or not target.startswith(prefix + "/") or "//" in target or "\\" in target:
        return prefix + "/"
    return target
