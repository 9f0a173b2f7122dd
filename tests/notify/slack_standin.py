"""A local stand-in for the Slack Web API, good enough to drive slack-sdk's real ``WebClient``.

Serves on 127.0.0.1: ``chat.postMessage``, ``chat.update``, ``chat.postEphemeral``,
``conversations.history`` / ``conversations.replies``, the files upload v2 steps
(``files.getUploadURLExternal``, the upload URL it hands out, ``files.completeUploadExternal``),
``usergroups.users.list``, ``views.open`` and, for Socket Mode, ``apps.connections.open``
(answered with ``socket_url``, which a test points at its own WebSocket server; it takes the
app-level token and refuses the bot token, as Slack does). It checks ``Authorization:
Bearer``, validates payloads the way Slack does (channels, threads, Block Kit limits via
:mod:`tests.notify.blockkit`), records every call, and can fail the next N API calls with a 5xx
or a 429 + ``Retry-After``, or the next upload with a 5xx.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.notify.blockkit import validate_blocks, validate_view

CHANNEL_ID = "C0GATEWARDEN"
CHANNEL_NAME = "#ops"
TEXT_MAX = 40_000

Reply = tuple[int, dict[str, Any], dict[str, Any]]


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
    def __init__(
        self,
        token: str,
        *,
        channels: dict[str, str] | None = None,
        usergroups: dict[str, list[str]] | None = None,
        app_token: str | None = None,
        socket_url: str = "",
    ) -> None:
        self.token = token
        self.app_token = app_token
        self.socket_url = socket_url
        self.channels = channels or {CHANNEL_NAME: CHANNEL_ID}
        self.usergroups = usergroups or {}
        self.calls: list[Call] = []
        self.messages: list[dict[str, Any]] = []  # every stored message, in post order
        self.files: dict[str, dict[str, Any]] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.views: list[dict[str, Any]] = []
        self._faults: list[_Fault] = []
        self._upload_faults = 0
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
    def root_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/api/"

    # -- fault injection --------------------------------------------------------------------
    def fail_next(self, n: int, status: int = 503) -> None:
        with self._lock:
            self._faults.extend(_Fault(status) for _ in range(n))

    def rate_limit_next(self, n: int, retry_after: float = 30) -> None:
        with self._lock:
            self._faults.extend(_Fault(429, retry_after) for _ in range(n))

    def fail_next_upload(self, n: int = 1) -> None:
        with self._lock:
            self._upload_faults += n

    # -- views ------------------------------------------------------------------------------
    def ok_calls(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.response.get("ok")]

    def posts(self) -> list[Call]:
        """Successful chat.postMessage calls, in order."""
        return self.ok_calls("chat.postMessage")

    def posted_ids(self) -> list[str]:
        """gatewarden message ids (from metadata) of successful posts, in order."""
        out = []
        for call in self.posts():
            metadata = _json_field(call.params.get("metadata")) or {}
            out.append(str(metadata.get("event_payload", {}).get("message_id")))
        return out

    def message(self, ts: str) -> dict[str, Any]:
        return next(m for m in self.messages if m["ts"] == ts)

    # -- request handling -------------------------------------------------------------------
    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        url = urlsplit(req.path)
        length = int(req.headers.get("Content-Length") or 0)
        data = req.rfile.read(length) if length else b""
        if url.path.startswith("/upload/"):
            status, body, headers = self._upload(url.path.removeprefix("/upload/"), data)
            return _send(req, status, body, headers)
        method = url.path.removeprefix("/api/")
        raw = data.decode("utf-8")
        params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if "application/json" in req.headers.get("Content-Type", "") and raw:
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
        _send(req, status, body, headers)

    def _dispatch(self, method: str, headers: Any, params: dict[str, Any]) -> Reply:
        auth = headers.get("Authorization", "")
        if not auth:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if method == "apps.connections.open":
            # Only an app-level token opens a Socket Mode connection.
            if self.app_token is None or auth != f"Bearer {self.app_token}":
                return 200, {"ok": False, "error": "invalid_auth"}, {}
            return 200, {"ok": True, "url": self.socket_url}, {}
        if auth != f"Bearer {self.token}":
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        handler = {
            "chat.postMessage": self._post,
            "chat.update": self._update,
            "chat.postEphemeral": self._ephemeral,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "files.getUploadURLExternal": self._upload_url,
            "files.completeUploadExternal": self._complete_upload,
            "usergroups.users.list": self._usergroup,
            "views.open": self._views_open,
        }.get(method)
        if handler is None:
            return 404, {"ok": False, "error": "unknown_method"}, {}
        return 200, handler(params), {}

    def _channel(self, params: dict[str, Any], name: str = "channel") -> str | None:
        channel = params.get(name)
        if not channel:
            return None
        if channel in self.channels.values():
            return str(channel)
        return self.channels.get(str(channel))

    def _check_content(self, params: dict[str, Any]) -> dict[str, Any] | None:
        text = params.get("text")
        if not text:
            return {"ok": False, "error": "no_text"}
        if len(str(text)) > TEXT_MAX:
            return {"ok": False, "error": "msg_too_long"}
        blocks = _json_field(params.get("blocks"))
        if blocks is None:
            return None
        errors = validate_blocks(blocks)
        return {"ok": False, "error": "invalid_blocks", "errors": errors} if errors else None

    def _new_message(self, channel: str, **fields: Any) -> dict[str, Any]:
        self._next_ts += 1
        message = {
            "type": "message",
            "channel": channel,
            "ts": f"{1700000000 + self._next_ts}.{self._next_ts:06d}",
            **fields,
        }
        self.messages.append(message)
        return message

    def _thread_ok(self, channel: str, thread_ts: Any) -> bool:
        return not thread_ts or any(
            m["ts"] == thread_ts and m["channel"] == channel for m in self.messages
        )

    def _post(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        refused = self._check_content(params)
        if refused:
            return refused
        thread_ts = params.get("thread_ts")
        if not self._thread_ok(channel, thread_ts):
            return {"ok": False, "error": "thread_not_found"}
        extra = {"thread_ts": thread_ts} if thread_ts else {}
        message = self._new_message(
            channel,
            text=params["text"],
            blocks=_json_field(params.get("blocks")) or [],
            metadata=_json_field(params.get("metadata")),
            **extra,
        )
        return {"ok": True, "channel": channel, "ts": message["ts"], "message": message}

    def _update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        refused = self._check_content(params)
        if refused:
            return refused
        for message in self.messages:
            if message["channel"] == channel and message["ts"] == params.get("ts"):
                message["text"] = params["text"]
                message["blocks"] = _json_field(params.get("blocks")) or []
                message["edited"] = True
                ts = message["ts"]
                return {"ok": True, "channel": channel, "ts": ts, "text": message["text"]}
        return {"ok": False, "error": "message_not_found"}

    def _ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if not params.get("user") or not params.get("text"):
            return {"ok": False, "error": "invalid_arguments"}
        self.ephemerals.append({"channel": channel, "user": params["user"], "text": params["text"]})
        return {"ok": True, "message_ts": f"{1700000000 + self._next_ts}.999999"}

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

    # -- files upload v2 --------------------------------------------------------------------
    def _upload_url(self, params: dict[str, Any]) -> dict[str, Any]:
        filename, length = params.get("filename"), str(params.get("length", ""))
        if not filename or not length.isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{len(self.files) + 1:08d}"
        self.files[file_id] = {"name": filename, "length": int(length), "data": None}
        return {"ok": True, "file_id": file_id, "upload_url": f"{self.root_url}/upload/{file_id}"}

    def _upload(self, file_id: str, data: bytes) -> Reply:
        with self._lock:
            if self._upload_faults:
                self._upload_faults -= 1
                return 503, {"error": "upload unavailable"}, {}
            entry = self.files.get(file_id)
            if entry is None:
                return 404, {"error": "no such upload"}, {}
            entry["data"] = data
        return 200, {"ok": True, "size": len(data)}, {}

    def _complete_upload(self, params: dict[str, Any]) -> dict[str, Any]:
        files = _json_field(params.get("files"))
        if not isinstance(files, list) or not files:
            return {"ok": False, "error": "invalid_arguments"}
        channel = params.get("channel_id")
        if channel and channel not in self.channels.values():  # completeUpload wants an id
            return {"ok": False, "error": "channel_not_found"}
        thread_ts = params.get("thread_ts")
        if channel and not self._thread_ok(str(channel), thread_ts):
            return {"ok": False, "error": "invalid_thread_ts"}
        shared = []
        for item in files:
            entry = self.files.get(str(item.get("id")))
            if entry is None or entry["data"] is None or len(entry["data"]) != entry["length"]:
                return {"ok": False, "error": "file_upload_incomplete"}
            entry["title"] = item.get("title") or entry["name"]
            shared.append({"id": item["id"], "name": entry["name"], "title": entry["title"]})
        if channel:
            extra = {"thread_ts": thread_ts} if thread_ts else {}
            self._new_message(str(channel), text="", files=shared, **extra)
        return {"ok": True, "files": [{"id": f["id"], "title": f["title"]} for f in shared]}

    # -- directory & views ------------------------------------------------------------------
    def _usergroup(self, params: dict[str, Any]) -> dict[str, Any]:
        group = params.get("usergroup")
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.usergroups[group])}

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        view = _json_field(params.get("view"))
        if not params.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        errors = validate_view(view)
        if errors:
            return {"ok": False, "error": "invalid_arguments", "errors": errors}
        self.views.append(view)
        return {"ok": True, "view": {"id": f"V{len(self.views):08d}", **view}}


def _send(req: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    req.send_response(status)
    req.send_header("Content-Type", "application/json; charset=utf-8")
    req.send_header("Content-Length", str(len(payload)))
    for name, value in headers.items():
        req.send_header(name, str(value))
    req.end_headers()
    req.wfile.write(payload)


def _json_field(value: Any) -> Any:
    """Form bodies carry nested structures as JSON strings; JSON bodies carry them as is."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value
