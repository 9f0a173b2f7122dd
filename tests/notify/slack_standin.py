"""A local stand-in for the Slack Web API, good enough to drive slack-sdk's real ``WebClient``.

Implements ``chat.postMessage``, ``chat.update``, ``conversations.history`` and
``conversations.replies`` with Slack-shaped JSON, checks ``Authorization: Bearer``, validates
payloads the way Slack does (channel, text, blocks as a list of at most 50 typed blocks), records
every call, and can fail the next N calls with a 5xx or a 429 + ``Retry-After``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

CHANNEL_ID = "C0GATEWARDEN"
CHANNEL_NAME = "#ops"


@dataclass
class Call:
    method: str
    headers: dict[str, str]
    body: str
    params: dict[str, Any]
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Fault:
    status: int
    retry_after: float | None = None


class SlackStandin:
    def __init__(self, token: str, *, channels: dict[str, str] | None = None) -> None:
        self.token = token
        self.channels = channels or {CHANNEL_NAME: CHANNEL_ID}
        self.calls: list[Call] = []
        self.messages: list[dict[str, Any]] = []  # every stored message, in post order
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._next_ts = 0
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                standin._handle(self)

            do_GET = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> SlackStandin:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/api/"

    # -- fault injection --------------------------------------------------------------------
    def fail_next(self, n: int, status: int = 503) -> None:
        with self._lock:
            self._faults.extend(_Fault(status) for _ in range(n))

    def rate_limit_next(self, n: int, retry_after: float = 30) -> None:
        with self._lock:
            self._faults.extend(_Fault(429, retry_after) for _ in range(n))

    # -- views ------------------------------------------------------------------------------
    def posts(self) -> list[Call]:
        """Successful chat.postMessage calls, in order."""
        return [c for c in self.calls if c.method == "chat.postMessage" and c.response.get("ok")]

    def posted_ids(self) -> list[str]:
        """gatewarden message ids (from metadata) of successful posts, in order."""
        out = []
        for call in self.posts():
            metadata = _json_field(call.params.get("metadata")) or {}
            out.append(str(metadata.get("event_payload", {}).get("message_id")))
        return out

    # -- request handling -------------------------------------------------------------------
    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        url = urlsplit(req.path)
        method = url.path.removeprefix("/api/")
        length = int(req.headers.get("Content-Length") or 0)
        raw = req.rfile.read(length).decode("utf-8") if length else ""
        params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(url.query).items()}
        content_type = req.headers.get("Content-Type", "")
        if "application/json" in content_type and raw:
            params.update(json.loads(raw))
        elif raw:
            params.update({k: v[-1] for k, v in parse_qs(raw).items()})
        call = Call(method=method, headers=dict(req.headers.items()), body=raw, params=params)
        with self._lock:
            self.calls.append(call)
            fault = self._faults.pop(0) if self._faults else None
            if fault is not None:
                status, body = fault.status, {"ok": False, "error": "ratelimited"}
                if fault.status != 429:
                    body = {"ok": False, "error": "service_unavailable"}
                headers = {} if fault.retry_after is None else {"Retry-After": fault.retry_after}
            else:
                status, body, headers = self._dispatch(method, req.headers, params)
            call.status, call.response = status, body
        payload = json.dumps(body).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json; charset=utf-8")
        req.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            req.send_header(name, str(value))
        req.end_headers()
        req.wfile.write(payload)

    def _dispatch(
        self, method: str, headers: Any, params: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, Any]]:
        auth = headers.get("Authorization", "")
        if not auth:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if auth != f"Bearer {self.token}":
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        handler = {
            "chat.postMessage": self._post,
            "chat.update": self._update,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
        }.get(method)
        if handler is None:
            return 404, {"ok": False, "error": "unknown_method"}, {}
        return 200, handler(params), {}

    def _channel(self, params: dict[str, Any]) -> str | None:
        channel = params.get("channel")
        if not channel:
            return None
        if channel in self.channels.values():
            return str(channel)
        return self.channels.get(str(channel))

    def _check_content(self, params: dict[str, Any]) -> str | None:
        if not params.get("text"):
            return "no_text"
        blocks = _json_field(params.get("blocks"))
        if blocks is None:
            return None
        if not isinstance(blocks, list) or len(blocks) > 50:
            return "invalid_blocks"
        if not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks):
            return "invalid_blocks"
        return None

    def _post(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        error = self._check_content(params)
        if error:
            return {"ok": False, "error": error}
        thread_ts = params.get("thread_ts")
        if thread_ts and not any(
            m["ts"] == thread_ts and m["channel"] == channel for m in self.messages
        ):
            return {"ok": False, "error": "thread_not_found"}
        self._next_ts += 1
        message = {
            "type": "message",
            "channel": channel,
            "ts": f"{1700000000 + self._next_ts}.{self._next_ts:06d}",
            "text": params["text"],
            "blocks": _json_field(params.get("blocks")) or [],
            "metadata": _json_field(params.get("metadata")),
        }
        if thread_ts:
            message["thread_ts"] = thread_ts
        self.messages.append(message)
        return {"ok": True, "channel": channel, "ts": message["ts"], "message": message}

    def _update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        error = self._check_content(params)
        if error:
            return {"ok": False, "error": error}
        for message in self.messages:
            if message["channel"] == channel and message["ts"] == params.get("ts"):
                message["text"] = params["text"]
                message["blocks"] = _json_field(params.get("blocks")) or []
                return {
                    "ok": True,
                    "channel": channel,
                    "ts": message["ts"],
                    "text": message["text"],
                    "message": message,
                }
        return {"ok": False, "error": "message_not_found"}

    def _listing(self, params: dict[str, Any], keep: Any) -> dict[str, Any]:
        channel = self._channel(params)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        with_metadata = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        found = []
        for message in self.messages:
            if message["channel"] == channel and keep(message):
                shown = dict(message)
                if not with_metadata:
                    shown.pop("metadata", None)
                found.append(shown)
        return {"ok": True, "messages": found, "has_more": False}

    def _history(self, params: dict[str, Any]) -> dict[str, Any]:
        listing = self._listing(params, lambda m: "thread_ts" not in m)
        listing.get("messages", []).reverse()  # Slack lists newest first
        return listing

    def _replies(self, params: dict[str, Any]) -> dict[str, Any]:
        ts = params.get("ts")
        return self._listing(params, lambda m: m["ts"] == ts or m.get("thread_ts") == ts)


def _json_field(value: Any) -> Any:
    """Form bodies carry nested structures as JSON strings; JSON bodies carry them as is."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value
