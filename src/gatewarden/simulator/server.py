"""HTTP face of the simulator: OpenAI-compatible inference (``/v1/chat/completions``,
``/v1/models``), LiteLLM's ``/metrics`` and admin API, the request log, and ``/sim/*`` control
endpoints, served by uvicorn on a background thread.

Traffic is generated lazily: every request first advances the simulator to ``clock.now()``,
so with a VirtualClock a test steps time and then pulls.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gatewarden.httpserve import ThreadedServer
from gatewarden.simulator.admin import AdminApi, ApiError, error_response, read_json
from gatewarden.simulator.openai_api import OpenAIApi
from gatewarden.simulator.sim import Simulator

_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)


def _float_param(request: Request, name: str, default: float | None) -> float | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(
            400, f"{name} must be a number", kind="bad_request_error", param=name
        ) from None
    if not math.isfinite(value):
        raise ApiError(400, f"{name} must be finite", kind="bad_request_error", param=name)
    return value


def create_app(sim: Simulator) -> Starlette:
    admin = AdminApi(sim)
    inference = OpenAIApi(sim)

    async def metrics(request: Request) -> Response:
        return Response(sim.exposition(), media_type=CONTENT_TYPE_LATEST)

    async def requests(request: Request) -> Response:
        try:
            since = _float_param(request, "since", 0.0)
            until = _float_param(request, "until", None)
        except ApiError as err:
            return err.response()
        records = sim.records(since or 0.0, until)

        def lines() -> Iterator[str]:
            # Encode in chunks: one huge string would double peak memory for long windows.
            for i in range(0, len(records), 2000):
                yield "".join(_ENCODER.encode(r) + "\n" for r in records[i : i + 2000])

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    async def liveliness(request: Request) -> Response:
        return JSONResponse("I'm alive!")

    async def readiness(request: Request) -> Response:
        return JSONResponse({"status": "healthy", "db": "Not connected"})

    async def admin_calls(request: Request) -> Response:
        return JSONResponse([c.as_dict() for c in sim.state.admin_calls()])

    async def labels(request: Request) -> Response:
        return JSONResponse(sim.labels())

    async def state(request: Request) -> Response:
        return JSONResponse(sim.status())

    async def inject(request: Request) -> Response:
        try:
            body = await read_json(request)
            with sim.lock:
                now = sim.sync()
                # Without an explicit start the fault begins now.
                body.setdefault("start", max(0.0, now - sim.scenario.start))
                active = sim.add_fault(body)
        except ApiError as err:
            return err.response()
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            return error_response(400, problems, kind="bad_request_error", param="fault")
        except ValueError as exc:
            return error_response(400, str(exc), kind="bad_request_error", param="fault")
        return JSONResponse({"uid": active.uid, "label": active.label()}, status_code=201)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error_response(
            exc.status_code,
            str(exc.detail),
            kind="not_found" if exc.status_code == 404 else "bad_request_error",
        )

    routes = [
        # LiteLLM serves inference both with and without the /v1 prefix.
        Route("/v1/chat/completions", inference.chat_completions, methods=["POST"]),
        Route("/chat/completions", inference.chat_completions, methods=["POST"]),
        Route("/v1/models", inference.models, methods=["GET"]),
        Route("/models", inference.models, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/metrics/", metrics, methods=["GET"]),
        Route("/gatewarden/requests", requests, methods=["GET"]),
        Route("/health/liveliness", liveliness, methods=["GET"]),
        Route("/health/readiness", readiness, methods=["GET"]),
        *admin.routes(),
        Route("/sim/admin-calls", admin_calls, methods=["GET"]),
        Route("/sim/labels", labels, methods=["GET"]),
        Route("/sim/state", state, methods=["GET"]),
        Route("/sim/faults", inject, methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


class SimulatorServer(ThreadedServer):
    """Serves :func:`create_app` for one simulator. ``port=0`` binds a free port; ``start()``
    returns the base URL once the server accepts connections."""

    def __init__(self, sim: Simulator, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(create_app(sim), host=host, port=port, name="sim")
        self.sim = sim
