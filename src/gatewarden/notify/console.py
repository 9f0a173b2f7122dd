"""Console notifier: one readable line per message, thread replies indented under their root.

``[12:03:15] CRITICAL incident opened: error_rate on provider=openai — observed 0.31 vs 0.01``
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import TextIO

from gatewarden.errors import NotifyRejected, NotifyRetryable
from gatewarden.models import Delivery, Message
from gatewarden.notify.messages import CHART_KIND, is_update

#: Fields worth a mention on one line (the rest stay in Slack and the report).
_EXTRA_FIELDS = ("Root cause", "Action", "Approvers", "Expires")


def format_line(message: Message, *, tz: tzinfo = UTC) -> str:
    """The console rendering of one message (no trailing newline)."""
    clock = datetime.fromtimestamp(message.ts, tz=tz).strftime("%H:%M:%S")
    head = f"[{clock}] {message.severity.value.upper()} {message.title}"
    extras = []
    if "Observed" in message.fields and "Expected" in message.fields:
        window = message.fields.get("Window")
        extras.append(
            f"observed {message.fields['Observed']} vs expected {message.fields['Expected']}"
            + (f" over {window}" if window else "")
        )
    extras.extend(
        f"{name.lower()}: {message.fields[name]}"
        for name in _EXTRA_FIELDS
        if name in message.fields
    )
    first_text_line = message.text.strip().splitlines()[0] if message.text.strip() else ""
    if first_text_line:
        extras.append(first_text_line)
    if message.actions:
        verbs = "/".join(a.get("action_id", "?") for a in message.actions)
        extras.append(f"[{verbs}: {message.actions[0].get('run_id', '?')}]")
    line = " — ".join([head, *extras])
    return ("    ↳ " + line) if message.thread_of else line


class ConsoleNotifier:
    """Notifier printing to a text stream (stdout in the daemon, StringIO in tests)."""

    def __init__(self, stream: TextIO, *, name: str = "console", tz: tzinfo = UTC) -> None:
        self.name = name
        self._stream = stream
        self._tz = tz

    def __repr__(self) -> str:
        return f"ConsoleNotifier(name={self.name!r})"

    def wants(self, message: Message) -> bool:
        """Charts and in-place rewrites mean nothing on a line-oriented stream."""
        return message.kind != CHART_KIND and not is_update(message)

    def deliver(self, message: Message, *, thread_ref: str | None = None) -> Delivery:
        try:
            self._stream.write(format_line(message, tz=self._tz) + "\n")
            self._stream.flush()
        except ValueError as exc:
            # Writing to a closed stream will never succeed; record it rather than retry forever.
            raise NotifyRejected(f"console stream unusable: {exc}") from exc
        except OSError as exc:
            # EAGAIN on a full pipe, EPIPE from a restarting pager: worth another go later.
            raise NotifyRetryable(f"console write failed: {exc}") from exc
        return Delivery(ok=True, ref=f"{self.name}:{message.id}")
