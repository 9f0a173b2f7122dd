"""Serve an ASGI app with uvicorn on a background thread (or the main thread).

One implementation for every HTTP surface gatewarden runs: the simulator, the daemon's
web endpoints and the OTLP receiver.
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from starlette.types import ASGIApp


class _BackgroundServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:
        # Signal handlers belong to the main thread (the daemon's scheduler owns them).
        return None


class ThreadedServer:
    """``port=0`` binds a free port; ``start()`` returns the base URL once serving."""

    def __init__(
        self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, name: str = "http"
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.name = name
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _prepare(self, *, background: bool) -> tuple[uvicorn.Server, socket.socket]:
        # Binding ourselves (rather than letting uvicorn) tells us the port before serving.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._socket = sock
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off")
        server = _BackgroundServer(config) if background else uvicorn.Server(config)
        self._server = server
        return server, sock

    def start(self, timeout: float = 10.0) -> str:
        if self._thread is not None:
            return self.url
        server, sock = self._prepare(background=True)
        self._thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name=f"gatewarden-{self.name}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} server failed to start on {self.url}")
            time.sleep(0.01)
        return self.url

    def serve_forever(self) -> None:
        """Serve on the calling (main) thread until interrupted; uvicorn handles signals."""
        server, sock = self._prepare(background=False)
        server.run(sockets=[sock])

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
