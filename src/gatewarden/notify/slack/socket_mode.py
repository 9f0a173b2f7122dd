"""Slack interactions over Socket Mode: no public endpoint, no signing secret.

``notify.slack.socket_mode: true`` replaces ``POST /slack/interactions``: the daemon opens a
WebSocket to Slack (``apps.connections.open`` with the app-level token, ``xapp-…``, scope
``connections:write``) and Slack sends each click down it as an ``interactive`` envelope. The
envelope's payload is the same JSON as the HTTP endpoint's ``payload`` field, so it goes to the
same :meth:`SlackInteractions.handle_payload` (same approver rule, same idempotency). The
WebSocket is authenticated by the app token when it is opened, which is why envelopes carry no
signature to check.

Every envelope is acknowledged with its ``envelope_id`` within Slack's 3 s, carrying the
handler's answer when Slack accepts one (a modal's ``response_action``); follow-ups (ephemeral
replies, ``views.open``) run after the acknowledgement, as after the HTTP answer.

slack-sdk's built-in client (``slack_sdk.socket_mode.builtin``) needs no extra package. It
reconnects by itself once connected; the first ``apps.connections.open`` is retried here with
backoff, so a daemon started while Slack is unreachable connects when it comes back.
"""

from __future__ import annotations

import http.client
import logging
import threading
from collections import Counter

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from gatewarden.notify.slack.api import DEFAULT_BASE_URL
from gatewarden.notify.slack.interactions import SlackInteractions

log = logging.getLogger(__name__)

INTERACTIVE = "interactive"


class SocketModeListener:
    def __init__(
        self,
        interactions: SlackInteractions,
        app_token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        first_retry_s: float = 1.0,
        max_retry_s: float = 60.0,
        ping_interval_s: float = 5.0,
    ) -> None:
        if not app_token.strip():
            raise ValueError("Slack app-level token is empty")
        self._interactions = interactions
        self._app_token = app_token.strip()  # only ever handed to slack-sdk
        self._base_url = base_url
        self._first_retry_s = first_retry_s
        self._max_retry_s = max_retry_s
        self._ping_interval_s = ping_interval_s
        self._client: SocketModeClient | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self.envelopes: Counter[str] = Counter()
        self.connect_failures = 0

    def __repr__(self) -> str:
        return f"SocketModeListener(base_url={self._base_url!r}, connected={self.connected})"

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._client is not None and self._client.is_connected()

    def stats(self) -> dict[str, float]:
        out = {f"slack_socket_envelopes_{k}": float(v) for k, v in self.envelopes.items()}
        out["slack_socket_connect_failures"] = float(self.connect_failures)
        out["slack_socket_connected"] = 1.0 if self.connected else 0.0
        return out

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background (returns at once); retried until connected or closed."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._connect_until_done, name="slack-socket-mode", daemon=True
        )
        self._thread.start()

    def wait_connected(self, timeout: float) -> bool:
        """True once the first connection is open (tests and start-up logs)."""
        return self._connected.wait(timeout)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _connect_until_done(self) -> None:
        delay = self._first_retry_s
        while not self._stop.is_set():
            client = self._new_client()
            try:
                client.connect()
            except (SlackApiError, SlackClientError, OSError, http.client.HTTPException) as exc:
                # Never the exception itself: slack-sdk's may carry the request.
                self.connect_failures += 1
                log.warning(
                    "Slack Socket Mode: cannot connect (%s); retrying in %.0fs",
                    _why(exc),
                    delay,
                )
                client.close()
                self._stop.wait(delay)
                delay = min(delay * 2, self._max_retry_s)
                continue
            with self._lock:
                if self._stop.is_set():
                    client.close()
                    return
                self._client = client
            if client.is_connected():
                self._connected.set()
                log.info("Slack Socket Mode connected: interactions arrive over the WebSocket")
            else:
                # slack-sdk's monitor reconnects from here on (every ping interval).
                log.warning("Slack Socket Mode: WebSocket not open yet; slack-sdk keeps trying")
            return

    def _new_client(self) -> SocketModeClient:
        # Its own WebClient: apps.connections.open takes the app-level token, not the bot's.
        web = WebClient(base_url=self._base_url, timeout=10)
        client = SocketModeClient(
            app_token=self._app_token,
            web_client=web,
            logger=logging.getLogger(f"{__name__}.client"),
            ping_interval=self._ping_interval_s,
            concurrency=4,
        )
        client.socket_mode_request_listeners.append(self._on_request)
        return client

    # -- envelopes ------------------------------------------------------------------------------
    def _on_request(self, client: BaseSocketModeClient, request: SocketModeRequest) -> None:
        """Acknowledge one envelope (by its id), with the handler's answer when Slack takes one."""
        if request.type != INTERACTIVE:
            # Events or slash commands this app did not ask for: acknowledged, ignored.
            self.envelopes["ignored"] += 1
            client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
            return
        outcome = self._interactions.handle_payload(request.payload)
        answered = request.accepts_response_payload and outcome.status == 200
        answer = outcome.body if answered else None
        self.envelopes["acknowledged" if outcome.status == 200 else "refused"] += 1
        client.send_socket_mode_response(
            SocketModeResponse(envelope_id=request.envelope_id, payload=answer)
        )
        for job in outcome.later:
            job()


def _why(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        data = getattr(exc.response, "data", None)
        error = data.get("error") if isinstance(data, dict) else None
        return f"apps.connections.open: {error or 'failed'}"
    return type(exc).__name__
