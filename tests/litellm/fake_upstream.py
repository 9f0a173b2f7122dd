"""A fault-injecting fake OpenAI upstream for the real-LiteLLM integration test.

``POST /v1/chat/completions`` answers streaming and non-streaming calls; the behaviour of each
served model (the ``model`` field LiteLLM forwards, e.g. ``gpt-4o``) is set through
``POST /control`` with a JSON body ``{"model": "gpt-4o", "error_rate": 1.0, "status": 500,
"ttft_ms": 800, "latency_ms": 20}`` (fields left out keep their value; ``"model": "*"`` sets
the default for every model). ``GET /control`` returns the current settings and call counts.

Errors are deterministic: with ``error_rate`` r the n-th call of a model fails when
``floor(n * r)`` increases, so 0.5 fails every other call and 1.0 fails all of them.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, replace
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gatewarden.httpserve import ThreadedServer

REPLY = "Hello from the fake upstream."
PROMPT_TOKENS = 12
COMPLETION_TOKENS = 6


@dataclass(frozen=True)
class Behaviour:
    error_rate: float = 0.0
    status: int = 500
    ttft_ms: float = 5.0
    latency_ms: float = 5.0


class Controls:
    """Per-model behaviour and call counters, shared by the event loop and the test thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._default = Behaviour()
        self._models: dict[str, Behaviour] = {}
        self.calls: dict[str, int] = {}
        self.failures: dict[str, int] = {}

    def set(self, model: str, **fields: Any) -> None:
        with self._lock:
            if model == "*":
                self._default = replace(self._default, **fields)
                self._models = {m: replace(b, **fields) for m, b in self._models.items()}
            else:
                self._models[model] = replace(self._models.get(model, self._default), **fields)

    def next_call(self, model: str) -> tuple[Behaviour, bool]:
        """The model's behaviour and whether this call fails."""
        with self._lock:
            behaviour = self._models.get(model, self._default)
            n = self.calls.get(model, 0) + 1
            self.calls[model] = n
            rate = behaviour.error_rate
            fails = math.floor(n * rate) > math.floor((n - 1) * rate)
            if fails:
                self.failures[model] = self.failures.get(model, 0) + 1
            return behaviour, fails

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "default": asdict(self._default),
                "models": {m: asdict(b) for m, b in self._models.items()},
                "calls": dict(self.calls),
                "failures": dict(self.failures),
            }


def _completion(model: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": REPLY},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        },
    }


def _chunk(cid: str, model: str, delta: dict[str, Any], finish: str | None) -> str:
    body = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n"


async def _stream(model: str, behaviour: Behaviour) -> AsyncIterator[str]:
    cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"
    await asyncio.sleep(behaviour.ttft_ms / 1000.0)
    yield _chunk(cid, model, {"role": "assistant", "content": ""}, None)
    words = REPLY.split(" ")
    per_word = max(0.0, behaviour.latency_ms - behaviour.ttft_ms) / 1000.0 / len(words)
    for i, word in enumerate(words):
        await asyncio.sleep(per_word)
        yield _chunk(cid, model, {"content": word if i == 0 else " " + word}, None)
    yield _chunk(cid, model, {}, "stop")
    usage = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "usage": {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        },
    }
    yield f"data: {json.dumps(usage)}\n\n"
    yield "data: [DONE]\n\n"


def create_app(controls: Controls) -> Starlette:
    async def chat(request: Request) -> Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return JSONResponse({"error": {"message": "bad json"}}, status_code=400)
        model = str(body.get("model", ""))
        behaviour, fails = controls.next_call(model)
        if fails:
            await asyncio.sleep(0.002)
            error = {
                "message": f"fake upstream injected {behaviour.status}",
                "type": "fake_error",
                "code": behaviour.status,
            }
            headers = {"retry-after": "1"} if behaviour.status == 429 else None
            return JSONResponse({"error": error}, status_code=behaviour.status, headers=headers)
        if body.get("stream"):
            return StreamingResponse(_stream(model, behaviour), media_type="text/event-stream")
        await asyncio.sleep(behaviour.latency_ms / 1000.0)
        return JSONResponse(_completion(model))

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": []})

    async def control(request: Request) -> Response:
        if request.method == "POST":
            body = await request.json()
            model = str(body.pop("model", "*"))
            known = set(Behaviour.__dataclass_fields__)
            unknown = set(body) - known
            if unknown:
                return JSONResponse({"error": f"unknown fields {sorted(unknown)}"}, 400)
            controls.set(model, **body)
        return JSONResponse(controls.snapshot())

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/control", control, methods=["GET", "POST"]),
        ]
    )


class FakeUpstream(ThreadedServer):
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.controls = Controls()
        super().__init__(create_app(self.controls), host=host, port=port, name="fake-upstream")
