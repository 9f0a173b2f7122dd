"""Console authentication: who holds which token, a login cookie, and CSRF tokens.

* Identity is the credential. Each person gets their own console token (``console.users`` in
  the daemon config: user id -> token from env or file), and a decision is recorded as that
  token's user, never as an id typed into a form, so one token cannot meet a quorum alone.
  The daemon's shared ``web.token`` still opens the console, **view-only**.
* Every console URL but the login form needs a token: ``Authorization: Bearer`` (scripts) or
  the HttpOnly ``gatewarden_token`` cookie the login form sets (browsers). Tokens are compared
  in constant time, all of them, so the time taken says nothing about which one nearly matched.
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
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

TOKEN_COOKIE = "gatewarden_token"
SESSION_COOKIE = "gatewarden_session"
#: Set by earlier versions (the approver id typed into the form); deleted on logout.
_LEGACY_COOKIES = ("gatewarden_approver",)


@dataclass(frozen=True)
class Principal:
    """Who a request is: a console user, or the holder of the shared view-only token."""

    user: str | None
    token: str

    @property
    def can_decide(self) -> bool:
        return self.user is not None

    @property
    def label(self) -> str:
        return self.user if self.user is not None else "view-only"

    def __repr__(self) -> str:  # never the token
        return f"Principal(user={self.user!r})"


class ConsoleAuth:
    def __init__(
        self, token: str | None, *, path: str, users: Mapping[str, str] | None = None
    ) -> None:
        """``token``: the shared, view-only token; ``users``: user id -> that user's token."""
        self.path = path
        self._principals: list[Principal] = []
        if token:
            self._principals.append(Principal(None, token))
        for user, user_token in (users or {}).items():
            if not user_token:
                raise ValueError(f"console user {user!r} has an empty token")
            self._principals.append(Principal(user, user_token))
        tokens = [p.token for p in self._principals]
        if len(set(tokens)) != len(tokens):
            raise ValueError("two console identities share a token")

    def __repr__(self) -> str:
        users = sorted(p.user for p in self._principals if p.user is not None)
        return f"ConsoleAuth(path={self.path!r}, users={users})"

    @property
    def configured(self) -> bool:
        return bool(self._principals)

    def principal_for(self, candidate: str) -> Principal | None:
        """The identity holding ``candidate`` (every token compared, in constant time)."""
        if not candidate:
            return None
        found = None
        for principal in self._principals:
            if hmac.compare_digest(candidate.encode(), principal.token.encode()):
                found = principal
        return found

    def principal(self, request: Request) -> Principal | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return self.principal_for(value.strip())
        return self.principal_for(request.cookies.get(TOKEN_COOKIE, ""))

    def authenticated(self, request: Request) -> bool:
        return self.principal(request) is not None

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

    @staticmethod
    def csrf_for(principal: Principal | None, session: str) -> str:
        # Keyed by the holder's token: a form rendered for one identity is no good to another.
        key = principal.token.encode() if principal is not None else b""
        return hmac.new(key, b"csrf:" + session.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, request: Request, submitted: str) -> bool:
        if self.by_header(request):
            return True
        principal = self.principal(request)
        session = self.session_of(request)
        if session is None or not submitted or principal is None:
            return False
        expected = self.csrf_for(principal, session)
        return hmac.compare_digest(expected.encode(), submitted.encode())

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

    def log_in(self, response: Response, principal: Principal, session: str) -> None:
        self.set_cookie(response, TOKEN_COOKIE, principal.token)
        self.set_cookie(response, SESSION_COOKIE, session)

    def log_out(self, response: Response) -> None:
        for name in (TOKEN_COOKIE, SESSION_COOKIE, *_LEGACY_COOKIES):
            response.delete_cookie(name, path=self.path, httponly=True, samesite="strict")


def safe_next(target: str | None, prefix: str) -> str:
    """Where to go after logging in: only a path inside the console (no open redirect)."""
    if not target or not target.startswith(prefix + "/") or "//" in target or "\\" in target:
        return prefix + "/"
    return target
