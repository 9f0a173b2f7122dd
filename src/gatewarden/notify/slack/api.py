"""Calling the Slack Web API through slack-sdk, with failures mapped to the outbox's two kinds.

``NotifyRetryable`` (429, 5xx, transient ``ok=false`` codes, connection trouble) is retried by
the outbox with backoff, honouring ``Retry-After``; ``NotifyRejected`` is recorded and not
retried. Every raise uses ``from None``: slack-sdk exceptions hold the request, Authorization
header included, and must not travel into logs or event payloads.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable, Mapping
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse

from gatewarden.errors import NotifyRejected, NotifyRetryable

DEFAULT_BASE_URL = "https://slack.com/api/"

# Slack answers some transient conditions with HTTP 200 and ok=false.
_TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


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


def call(method: str, fn: Callable[[], SlackResponse]) -> SlackResponse:
    """Run one slack-sdk call; raise NotifyRetryable / NotifyRejected on failure."""
    try:
        return fn()
    except SlackApiError as exc:
        raise map_api_error(method, exc) from None
    except SlackClientError as exc:
        raise NotifyRejected(f"slack {method} failed: {type(exc).__name__}") from None
    except (OSError, http.client.HTTPException) as exc:
        # URLError, timeouts, resets, an upload URL answering 5xx: the network is at fault.
        raise NotifyRetryable(f"slack {method} failed: {type(exc).__name__}: {exc}") from None
