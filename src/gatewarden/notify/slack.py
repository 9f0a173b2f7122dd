"""Slack notifier over slack-sdk's ``WebClient``: Block Kit messages, one thread per incident.

Retries belong to the outbox (it persists attempts and honours ``Retry-After`` across restarts), so
slack-sdk's own retry handlers are switched off and every failure is mapped to
``NotifyRetryable`` (429, 5xx, connection trouble) or ``NotifyRejected`` (the rest).

The token lives only inside the ``WebClient``; it is never part of a message, a log line, an
exception text or this object's ``repr``.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse

from gatewarden.errors import NotifyRejected, NotifyRetryable
from gatewarden.models import Delivery, Message, Severity

DEFAULT_BASE_URL = "https://slack.com/api/"
METADATA_EVENT = "gatewarden_message"

_EMOJI = {
    Severity.CRITICAL: ":rotating_light:",
    Severity.WARNING: ":warning:",
    Severity.INFO: ":information_source:",
}
# Slack answers some transient conditions with HTTP 200 and ok=false.
_TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
# Block Kit limits (https://api.slack.com/reference/block-kit/blocks).
_HEADER_MAX = 150
_SECTION_MAX = 3000
_FIELD_MAX = 2000
_FIELDS_MAX = 10


def _esc(text: str) -> str:
    """Escape mrkdwn control characters (Slack's three, nothing else)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fallback_text(message: Message) -> str:
    """Plain text for notifications and clients that do not render blocks."""
    return _cut(f"{message.severity.value.upper()} {message.title}", _SECTION_MAX)


def build_blocks(message: Message, *, in_thread: bool = False) -> list[dict[str, Any]]:
    """Block Kit for one message: header (or bold line in a thread), text, fields, buttons."""
    emoji = _EMOJI.get(message.severity, "")
    blocks: list[dict[str, Any]] = []
    if in_thread:
        line = f"{emoji} *{_esc(message.title)}*"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(line, 3000)}})
    else:
        head = f"{emoji} {message.severity.value.upper()} {message.title}"
        blocks.append(
            {
                "type": "header",
                "text": {"type": "plain_text", "text": _cut(head, _HEADER_MAX), "emoji": True},
            }
        )
    if message.text.strip():
        text = _cut(_esc(message.text.strip()), _SECTION_MAX)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    if message.fields:
        fields = [
            {"type": "mrkdwn", "text": _cut(f"*{_esc(k)}*\n{_esc(v)}", _FIELD_MAX)}
            for k, v in list(message.fields.items())[:_FIELDS_MAX]
        ]
        blocks.append({"type": "section", "fields": fields})
    if message.actions:
        blocks.append(_actions_block(message.actions))
    stamp = datetime.fromtimestamp(message.ts, tz=UTC).strftime("%H:%M:%S UTC")
    context = f"gatewarden · {message.incident_id or 'no incident'} · {message.kind} · {stamp}"
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _esc(_cut(context, 3000))}]}
    )
    return blocks


def _actions_block(actions: tuple[dict[str, str], ...]) -> dict[str, Any]:
    elements = []
    for action in actions[:25]:
        value = {"run_id": action.get("run_id", ""), "step": action.get("step", "")}
        button: dict[str, Any] = {
            "type": "button",
            "action_id": action.get("action_id", action.get("id", "action")),
            "text": {"type": "plain_text", "text": action.get("label", "?"), "emoji": True},
            "value": json.dumps(value, separators=(",", ":")),
        }
        if action.get("style") in ("primary", "danger"):
            button["style"] = action["style"]
        elements.append(button)
    first = actions[0] if actions else {}
    block_id = _cut(f"approval:{first.get('run_id', '')}:{first.get('step', '')}", 255)
    return {"type": "actions", "block_id": block_id, "elements": elements}


def split_ref(ref: str) -> tuple[str, str]:
    """``C123:1700000000.000100`` → (channel id, ts)."""
    channel, sep, ts = ref.rpartition(":")
    if not sep or not channel or not ts:
        raise NotifyRejected(f"malformed Slack thread ref {ref!r}")
    return channel, ts


def _retry_after(headers: Mapping[str, Any]) -> float | None:
    for name, value in headers.items():
        if str(name).lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) and value else value
            try:
                return float(str(raw))
            except ValueError:
                return None
    return None


def map_api_error(method: str, exc: SlackApiError) -> NotifyRetryable | NotifyRejected:
    """Classify a Slack API failure: transient ones are retried by the outbox."""
    response = exc.response
    status = int(getattr(response, "status_code", 0) or 0)
    data = getattr(response, "data", None)
    error = str(data.get("error", "")) if isinstance(data, dict) else ""
    headers = getattr(response, "headers", None) or {}
    what = f"slack {method} failed: HTTP {status}" + (f" {error}" if error else "")
    if status == 429 or error == "ratelimited":
        return NotifyRetryable(what, retry_after=_retry_after(headers))
    if status >= 500 or error in _TRANSIENT_ERRORS:
        return NotifyRetryable(what, retry_after=_retry_after(headers))
    return NotifyRejected(what)


class SlackNotifier:
    """Posts to one Slack channel; follow-ups go to the incident thread (``thread_ref``)."""

    def __init__(
        self,
        token: str,
        channel: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        client: WebClient | None = None,
        name: str = "slack",
        timeout: int = 10,
    ) -> None:
        if not token.strip():
            raise ValueError("Slack token is empty")
        if not channel.strip():
            raise ValueError("Slack channel is empty")
        self.name = name
        self.channel = channel
        self.base_url = base_url
        if client is None:
            client = WebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=[])
        else:
            # The outbox owns retries; an injected client's handlers would retry behind its back.
            client.retry_handlers = []
            if client.token is None:
                client.token = token.strip()
        self._client = client

    def __repr__(self) -> str:
        return (
            f"SlackNotifier(name={self.name!r}, channel={self.channel!r}, "
            f"base_url={self.base_url!r})"
        )

    # -- Notifier ---------------------------------------------------------------------------
    def deliver(self, message: Message, *, thread_ref: str | None = None) -> Delivery:
        channel, thread_ts = split_ref(thread_ref) if thread_ref else (self.channel, None)
        response = self._call(
            "chat.postMessage",
            lambda: self._client.chat_postMessage(
                channel=channel,
                text=fallback_text(message),
                blocks=build_blocks(message, in_thread=thread_ts is not None),
                thread_ts=thread_ts,
                unfurl_links=False,
                metadata={
                    "event_type": METADATA_EVENT,
                    "event_payload": {"message_id": message.id},
                },
            ),
        )
        return Delivery(ok=True, ref=self._ref(response, channel))

    # -- extras -----------------------------------------------------------------------------
    def update(self, ref: str, message: Message) -> Delivery:
        """Rewrite a posted message in place (e.g. strip approval buttons once decided)."""
        channel, ts = split_ref(ref)
        response = self._call(
            "chat.update",
            lambda: self._client.chat_update(
                channel=channel,
                ts=ts,
                text=fallback_text(message),
                blocks=build_blocks(message, in_thread=message.thread_of is not None),
            ),
        )
        return Delivery(ok=True, ref=self._ref(response, channel))

    def find(self, message: Message, *, thread_ref: str | None = None) -> Delivery | None:
        """Reconciler: the delivery of ``message`` if it already landed (matched by metadata).

        Needs a channel *id* and the ``channels:history`` scope; without them Slack refuses and
        the outbox falls back to posting again.
        """
        if thread_ref:
            channel, ts = split_ref(thread_ref)
            response = self._call(
                "conversations.replies",
                lambda: self._client.conversations_replies(
                    channel=channel, ts=ts, include_all_metadata=True, limit=200
                ),
            )
        else:
            channel = self.channel
            response = self._call(
                "conversations.history",
                lambda: self._client.conversations_history(
                    channel=channel, include_all_metadata=True, limit=100
                ),
            )
        for posted in response.get("messages") or []:
            metadata = posted.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") == METADATA_EVENT and payload.get("message_id") == (
                message.id
            ):
                return Delivery(ok=True, ref=f"{channel}:{posted['ts']}", detail="reconciled")
        return None

    # -- internals --------------------------------------------------------------------------
    @staticmethod
    def _ref(response: SlackResponse, channel: str) -> str:
        return f"{response.get('channel') or channel}:{response.get('ts')}"

    @staticmethod
    def _call(method: str, call: Callable[[], SlackResponse]) -> SlackResponse:
        # ``from None`` everywhere: the SDK exceptions hold the request (with its Authorization
        # header); our exception carries only the method, status and Slack's error code.
        try:
            return call()
        except SlackApiError as exc:
            raise map_api_error(method, exc) from None
        except SlackClientError as exc:
            raise NotifyRejected(f"slack {method} failed: {type(exc).__name__}") from None
        except (OSError, http.client.HTTPException) as exc:
            # URLError, timeouts, resets: the network, not the message, is at fault.
            raise NotifyRetryable(f"slack {method} failed: {type(exc).__name__}: {exc}") from None
