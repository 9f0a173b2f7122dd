"""Slack's side of a Socket Mode WebSocket, on 127.0.0.1, written against RFC 6455.

No WebSocket package is installed (uvicorn's websockets support needs ``websockets`` or
``wsproto``), and the protocol needed here is small: the opening handshake, unmasked server
frames, masked client frames, ping/pong and close. Like Slack, the server greets each connection
with a ``hello``; a test then sends envelopes (:meth:`send_envelope`) and reads what the client
sent back (:meth:`next_ack`: acknowledgements carry the envelope's ``envelope_id``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import queue
import socket
import struct
import threading
import uuid
from typing import Any

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


def _frame(opcode: int, payload: bytes) -> bytes:
    """A server frame: FIN set, never masked (RFC 6455 5.1)."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 1 << 16:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload


class _Peer:
    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.buffer = b""
        self.lock = threading.Lock()

    def read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.conn.recv(65536)
            if not chunk:
                raise ConnectionError("client went away")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def send(self, opcode: int, payload: bytes) -> None:
        with self.lock:
            self.conn.sendall(_frame(opcode, payload))

    def frame(self) -> tuple[int, bytes]:
        """One client frame; clients must mask (RFC 6455 5.3), so an unmasked one is an error."""
        b1, b2 = self.read(2)
        if not b2 & 0x80:
            raise ValueError("client frame not masked")
        n = b2 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self.read(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self.read(8))
        mask = self.read(4)
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.read(n)))
        return b1 & 0x0F, data


class SocketModeStandin:
    """Accepts WebSocket connections; the newest one is where envelopes go."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self._stop = threading.Event()
        self._peer: _Peer | None = None
        self._conns: list[socket.socket] = []
        self._connected = threading.Event()
        self.received: queue.Queue[dict[str, Any]] = queue.Queue()
        self.handshakes: list[dict[str, str]] = []
        self.errors: list[str] = []
        self.pings = 0
        self._threads: list[threading.Thread] = []
        accept = threading.Thread(target=self._accept, name="ws-standin", daemon=True)
        self._threads.append(accept)

    def __enter__(self) -> SocketModeStandin:
        self._threads[0].start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for conn in self._conns:
            with contextlib.suppress(OSError):  # already gone
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self._server.close()
        for thread in self._threads:
            thread.join(timeout=5)

    @property
    def url(self) -> str:
        port = self._server.getsockname()[1]
        return f"ws://127.0.0.1:{port}/link/?ticket=standin-ticket&app_id=A0GATEWARDEN"

    def wait_connected(self, timeout: float = 10) -> bool:
        return self._connected.wait(timeout)

    def send_envelope(
        self, kind: str, payload: dict[str, Any], *, accepts_response_payload: bool = False
    ) -> str:
        """Send one envelope as Slack does; returns its ``envelope_id``."""
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        assert self._peer is not None, "no client connected"
        self._peer.send(TEXT, json.dumps(envelope).encode())
        return envelope_id

    def next_ack(self, timeout: float = 10) -> dict[str, Any]:
        return self.received.get(timeout=timeout)

    # -- serving --------------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _handshake(self, peer: _Peer) -> None:
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = peer.conn.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            raw += chunk
        head, _, rest = raw.partition(b"\r\n\r\n")
        peer.buffer = rest
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
        headers["request-line"] = lines[0]
        self.handshakes.append(headers)
        if headers.get("upgrade", "").lower() != "websocket" or "sec-websocket-key" not in headers:
            peer.conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            raise ValueError("not a WebSocket upgrade")
        digest = hashlib.sha1(headers["sec-websocket-key"].encode() + _GUID).digest()
        accept = base64.b64encode(digest).decode()
        peer.conn.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )

    def _serve(self, conn: socket.socket) -> None:
        peer = _Peer(conn)
        try:
            self._handshake(peer)
            self._peer = peer
            hello = {"type": "hello", "num_connections": 1, "debug_info": {"host": "standin"}}
            peer.send(TEXT, json.dumps(hello).encode())
            self._connected.set()
            while not self._stop.is_set():
                opcode, data = peer.frame()
                if opcode == TEXT:
                    self.received.put(json.loads(data))
                elif opcode == PING:
                    self.pings += 1
                    peer.send(PONG, data)
                elif opcode == CLOSE:
                    peer.send(CLOSE, data[:2])
                    return
        except (ConnectionError, OSError, ValueError) as exc:
            if not self._stop.is_set():
                self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()
