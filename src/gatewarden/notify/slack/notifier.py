"""Slack notifier over slack-sdk's ``WebClient``: one thread per incident, rewritten in place.

* Roots are routed to a channel (:mod:`.routing`); follow-ups go to the root's thread.
* Rewrites (``message.update``) use ``chat.update`` on the delivered message's ``channel:ts``.
* Charts are drawn at delivery and uploaded with the files upload v2 flow
  (files.getUploadURLExternal → upload → files.completeUploadExternal) into the thread.
* After a crash the outbox asks :meth:`SlackNotifier.find` whether a post landed (matched by
  message metadata, or by file name for charts) before posting again.

Retries belong to the outbox (it persists attempts and honours ``Retry-After`` across restarts),
so slack-sdk's own retry handlers are switched off. The token lives only inside the
``WebClient``: never in a message, a log line, an exception text or this object's ``repr``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from slack_sdk import WebClient
from slack_sdk.web import SlackResponse

from gatewarden.errors import NotifyRejected
from gatewarden.models import Delivery, Message
from gatewarden.notify.messages import CHART_KIND, meta_of, root_message_id
from gatewarden.notify.slack.api import DEFAULT_BASE_URL, call
from gatewarden.notify.slack.blocks import RenderOptions, build_blocks, fallback_text
from gatewarden.notify.slack.chart import render_chart
from gatewarden.notify.slack.routing import Router, RouteRule

METADATA_EVENT = "gatewarden_message"


def split_ref(ref: str) -> tuple[str, str]:
    """``C123:1700000000.000100`` → (channel id, ts)."""
    channel, sep, ts = ref.rpartition(":")
    if not sep or not channel or not ts:
        raise NotifyRejected(f"malformed Slack thread ref {ref!r}")
    return channel, ts


def chart_filename(message: Message) -> str:
    """Deterministic per chart message, so a crashed upload can be found afterwards."""
    digest = hashlib.sha256(message.id.encode()).hexdigest()[:10]
    return f"gatewarden-{message.incident_id or 'chart'}-{digest}.png"


class SlackNotifier:
    """Posts incident threads to Slack; implements the outbox's Reconciler and Updater."""

    def __init__(
        self,
        token: str,
        channel: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        client: WebClient | None = None,
        name: str = "slack",
        timeout: int = 10,
        routes: list[RouteRule] | None = None,
        options: RenderOptions | None = None,
    ) -> None:
        if not token.strip():
            raise ValueError("Slack token is empty")
        if not channel.strip():
            raise ValueError("Slack channel is empty")
        self.name = name
        self.channel = channel
        self.base_url = base_url
        self.router = Router(channel, routes or [])
        self.options = options or RenderOptions()
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
        if thread_ref:
            channel, thread_ts = split_ref(thread_ref)
        else:
            channel, thread_ts = self.router.channel_for(message), None
        if message.kind == CHART_KIND:
            return self._upload_chart(message, channel, thread_ts)
        blocks = build_blocks(message, in_thread=thread_ts is not None, options=self.options)
        response = call(
            "chat.postMessage",
            lambda: self._client.chat_postMessage(
                channel=channel,
                text=fallback_text(message),
                blocks=blocks,
                thread_ts=thread_ts,
                unfurl_links=False,
                metadata={
                    "event_type": METADATA_EVENT,
                    "event_payload": {"message_id": message.id},
                },
            ),
        )
        return Delivery(ok=True, ref=self._ref(response, channel))

    # -- Updater ----------------------------------------------------------------------------
    def update(self, ref: str, message: Message) -> Delivery:
        """Rewrite a posted message in place (the root as the incident evolves, an approval
        gate once decided: its buttons give way to the outcome)."""
        channel, ts = split_ref(ref)
        # ``thread_of`` of a rewrite names its target: the root renders as a root.
        in_thread = message.thread_of != root_message_id(message.incident_id or "")
        blocks = build_blocks(message, in_thread=in_thread, options=self.options)
        response = call(
            "chat.update",
            lambda: self._client.chat_update(
                channel=channel, ts=ts, text=fallback_text(message), blocks=blocks
            ),
        )
        return Delivery(ok=True, ref=self._ref(response, channel))

    # -- Reconciler -------------------------------------------------------------------------
    def find(self, message: Message, *, thread_ref: str | None = None) -> Delivery | None:
        """The delivery of ``message`` if it already landed.

        Needs a channel *id* and the ``channels:history`` scope; without them Slack refuses and
        the outbox falls back to posting again.
        """
        if thread_ref:
            channel, ts = split_ref(thread_ref)
            response = call(
                "conversations.replies",
                lambda: self._client.conversations_replies(
                    channel=channel, ts=ts, include_all_metadata=True, limit=200
                ),
            )
        else:
            channel = self.router.channel_for(message)
            response = call(
                "conversations.history",
                lambda: self._client.conversations_history(
                    channel=channel, include_all_metadata=True, limit=100
                ),
            )
        for posted in response.get("messages") or []:
            if self._is_delivery_of(message, posted):
                return Delivery(ok=True, ref=f"{channel}:{posted['ts']}", detail="reconciled")
        return None

    @staticmethod
    def _is_delivery_of(message: Message, posted: dict[str, Any]) -> bool:
        if message.kind == CHART_KIND:
            name = chart_filename(message)
            return any(f.get("name") == name for f in posted.get("files") or [])
        metadata = posted.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        return bool(
            metadata.get("event_type") == METADATA_EVENT and payload.get("message_id") == message.id
        )

    # -- internals --------------------------------------------------------------------------
    def _upload_chart(self, message: Message, channel: str, thread_ts: str | None) -> Delivery:
        try:
            png = render_chart(meta_of(message))
        except ValueError as exc:
            raise NotifyRejected(f"cannot draw chart: {exc}") from None
        response = call(
            "files.upload_v2",
            lambda: self._client.files_upload_v2(
                file=png,
                filename=chart_filename(message),
                title=message.title,
                alt_txt=message.title,
                channel=channel,
                thread_ts=thread_ts,
            ),
        )
        file = response.get("file") or {}
        return Delivery(ok=True, ref=f"file:{file.get('id', '?')}", detail="chart uploaded")

    @staticmethod
    def _ref(response: SlackResponse, channel: str) -> str:
        return f"{response.get('channel') or channel}:{response.get('ts')}"
