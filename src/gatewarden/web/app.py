"""The daemon's HTTP surface. Health endpoints are open; everything else needs the token.

Later stages mount their own routes (Slack interactivity, the incident console) through
``extra_routes`` so this module stays the one place that decides what is exposed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from gatewarden.errors import StoreError
from gatewarden.ingest.health import Figure
from gatewarden.notify.redact import redact
from gatewarden.web.selfmetrics import render_metrics
from gatewarden.web.status import StatusProvider, StatusSnapshot

#: ``scheme://user:password@host``: a source URL with credentials, echoed by an HTTP error.
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def _public_error(text: str) -> str:
    """/healthz is unauthenticated: a source's error text must not carry a credential."""
    return redact(_URL_USERINFO.sub("<redacted>@", text))[:300]


def health_body(snapshot: StatusSnapshot) -> dict[str, object]:
    """/healthz as JSON: liveness, and each source's health (name, up, last success, lag,
    consecutive and total errors, malformed input, and its own figures such as stale scrapes).
    """
    ok, detail = snapshot.live()
    if not ok:
        status = "stalled"
    elif snapshot.ticks == 0:
        status = "starting"
    else:
        status = snapshot.source_status()
    sources: list[dict[str, Figure]] = []
    for source in snapshot.sources:
        view = source.as_dict(snapshot.now)
        view["last_error"] = _public_error(source.last_error)
        sources.append(view)
    return {
        "status": status,
        "live": ok,
        "detail": detail,
        "ticks": snapshot.ticks,
        "last_tick_at": snapshot.last_tick_at,
        "sources": sources,
    }


def create_app(status: StatusProvider, *, extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    def healthz(request: Request) -> Response:
        # Liveness only decides the code: a failing source degrades the daemon (it pages as
        # gateway_unreachable) but restarting the daemon would not bring the gateway back.
        body = health_body(status())
        return JSONResponse(body, status_code=200 if body["live"] else 503)

    def readyz(request: Request) -> Response:
        try:
            ok, detail = status().ready()
        except StoreError as exc:
            ok, detail = False, f"store unavailable: {exc}"
        return PlainTextResponse(detail + "\n", status_code=200 if ok else 503)

    def metrics(request: Request) -> Response:
        return Response(render_metrics(status), media_type=CONTENT_TYPE_LATEST)

    def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "not found"}, status_code=404)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *extra_routes,
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found})
