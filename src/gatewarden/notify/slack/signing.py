"""Is this request from Slack, fresh, and new? Signature, replay window, replay memory.

Slack signs each request with the app's signing secret: ``v0=`` + HMAC-SHA256 of
``v0:{X-Slack-Request-Timestamp}:{raw body}`` in ``X-Slack-Signature``. We verify it with
slack-sdk's :class:`SignatureVerifier` on the injected clock, refuse timestamps more than five
minutes away, and remember every accepted signature for that window, persisted in the store's
keyed state, so a captured request replayed within the window is refused even after a restart.

The secret lives only inside the verifier; it never appears in a log line or a repr.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import Counter
from collections.abc import Mapping
from enum import StrEnum

from slack_sdk.signature import Clock as SlackClock
from slack_sdk.signature import SignatureVerifier

from gatewarden.protocols import Clock, Store

log = logging.getLogger(__name__)

REPLAY_WINDOW_S = 300.0
_MAX_TIMESTAMP = 2**53  # exact as a float; Slack's are ten-digit Unix seconds
SEEN_STATE = "slack.interactions.seen"


class Rejection(StrEnum):
    MALFORMED = "malformed"
    STALE = "stale"
    FORGED = "forged"
    REPLAYED = "replayed"


class _ClockAdapter(SlackClock):
    """slack-sdk's verifier takes its own Clock type; ours may be virtual."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock.now()


class ReplayGuard:
    """Signatures accepted within the window, as one pruned JSON map in the store's state.

    One in-process lock serialises check-and-remember, so two copies of a request arriving
    together cannot both pass. Digests are stored instead of the signatures themselves.
    """

    def __init__(self, store: Store, clock: Clock, *, window_s: float = REPLAY_WINDOW_S) -> None:
        self._store = store
        self._clock = clock
        self.window_s = window_s
        self._lock = threading.Lock()

    def first_time(self, signature: str, timestamp: int) -> bool:
        """Remember ``signature``; False if it was already seen within the window."""
        digest = hashlib.sha256(signature.encode()).hexdigest()[:32]
        with self._lock:
            seen = self._load()
            horizon = self._clock.now() - 2 * self.window_s  # covers a clock skew either way
            seen = {d: ts for d, ts in seen.items() if ts >= horizon}
            if digest in seen:
                return False
            seen[digest] = timestamp
            self._store.put_state(SEEN_STATE, json.dumps(seen, separators=(",", ":")))
            return True

    def _load(self) -> dict[str, int]:
        raw = self._store.get_state(SEEN_STATE)
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            log.warning("replay memory unreadable; starting afresh")
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): int(v) for k, v in data.items() if isinstance(v, int | float)}


class RequestVerifier:
    """Checks one request; counts and logs every rejection by reason (never the secret)."""

    def __init__(
        self,
        signing_secret: str,
        clock: Clock,
        replay: ReplayGuard,
        *,
        window_s: float = REPLAY_WINDOW_S,
    ) -> None:
        if not signing_secret.strip():
            raise ValueError("Slack signing secret is empty")
        self._verifier = SignatureVerifier(signing_secret.strip(), clock=_ClockAdapter(clock))
        self._clock = clock
        self._replay = replay
        self.window_s = window_s
        self.rejections: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"RequestVerifier(window_s={self.window_s!r})"

    def check(self, body: bytes, headers: Mapping[str, str]) -> Rejection | None:
        """None if the request is authentic, fresh and new; else why it is refused."""
        lowered = {k.lower(): v for k, v in headers.items()}
        raw_ts = lowered.get("x-slack-request-timestamp", "")
        signature = lowered.get("x-slack-signature", "")
        try:
            timestamp = int(raw_ts)
            text = body.decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return self._reject(Rejection.MALFORMED, "missing or bad timestamp, or body not UTF-8")
        if not signature.startswith("v0=") or not signature.isascii():
            # hmac.compare_digest refuses (raises on) non-ASCII text: it cannot be ours anyway.
            return self._reject(Rejection.MALFORMED, "missing or bad signature header")
        if abs(timestamp) > _MAX_TIMESTAMP:  # nowhere near now, and past a float's range
            return self._reject(Rejection.STALE, "timestamp out of range")
        skew = self._clock.now() - timestamp
        if abs(skew) > self.window_s:
            return self._reject(Rejection.STALE, f"timestamp {skew:+.0f}s off")
        if not self._verifier.is_valid(body=text, timestamp=str(timestamp), signature=signature):
            return self._reject(Rejection.FORGED, "signature does not match")
        if not self._replay.first_time(signature, timestamp):
            return self._reject(Rejection.REPLAYED, "signature already seen in the window")
        return None

    def _reject(self, why: Rejection, detail: str) -> Rejection:
        self.rejections[why.value] += 1
        log.warning("refused Slack request (%s): %s", why.value, detail)
        return why
