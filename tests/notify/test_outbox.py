from __future__ import annotations

import io
from collections.abc import Sequence

import pandas as pd
import pytest

from gatewarden.backoff import NO_JITTER
from gatewarden.clock import VirtualClock
from gatewarden.errors import NotifyRejected, NotifyRetryable
from gatewarden.models import Delivery, Event, EventType, Message
from gatewarden.notify.console import ConsoleNotifier, format_line
from gatewarden.notify.outbox import NotifyStage
from gatewarden.protocols import Stage, Tick
from gatewarden.store.sqlite import SQLiteStore
from tests.notify.factory import T0, lifecycle


class Recorder:
    """A lightweight real notifier: records deliveries, fails on demand."""

    def __init__(self, name: str = "rec") -> None:
        self.name = name
        self.delivered: list[tuple[str, str | None]] = []
        self.failures: list[Exception] = []

    def deliver(self, message: Message, *, thread_ref: str | None = None) -> Delivery:
        if self.failures:
            raise self.failures.pop(0)
        self.delivered.append((message.id, thread_ref))
        return Delivery(ok=True, ref=f"{self.name}:{len(self.delivered)}")


def tick(clock: VirtualClock, events: Sequence[Event] = ()) -> Tick:
    return Tick(now=clock.now(), start=clock.now(), records=pd.DataFrame(), events=list(events))


def appended(store: SQLiteStore, events: list[Event]) -> list[Event]:
    return store.append(events)


def types(store: SQLiteStore, type_: EventType) -> list[Event]:
    return store.events(types=[type_.value])


def test_stage_protocol_and_queue_then_deliver_in_order_with_threads() -> None:
    store, clock, rec = SQLiteStore(":memory:"), VirtualClock(T0), Recorder()
    stage = NotifyStage(store, [rec], clock)
    assert isinstance(stage, Stage)
    stored = appended(store, lifecycle())
    t = tick(clock, stored)
    stage.run(t)
    queued = types(store, EventType.NOTIFICATION_QUEUED)
    delivered = types(store, EventType.NOTIFICATION_DELIVERED)
    assert len(queued) == len(delivered) == len(rec.delivered) == 12
    assert [q.payload["message"]["id"] for q in queued] == [m for m, _ in rec.delivered]
    assert rec.delivered[0][1] is None  # the root opens a thread
    assert all(ref == "rec:1" for _, ref in rec.delivered[1:])  # replies carry its ref
    assert delivered[0].payload["ref"] == "rec:1"
    assert t.events[-1].type is EventType.NOTIFICATION_DELIVERED  # appended events are shared
    assert stage.pending() == []
    # A re-run of the same tick (same stored events) posts nothing new, even from a new stage.
    NotifyStage(store, [rec], clock).run(tick(clock, stored))
    assert len(rec.delivered) == 12
    # Keyed events re-appended resolve to the stored ones, hence the same message ids.
    keyed = [e for e in lifecycle() if e.key]
    NotifyStage(store, [rec], clock).run(tick(clock, store.append(keyed)))
    assert len(rec.delivered) == 12


def test_retryable_failure_blocks_the_notifier_and_backs_off() -> None:
    store, clock, rec = SQLiteStore(":memory:"), VirtualClock(T0), Recorder()
    # The exponential schedule itself; its jitter is tested in tests/reliability/test_retry_jitter
    stage = NotifyStage(store, [rec], clock, base_backoff_s=10, jitter=NO_JITTER)
    rec.failures = [NotifyRetryable("down"), NotifyRetryable("down")]
    stage.run(tick(clock, appended(store, lifecycle()[:5])))
    assert rec.delivered == []
    failed = types(store, EventType.NOTIFICATION_FAILED)
    assert [f.payload["attempt"] for f in failed] == [1]
    assert failed[0].payload["retryable"] is True
    assert failed[0].payload["next_attempt_at"] == T0 + 10
    clock.advance(5)
    stage.run(tick(clock))  # not due yet: no attempt
    assert len(types(store, EventType.NOTIFICATION_FAILED)) == 1
    clock.advance(5)
    stage.run(tick(clock))  # second failure, backoff doubles
    failed = types(store, EventType.NOTIFICATION_FAILED)
    assert failed[-1].payload["attempt"] == 2
    assert failed[-1].payload["next_attempt_at"] == clock.now() + 20
    clock.advance(20)
    stage.run(tick(clock))
    assert len(rec.delivered) == 3  # root, grouped, severity — in order, exactly once
    assert rec.delivered[0][1] is None and rec.delivered[1][1] == "rec:1"


def test_rejected_is_recorded_not_retried_and_does_not_block() -> None:
    store, clock, rec = SQLiteStore(":memory:"), VirtualClock(T0), Recorder()
    stage = NotifyStage(store, [rec], clock)
    rec.failures = [NotifyRejected("channel_not_found")]
    stage.run(tick(clock, appended(store, lifecycle()[:5])))
    failed = types(store, EventType.NOTIFICATION_FAILED)
    assert len(failed) == 1 and failed[0].payload["retryable"] is False
    assert len(rec.delivered) == 2  # later messages went on (as top-level: no root ref)
    assert all(ref is None for _, ref in rec.delivered)
    clock.advance(3600)
    stage.run(tick(clock))
    assert len(rec.delivered) == 2 and len(types(store, EventType.NOTIFICATION_FAILED)) == 1


def test_gives_up_after_max_attempts_and_records_it() -> None:
    store, clock, rec = SQLiteStore(":memory:"), VirtualClock(T0), Recorder()
    stage = NotifyStage(store, [rec], clock, max_attempts=2, base_backoff_s=1)
    rec.failures = [NotifyRetryable("x"), NotifyRetryable("x")]
    stage.run(tick(clock, appended(store, lifecycle()[:2])))
    clock.advance(10)
    stage.run(tick(clock))
    failed = types(store, EventType.NOTIFICATION_FAILED)
    assert [f.payload["retryable"] for f in failed] == [True, False]
    assert "gave up after 2 attempts" in failed[-1].payload["error"]


def test_restart_resumes_from_the_store_and_notifiers_are_independent() -> None:
    store, clock = SQLiteStore(":memory:"), VirtualClock(T0)
    slow, fast = Recorder("slow"), Recorder("fast")
    slow.failures = [NotifyRetryable("rate limited", retry_after=60)]
    NotifyStage(store, [slow, fast], clock).run(tick(clock, appended(store, lifecycle()[:5])))
    assert len(fast.delivered) == 3 and slow.delivered == []
    clock.advance(60)
    restarted = NotifyStage(store, [slow, fast], clock)  # a new process: nothing in memory
    assert len(restarted.pending()) == 3
    restarted.run(tick(clock))
    assert len(slow.delivered) == 3 and len(fast.delivered) == 3


def test_bounded_work_per_tick() -> None:
    store, clock, rec = SQLiteStore(":memory:"), VirtualClock(T0), Recorder()
    stage = NotifyStage(store, [rec], clock, max_per_tick=5)
    stage.run(tick(clock, appended(store, lifecycle())))
    assert len(rec.delivered) == 5
    stage.run(tick(clock))
    stage.run(tick(clock))
    assert len(rec.delivered) == 12


def test_console_lines_and_thread_indentation() -> None:
    store, clock, out = SQLiteStore(":memory:"), VirtualClock(T0), io.StringIO()
    NotifyStage(store, [ConsoleNotifier(out)], clock).run(tick(clock, appended(store, lifecycle())))
    lines = out.getvalue().splitlines()
    assert len(lines) == 12
    assert lines[0].startswith("[22:13:20] WARNING incident opened: error_rate on provider=openai")
    assert "observed 0.31 vs expected 0.01 over 5m" in lines[0]
    assert all(line.startswith("    ↳ [") for line in lines[1:])
    assert any("approval needed: step 0 of run run-1" in line for line in lines)
    assert "[approve/deny: run-1]" in next(line for line in lines if "approval needed" in line)


def test_console_closed_stream_is_rejected() -> None:
    stream = io.StringIO()
    stream.close()
    message = Message(id="m", incident_id=None, ts=T0, kind="x", title="t")
    with pytest.raises(NotifyRejected):
        ConsoleNotifier(stream).deliver(message)
    assert format_line(message).endswith("WARNING t")


class Rewriter(Recorder):
    """A recorder that can also rewrite what it delivered (like Slack's chat.update)."""

    def __init__(self, name: str = "rw") -> None:
        super().__init__(name)
        self.rewrites: list[tuple[str, str]] = []

    def update(self, ref: str, message: Message) -> Delivery:
        if self.failures:
            raise self.failures.pop(0)
        self.rewrites.append((ref, message.title))
        return Delivery(ok=True, ref=ref)


def test_rewrites_reach_only_updaters_in_order_and_need_their_target() -> None:
    store, clock = SQLiteStore(":memory:"), VirtualClock(T0)
    plain, rewriter = Recorder("plain"), Rewriter("rw")
    NotifyStage(store, [plain, rewriter], clock).run(tick(clock, appended(store, lifecycle())))
    assert len(plain.delivered) == len(rewriter.delivered) == 12
    refs = {ref for ref, _ in rewriter.rewrites}
    assert refs == {"rw:1", "rw:5"}  # the root and the approval gate, by their delivery refs
    assert rewriter.rewrites[-1] == ("rw:1", "incident resolved: error_rate on provider=openai")
    # A rejected root leaves nothing to rewrite: its rewrites are recorded as refused.
    store, rewriter = SQLiteStore(":memory:"), Rewriter("rw")
    rewriter.failures = [NotifyRejected("channel_not_found")]
    NotifyStage(store, [rewriter], clock).run(tick(clock, appended(store, lifecycle()[:5])))
    failed = types(store, EventType.NOTIFICATION_FAILED)
    assert [f.payload["retryable"] for f in failed] == [False, False]
    assert "never delivered" in failed[1].payload["error"] and rewriter.rewrites == []


def test_events_appended_outside_a_tick_are_announced() -> None:
    store, clock, rec = SQLiteStore(":memory:"), VirtualClock(T0), Recorder()
    events = lifecycle()
    stage = NotifyStage(store, [rec], clock)
    stage.run(tick(clock, appended(store, events[:7])))  # up to the approval request
    assert len(rec.delivered) == 5
    store.append([events[7]])  # a decision from Slack or the CLI: in no tick's events
    stage.run(tick(clock))
    assert rec.delivered[-1][0] == f"msg:{events[7].key}"


def test_a_store_from_before_the_cursor_is_not_announced_again() -> None:
    store, clock, rec = SQLiteStore(":memory:"), VirtualClock(T0), Recorder()
    NotifyStage(store, [rec], clock).run(tick(clock, appended(store, lifecycle()[:5])))
    store.put_state("notify.intake.seq", "")  # as left by a version without the cursor
    fresh = Recorder()
    NotifyStage(store, [fresh], clock).run(tick(clock))
    assert fresh.delivered == []
    store.append(lifecycle()[5:7])
    NotifyStage(store, [fresh], clock).run(tick(clock))
    assert [m for m, _ in fresh.delivered] == ["msg:run-1:started", "msg:run-1:0:approval"]


def test_an_unreadable_incident_still_gets_its_opening_message() -> None:
    store, clock, rec = SQLiteStore(":memory:"), VirtualClock(T0), Recorder()
    odd = Event(
        ts=T0,
        type=EventType.INCIDENT_OPENED,
        incident_id="inc-odd",
        payload={"kinds": ["cost"], "scope": {"team": "a"}, "severity": "apocalyptic"},
    )
    stage = NotifyStage(store, [rec], clock)
    stage.run(tick(clock, appended(store, [odd])))
    assert [m for m, _ in rec.delivered] == ["msg:incident:inc-odd"]
    assert stage.intake.problems == {"unreadable_incident": 1}


def test_no_rewrite_is_queued_for_a_notifier_that_never_had_the_target() -> None:
    store, clock = SQLiteStore(":memory:"), VirtualClock(T0)
    events = lifecycle()
    NotifyStage(store, [Recorder("plain")], clock).run(tick(clock, appended(store, events[:7])))
    late = Rewriter("rw")  # configured after the incident opened
    NotifyStage(store, [Recorder("plain"), late], clock).run(
        tick(clock, appended(store, [events[7]]))
    )
    assert [m for m, _ in late.delivered] == [f"msg:{events[7].key}"]
    assert late.rewrites == [] and types(store, EventType.NOTIFICATION_FAILED) == []
    queued = [q.payload for q in types(store, EventType.NOTIFICATION_QUEUED)]
    assert not any(
        q["notifier"] == "rw" and q["message"]["kind"] == "message.update" for q in queued
    )
