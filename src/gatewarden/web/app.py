"""The daemon's HTTP surface. Health endpoints are open; everything else needs the token.

Later stages mount their own routes (Slack interactivity, the incident console) through
``extra_routes`` so this module stays the one place that decides what is exposed.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from gatewarden.errors import StoreError
from gatewarden.web.selfmetrics import render_metrics
from gatewarden.web.status import StatusProvider


def create_app(status: StatusProvider, *, extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    def healthz(request: Request) -> Response:
        ok, detail = status().live()
        return PlainTextResponse(detail + "\n", status_code=200 if ok else 503)

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
