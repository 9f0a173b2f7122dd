"""The generic ``http`` action: one templated request to any gateway (Kong, Envoy, Portkey, an
in-house admin API), with the inverse request the playbook declares.

The engine renders a step's templates (``{{ incident.scope.api_key }}``) before the action is
persisted; ``{{ secrets.NAME }}`` renders back to itself there, so the persisted action never
holds a secret. This adapter substitutes secrets at call time, only in header values, and only
from the explicit allow-list it was given (``secrets: {kong_token: {env: KONG_TOKEN}}`` in the
config): a playbook can never read an arbitrary environment variable. Requests may only go to
``allowed_hosts``, so neither a typo nor an odd scope value can send a credential elsewhere.

A generic endpoint's current state cannot be read, so ``plan`` returns the declared inverse and
``satisfied`` is always False. Each request carries ``Idempotency-Key: <key>``; declare setters
(PUT with the full desired state) where the API has them, so a retry is harmless either way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from gatewarden.errors import GatewayRejected, GatewayUnavailable
from gatewarden.gateways.actions import SECRET_REF, HttpParams, HttpRequestSpec, parse_params
from gatewarden.models import ActionOutcome, ActionPlan, GatewayAction

log = logging.getLogger(__name__)

_MAX_DETAIL = 300
MASK = "***"


class HttpActionGateway:
    """GatewayAdmin for ``http`` actions; ``client`` is injectable (httpx.MockTransport)."""

    name = "http"

    def __init__(
        self,
        *,
        secrets: Mapping[str, str] | None = None,
        allowed_hosts: Sequence[str] = (),
        client: httpx.Client | None = None,
        timeout: float = 5.0,
    ) -> None:
        self._secrets = {name: SecretStr(value) for name, value in (secrets or {}).items()}
        self.allowed_hosts = frozenset(h.lower() for h in allowed_hosts)
        self._client = client if client is not None else httpx.Client(timeout=timeout)
        self._timeout = timeout
        self._outcomes: dict[str, ActionOutcome] = {}

    def __repr__(self) -> str:
        hosts = sorted(self.allowed_hosts)
        return f"HttpActionGateway(secrets={sorted(self._secrets)}, hosts={hosts})"

    def close(self) -> None:
        self._client.close()

    # -- checks and rendering ----------------------------------------------------------------

    def _params(self, action: GatewayAction) -> HttpParams:
        params = parse_params(action)
        if not isinstance(params, HttpParams):
            raise GatewayRejected(f"the http adapter only runs http actions, not {action.type}")
        for spec in (params.request, params.inverse):
            if spec is not None:
                self._check(spec)
        return params

    def _check(self, spec: HttpRequestSpec) -> None:
        parts = urlsplit(spec.url)
        host = (parts.hostname or "").lower()
        netloc = f"{host}:{parts.port}" if parts.port else host
        if host not in self.allowed_hosts and netloc not in self.allowed_hosts:
            allowed = ", ".join(sorted(self.allowed_hosts)) or "none configured"
            raise GatewayRejected(f"http action to {host!r} refused: allowed hosts: {allowed}")
        for name, value in spec.headers.items():
            for ref in SECRET_REF.findall(value):
                if ref not in self._secrets:
                    known = ", ".join(sorted(self._secrets)) or "none configured"
                    raise GatewayRejected(
                        f"header {name} names unknown secret {ref!r} (configured: {known})"
                    )
            rest = SECRET_REF.sub("", value)
            if "{{" in rest or "{%" in rest:
                raise GatewayRejected(f"header {name} holds an unrendered template")

    def _headers(self, spec: HttpRequestSpec, *, reveal: bool) -> dict[str, str]:
        def secret(match: Any) -> str:
            return self._secrets[match.group(1)].get_secret_value() if reveal else MASK

        return {k: SECRET_REF.sub(secret, v) for k, v in spec.headers.items()}

    def _redact(self, text: str) -> str:
        for value in self._secrets.values():
            raw = value.get_secret_value()
            if raw:
                text = text.replace(raw, MASK)
        return text

    def describe_request(self, spec: HttpRequestSpec) -> dict[str, Any]:
        """The request as it would be sent, secrets masked (for previews and ``playbook test``)."""
        return {
            "method": spec.method,
            "url": spec.url,
            "headers": self._headers(spec, reveal=False),
            "json": spec.body,
        }

    # -- GatewayAdmin ------------------------------------------------------------------------

    def plan(self, action: GatewayAction) -> ActionPlan:
        params = self._params(action)
        inverse = None
        if params.inverse is not None:
            inverse = GatewayAction(
                type="http",
                params={
                    "request": params.inverse.model_dump(mode="json", by_alias=True),
                    "inverse": params.request.model_dump(mode="json", by_alias=True),
                    "description": f"undo: {params.description}" if params.description else "",
                },
            )
        what = params.description or f"{params.request.method} {params.request.url}"
        return ActionPlan(action=action, inverse=inverse, preview=f"will call {what}")

    def satisfied(self, action: GatewayAction) -> bool:
        return False

    def apply(self, action: GatewayAction, *, key: str) -> ActionOutcome:
        if key in self._outcomes:
            return self._outcomes[key]
        spec = self._params(action).request
        what = f"{spec.method} {spec.url}"
        headers = {"Idempotency-Key": key, **self._headers(spec, reveal=True)}
        try:
            response = self._client.request(
                spec.method,
                spec.url,
                headers=headers,
                json=spec.body,
                timeout=self._timeout,
            )
        except httpx.TimeoutException as exc:
            raise GatewayUnavailable(f"{what}: timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            # ``from None``: the transport exception may carry the request and its headers.
            raise GatewayUnavailable(self._redact(f"{what}: {type(exc).__name__}: {exc}")) from None
        status = response.status_code
        ok = status in spec.ok_status if spec.ok_status else 200 <= status < 300
        detail = self._redact(response.text[:_MAX_DETAIL])
        log.info("http action %s -> %s", what, status)
        if not ok:
            message = f"{what}: HTTP {status}: {detail}"
            if status >= 500 or status == 429:
                raise GatewayUnavailable(message, status=status)
            raise GatewayRejected(message, status=status)
        outcome = ActionOutcome(ok=True, status=status, detail=f"{what}: HTTP {status}")
        self._outcomes[key] = outcome
        return outcome


__all__ = ["MASK", "HttpActionGateway"]
