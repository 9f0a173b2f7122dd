"""The persisted outbox: notifications are events first, deliveries second.

For each event that deserves a message the stage appends ``notification.queued`` (one per
notifier, key ``notify:{message_id}:{notifier}``), then flushes. Pending work is *derived from the
store* (queued without a delivered or permanent failure), so a restart resumes where the last
process stopped and nothing lives only in memory.

Delivery semantics, per notifier:

* **Ordered.** Messages go out in queue (seq) order; a retryable failure stops that notifier for
  the tick, so later messages wait behind the failed one instead of overtaking it (a thread reply
  never lands before its root).
* **Recorded once.** ``notification.delivered`` is keyed
  ``notify:{message_id}:{notifier}:delivered`` and the store's idempotent append keeps it
  unique; a message with a recorded delivery is never sent again.
* **At-least-once only when the outcome is unknown.** Before calling a notifier the stage marks
  the outbox key in-flight (``Store.put_state``) and clears the mark once the outcome is recorded.
  A crash between the remote call and the ``delivered`` append leaves the mark behind: on restart
  the stage first asks the notifier whether the message already landed (notifiers implementing
  :class:`Reconciler`, e.g. Slack via message metadata) and records that delivery instead of
  posting; a notifier that cannot tell is called again. We chose a possible duplicate in that
  window over a possibly lost page: a missed page costs more than a repeated one.
* **Never silently dropped.** ``NotifyRejected`` (or exhausting ``max_attempts``) appends
  ``notification.failed {retryable: false}``: recorded, visible in the report, not retried.
* **Bounded.** At most ``max_per_tick`` deliveries per notifier and ``budget_s`` wall seconds per
  flush, so a slow chat API cannot stall detection.
* **Rewrites in place.** A message of kind ``message.update`` rewrites the message named by its
  ``thread_of`` through the notifier's ``update`` (:class:`Updater`); it is queued only for
  notifiers that have one and that queued the target, and it waits in line like any other
  message, so rewrites land in event order and the last state wins. Rewriting is idempotent, so
  an unknown outcome after a crash is simply rewritten again.
* **Selective.** A notifier with a ``wants(message)`` method (:class:`Selective`) gets only the
  messages it wants: the console skips charts and rewrites.
* **Watched.** A notifier whose oldest undelivered message has waited more than
  ``stuck_after_s`` is reported as an ``outbox_stuck`` self-health alert (:meth:`self_health`);
  the alert reaches on-call through the other notifiers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from gatewarden.backoff import Jitter, exponential
from gatewarden.crashpoints import crashpoint
from gatewarden.errors import NotifyRejected, NotifyRetryable
from gatewarden.models import Delivery, Event, EventType, Message
from gatewarden.notify.incident import SeriesSource
from gatewarden.notify.intake import Intake
from gatewarden.notify.messages import is_update
from gatewarden.notify.redact import redact
from gatewarden.protocols import Clock, Notifier, Store, Tick
from gatewarden.selfhealth import OUTBOX_STUCK, HealthCheck, overdue

log = logging.getLogger(__name__)

_QUEUED = EventType.NOTIFICATION_QUEUED
_DELIVERED = EventType.NOTIFICATION_DELIVERED
_FAILED = EventType.NOTIFICATION_FAILED
_LOW_WATER = "notify.outbox.low_water"


def outbox_key(message_id: str, notifier: str) -> str:
    return f"notify:{message_id}:{notifier}"


def delivered_key(message_id: str, notifier: str) -> str:
    return f"{outbox_key(message_id, notifier)}:delivered"


def _inflight_state(notifier: str) -> str:
    return f"notify.inflight.{notifier}"


@runtime_checkable
class Reconciler(Protocol):
    """A notifier that can tell whether a message already landed (used only after a crash)."""

    def find(self, message: Message, *, thread_ref: str | None = None) -> Delivery | None: ...


@runtime_checkable
class Updater(Protocol):
    """A notifier that can rewrite a message it delivered (``ref`` is that delivery's ref)."""

    def update(self, ref: str, message: Message) -> Delivery: ...


@runtime_checkable
class Selective(Protocol):
    """A notifier that takes only some messages (e.g. no charts on a console)."""

    def wants(self, message: Message) -> bool: ...


@dataclass
class PendingItem:
    """One queued (message, notifier) pair as derived from the store."""

    key: str
    seq: int
    notifier: str
    message: Message
    queued_at: float = 0.0
    delivered_ref: str | None = None
    delivered: bool = False
    rejected: bool = False
    attempts: int = 0
    next_attempt_at: float | None = None

    @property
    def settled(self) -> bool:
        return self.delivered or self.rejected


class NotifyStage:
    """Pipeline stage: enqueue messages for this tick's events, then flush the outbox."""

    name = "notify"

    def __init__(
        self,
        store: Store,
        notifiers: Sequence[Notifier],
        clock: Clock,
        *,
        max_attempts: int = 8,
        base_backoff_s: float = 5.0,
        max_backoff_s: float = 600.0,
        max_per_tick: int = 20,
        budget_s: float = 5.0,
        series: SeriesSource | None = None,
        tick_seconds: float = 15.0,
        chart_ticks: int = 60,
        jitter: Jitter | None = None,
        stuck_after_s: float = 600.0,
    ) -> None:
        names = [n.name for n in notifiers]
        if len(set(names)) != len(names):
            raise ValueError(f"notifier names must be unique, got {names}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self._store = store
        self._notifiers = {n.name: n for n in notifiers}
        self._clock = clock
        self.max_attempts = max_attempts
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        #: the random part of each retry's backoff (seedable; drawn once, stored in the event)
        self.jitter = jitter if jitter is not None else Jitter()
        self.stuck_after_s = stuck_after_s
        # Per notifier, when its oldest unsettled message was queued (absent: none), as of the
        # last flush; None before the first flush, when nothing is known yet.
        self._oldest: dict[str, float] | None = None
        self.max_per_tick = max_per_tick
        self.budget_s = budget_s
        self.intake = Intake(
            store, series=series, tick_seconds=tick_seconds, chart_ticks=chart_ticks
        )

    # -- stage ------------------------------------------------------------------------------
    def run(self, tick: Tick) -> None:
        batch = self.intake.collect(tick.events, first_cursor=self._first_cursor)
        appended = self.enqueue(batch)
        self.intake.commit(batch)
        appended.extend(self.flush())
        tick.events.extend(appended)

    def _first_cursor(self) -> int:
        # Only consulted when no intake cursor was ever saved: whatever a notify stage already
        # queued is history, and announcing it again would post old charts into old threads.
        _, max_seq = self._load()
        return max_seq

    # -- enqueue ----------------------------------------------------------------------------
    def enqueue(self, events: Iterable[Event]) -> list[Event]:
        """Append ``notification.queued`` for every message these events deserve."""
        now = self._clock.now()
        messages = self.intake.messages(list(events), now=now)
        queued: list[Event] = []
        keys: set[str] = set()
        for message in messages:
            dump = message.model_dump(mode="json")
            for name, notifier in self._notifiers.items():
                if not self._takes(notifier, message, keys):
                    continue
                key = outbox_key(message.id, name)
                keys.add(key)
                queued.append(
                    Event(
                        ts=now,
                        type=_QUEUED,
                        incident_id=message.incident_id,
                        key=key,
                        payload={"message": dump, "notifier": name},
                    )
                )
        return self._store.append(queued) if queued else []

    def _takes(self, notifier: Notifier, message: Message, queued: set[str]) -> bool:
        if isinstance(notifier, Selective) and not notifier.wants(message):
            return False
        if not is_update(message):
            return True
        if not isinstance(notifier, Updater) or message.thread_of is None:
            return False
        target = outbox_key(message.thread_of, notifier.name)
        return target in queued or self._store.event_by_key(target) is not None

    # -- pending state ----------------------------------------------------------------------
    def pending(self) -> list[PendingItem]:
        """Every unsettled queued notification, in seq order (for the web UI and tests)."""
        items, _ = self._load()
        return [i for i in items if not i.settled]

    def _load(self) -> tuple[list[PendingItem], int]:
        # Everything at or below the low-water mark is settled; it is only an optimisation, so
        # a lost or stale mark (0) merely means a longer scan.
        low = int(self._store.get_state(_LOW_WATER) or 0)
        types = [_QUEUED.value, _DELIVERED.value, _FAILED.value]
        events = self._store.events(types=types, after_seq=low)
        items: dict[str, PendingItem] = {}
        for event in events:
            p = event.payload
            if event.type is _QUEUED and event.key and event.seq is not None:
                items[event.key] = PendingItem(
                    key=event.key,
                    seq=event.seq,
                    notifier=str(p["notifier"]),
                    message=Message.model_validate(p["message"]),
                    queued_at=event.ts,
                )
                continue
            item = items.get(outbox_key(str(p.get("message_id")), str(p.get("notifier"))))
            if item is None:
                continue  # outcome of a notification settled below the low-water mark
            if event.type is _DELIVERED:
                item.delivered = True
                item.delivered_ref = p.get("ref")
            elif p.get("retryable"):
                item.attempts = max(item.attempts, int(p.get("attempt", 1)))
                next_at = p.get("next_attempt_at")
                item.next_attempt_at = float(next_at) if next_at is not None else None
            else:
                item.rejected = True
        max_seq = max((e.seq or 0 for e in events), default=low)
        return sorted(items.values(), key=lambda i: i.seq), max_seq

    # -- flush ------------------------------------------------------------------------------
    def flush(self) -> list[Event]:
        """Deliver what is due; returns the delivered/failed events appended."""
        items, max_seq = self._load()
        deadline = time.monotonic() + self.budget_s  # wall time: the domain clock may be virtual
        appended: list[Event] = []
        for name, notifier in self._notifiers.items():
            queue = [i for i in items if i.notifier == name and not i.settled]
            for item in queue[: self.max_per_tick]:
                if time.monotonic() > deadline:
                    break
                if item.next_attempt_at is not None and self._clock.now() < item.next_attempt_at:
                    break  # the head is backing off; later messages wait behind it
                event = self._attempt(notifier, item)
                appended.append(event)
                if event.type is _FAILED and event.payload.get("retryable"):
                    break
        unsettled = [i for i in items if not i.settled]
        low = min(i.seq for i in unsettled) - 1 if unsettled else max_seq
        self._store.put_state(_LOW_WATER, str(low))
        oldest: dict[str, float] = {}
        for item in unsettled:
            oldest[item.notifier] = min(oldest.get(item.notifier, item.queued_at), item.queued_at)
        self._oldest = oldest
        return appended

    def self_health(self, now: float) -> list[HealthCheck]:
        """:class:`~gatewarden.selfhealth.SelfReporting`: per notifier, has its oldest
        undelivered message waited longer than ``stuck_after_s`` (as of the last flush)?"""
        oldest = self._oldest
        if oldest is None:
            return []
        return [
            overdue(
                OUTBOX_STUCK,
                {"notifier": name},
                since=oldest.get(name),
                now=now,
                limit_s=self.stuck_after_s,
                metric="oldest_undelivered_age_s",
                detail=f"{name}: a message waits for delivery since ts {oldest.get(name)}",
            )
            for name in self._notifiers
        ]

    def _thread_ref(self, message: Message, notifier: str) -> str | None:
        if message.thread_of is None:
            return None
        root = self._store.event_by_key(delivered_key(message.thread_of, notifier))
        ref = root.payload.get("ref") if root is not None else None
        return str(ref) if ref else None

    def _attempt(self, notifier: Notifier, item: PendingItem) -> Event:
        thread_ref = self._thread_ref(item.message, notifier.name)
        inflight = _inflight_state(notifier.name)
        delivery: Delivery | None = None
        try:
            if is_update(item.message):
                delivery = self._rewrite(notifier, item.message, thread_ref)
            elif self._store.get_state(inflight) == item.key and isinstance(notifier, Reconciler):
                delivery = self._reconcile(notifier, item, thread_ref)
            if delivery is None:
                self._store.put_state(inflight, item.key)
                delivery = notifier.deliver(item.message, thread_ref=thread_ref)
                crashpoint("notify.after_deliver")  # delivered, not yet recorded
        except NotifyRetryable as exc:
            event = self._failed(item, str(exc), retryable=True, retry_after=exc.retry_after)
        except NotifyRejected as exc:
            event = self._failed(item, str(exc), retryable=False)
        else:
            if delivery.ok:
                event = self._record(
                    item,
                    _DELIVERED,
                    delivered_key(item.message.id, item.notifier),
                    {"ref": delivery.ref, "detail": redact(delivery.detail)},
                )
                item.delivered, item.delivered_ref = True, delivery.ref
            else:
                event = self._failed(item, delivery.detail or "notifier refused", retryable=False)
        self._store.put_state(inflight, "")
        return event

    @staticmethod
    def _rewrite(notifier: Notifier, message: Message, ref: str | None) -> Delivery:
        if ref is None:
            # The target was rejected (or never delivered): nothing to rewrite, ever.
            raise NotifyRejected(f"cannot rewrite {message.thread_of}: it was never delivered")
        if not isinstance(notifier, Updater):
            raise NotifyRejected(f"{notifier.name} cannot rewrite messages")
        return notifier.update(ref, message)

    @staticmethod
    def _reconcile(
        notifier: Reconciler, item: PendingItem, thread_ref: str | None
    ) -> Delivery | None:
        # The last process crashed mid-delivery: ask before posting again. A notifier that
        # refuses to answer (missing scope, unknown channel) cannot tell, so we post again.
        try:
            delivery = notifier.find(item.message, thread_ref=thread_ref)
        except NotifyRejected as exc:
            log.warning("cannot reconcile %s (%s); delivering again", item.key, exc)
            return None
        if delivery is not None:
            log.info("notification %s had already been delivered; recording it", item.key)
        return delivery

    def _failed(
        self, item: PendingItem, error: str, *, retryable: bool, retry_after: float | None = None
    ) -> Event:
        attempt = item.attempts + 1
        item.attempts = attempt
        payload: dict[str, Any] = {"error": redact(error), "attempt": attempt}
        if retryable and attempt >= self.max_attempts:
            payload["error"] = f"gave up after {attempt} attempts: {payload['error']}"
            retryable = False
        payload["retryable"] = retryable
        key = f"{item.key}:failed:{attempt}"
        if retryable:
            if retry_after is not None:
                delay = max(0.0, retry_after)  # the server knows its rate limit best
            else:
                # Jittered, so messages that failed in one outage do not retry in lockstep.
                backoff = exponential(attempt, self.base_backoff_s, self.max_backoff_s)
                delay = self.jitter.scale(backoff, key)
            item.next_attempt_at = self._clock.now() + delay
            payload["next_attempt_at"] = item.next_attempt_at
            log.warning(
                "notification %s failed (attempt %d): %s", item.key, attempt, payload["error"]
            )
        else:
            item.rejected = True
            log.error("notification %s rejected: %s", item.key, payload["error"])
        return self._record(item, _FAILED, key, payload)

    def _record(
        self, item: PendingItem, type_: EventType, key: str, extra: dict[str, Any]
    ) -> Event:
        payload = {"message_id": item.message.id, "notifier": item.notifier, **extra}
        event = Event(
            ts=self._clock.now(),
            type=type_,
            incident_id=item.message.incident_id,
            key=key,
            payload=payload,
        )
        return self._store.append([event])[0]
