"""Retries back off with jitter: within the exponential bound, spread across failures, pinned
by the injected seed, and stable across ticks and restarts.

Both retry paths are exercised for real: the remediation engine (a gateway call failing
transiently, on the in-memory gateway) and the notification outbox (a notifier raising
NotifyRetryable).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import pytest

from gatewarden.backoff import NO_JITTER, Jitter, exponential
from gatewarden.clock import VirtualClock
from gatewarden.errors import NotifyRetryable
from gatewarden.models import Delivery, Event, EventType, Message
from gatewarden.notify.outbox import NotifyStage
from gatewarden.protocols import Tick
from gatewarden.remediate.approvals import record_decision
from gatewarden.remediate.guardrails import backoff_delay
from gatewarden.remediate.runlog import run_id_for
from gatewarden.store.sqlite import SQLiteStore
from tests.notify.factory import T0, lifecycle
from tests.remediate.helpers import Harness, failover_playbook, open_incident

KEYS = [f"action:run-{i}:1:failed:1" for i in range(4000)]


# -- the draw ---------------------------------------------------------------------------------


def test_draws_are_uniform_over_the_unit_interval() -> None:
    draws = sorted(Jitter(seed=7).draw(k) for k in KEYS)
    assert draws[0] >= 0.0 and draws[-1] < 1.0
    # Full range, no clumping: every quarter holds a quarter of the draws (±3 %).
    for q in (0.25, 0.5, 0.75):
        share = sum(d < q for d in draws) / len(draws)
        assert abs(share - q) < 0.03, (q, share)
    assert draws[0] < 0.01 and draws[-1] > 0.99


def test_draws_are_reproducible_per_key_and_set_by_the_seed() -> None:
    a, b = Jitter(seed=1), Jitter(seed=2)
    assert [a.draw(k) for k in KEYS[:50]] == [Jitter(seed=1).draw(k) for k in KEYS[:50]]
    assert sum(a.draw(k) != b.draw(k) for k in KEYS[:50]) == 50
    assert len({a.draw(k) for k in KEYS[:50]}) == 50  # distinct failures, distinct delays


@pytest.mark.parametrize("attempt", range(1, 11))
def test_backoff_delay_is_within_the_exponential_bound_and_uses_all_of_it(attempt: int) -> None:
    base, cap = 15.0, 300.0
    bound = min(cap, base * 2 ** (attempt - 1))
    jitter = Jitter(seed=3)
    delays = [backoff_delay(attempt, base, cap, jitter, k) for k in KEYS[:500]]
    assert all(0.0 <= d <= bound for d in delays)
    assert min(delays) < 0.05 * bound and max(delays) > 0.95 * bound  # full jitter
    assert backoff_delay(attempt, base, cap) == bound == exponential(attempt, base, cap)
    assert backoff_delay(attempt, base, cap, NO_JITTER, "k") == bound
    half = [backoff_delay(attempt, base, cap, Jitter(seed=3, spread=0.5), k) for k in KEYS[:500]]
    assert all(bound / 2 <= d <= bound for d in half)


@pytest.mark.parametrize("spread", [-0.1, 1.5])
def test_a_spread_outside_zero_to_one_is_refused(spread: float) -> None:
    with pytest.raises(ValueError, match="spread"):
        Jitter(spread=spread)


# -- the remediation engine ---------------------------------------------------------------------

RUN = run_id_for("inc-1", "provider-failover")
BASE = 120.0


def first_retry(seed: int, *, restart_seed: int | None = None) -> tuple[Event, float]:
    """A failover whose first gateway call fails transiently; ticking every second, when is
    it retried? Returns the failure and the time the retry was applied. A restart (a new stage
    on the same store, seeded ``restart_seed``) happens right after the failure."""
    jitter = Jitter(seed=seed)
    h = Harness([failover_playbook()], retry_base_s=BASE, breaker_threshold=10, retry_jitter=jitter)
    open_incident(h.store, "inc-1", {"provider": "openai"})
    h.tick()
    record_decision(h.store, run_id=RUN, step=0, decision="granted", by="U1", now=h.clock.now())
    h.gateway.fail_next(1)
    h.tick()
    [failure] = h.events(EventType.ACTION_FAILED)
    stage = h.stage
    if restart_seed is not None:
        h.kwargs["retry_jitter"] = Jitter(seed=restart_seed)
        stage = h.new_stage()
    for _ in range(int(BASE) + 2):
        h.tick(1.0, stage=stage)
        applied = h.events(EventType.ACTION_APPLIED)
        if applied:
            assert len(h.gateway.calls) == 1  # the failed call is not counted as applied
            return failure, applied[0].ts
    raise AssertionError("never retried")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_engine_retries_after_the_jittered_delay_of_its_seed(seed: int) -> None:
    failure, retried = first_retry(seed)
    delay = Jitter(seed=seed).scale(BASE, failure.key or "")
    assert 0.0 <= delay <= BASE
    # Ticks are one second apart: the first tick at or after the drawn instant retries.
    assert failure.ts + delay <= retried < failure.ts + delay + 1.0


def test_engine_retry_instants_differ_by_seed() -> None:
    retries = {first_retry(seed)[1] for seed in (1, 2, 3)}
    assert len(retries) == 3


def test_engine_retry_instant_survives_a_restart_with_the_same_seed() -> None:
    _, undisturbed = first_retry(5)
    _, restarted = first_retry(5, restart_seed=5)
    assert restarted == undisturbed


# -- the notification outbox ----------------------------------------------------------------------


class Flaky:
    """A real notifier shape: fails the first ``failures`` deliveries, then records them."""

    def __init__(self, name: str, failures: int = 1) -> None:
        self.name = name
        self.failures = failures
        self.delivered: list[str] = []

    def deliver(self, message: Message, *, thread_ref: str | None = None) -> Delivery:
        if self.failures:
            self.failures -= 1
            raise NotifyRetryable("slack is down")
        self.delivered.append(message.id)
        return Delivery(ok=True, ref=f"{self.name}:{len(self.delivered)}")


def tick(clock: VirtualClock, events: Sequence[Event] = ()) -> Tick:
    return Tick(now=clock.now(), start=clock.now(), records=pd.DataFrame(), events=list(events))


def failures(store: SQLiteStore) -> list[Event]:
    return store.events(types=[EventType.NOTIFICATION_FAILED.value])


def test_outbox_retries_spread_over_the_backoff_window() -> None:
    """Twenty notifiers failing in the same outage do not all come back at the same instant."""
    store, clock = SQLiteStore(":memory:"), VirtualClock(T0)
    notifiers = [Flaky(f"n{i}") for i in range(20)]
    stage = NotifyStage(store, notifiers, clock, base_backoff_s=60, jitter=Jitter(seed=4))
    stage.run(tick(clock, store.append(lifecycle()[:2])))
    waits = [f.payload["next_attempt_at"] - clock.now() for f in failures(store)]
    assert len(waits) == 20 and all(0.0 <= w <= 60.0 for w in waits)
    assert len(set(waits)) == 20 and max(waits) - min(waits) > 30.0


@pytest.mark.parametrize("seed", [1, 2])
def test_outbox_backoff_is_jittered_within_bounds_per_attempt(seed: int) -> None:
    store, clock = SQLiteStore(":memory:"), VirtualClock(T0)
    flaky = Flaky("slack", failures=6)
    jitter = Jitter(seed=seed)
    stage = NotifyStage(store, [flaky], clock, base_backoff_s=10, max_backoff_s=100, jitter=jitter)
    stage.run(tick(clock, store.append(lifecycle()[:2])))
    for attempt in range(1, 7):
        last = failures(store)[-1]
        assert last.payload["attempt"] == attempt
        wait = last.payload["next_attempt_at"] - last.ts
        drawn = jitter.scale(exponential(attempt, 10, 100), last.key or "")
        assert wait == pytest.approx(drawn, abs=1e-6)  # stored as an instant: float rounding
        assert 0.0 <= wait <= min(100.0, 10.0 * 2 ** (attempt - 1))
        clock.advance(max(wait, 0.001))
        stage.run(tick(clock))
    assert len(flaky.delivered) == 1


def test_outbox_keeps_the_stored_retry_instant_across_a_restart() -> None:
    """The draw is stored with the failure: a restarted stage, whatever its seed, waits for it."""
    store, clock = SQLiteStore(":memory:"), VirtualClock(T0)
    flaky = Flaky("slack")
    NotifyStage(store, [flaky], clock, base_backoff_s=100, jitter=Jitter(seed=1)).run(
        tick(clock, store.append(lifecycle()[:2]))
    )
    due = failures(store)[0].payload["next_attempt_at"]
    assert T0 < due < T0 + 100  # a real draw, neither end of the window
    restarted = NotifyStage(store, [flaky], clock, base_backoff_s=100, jitter=Jitter(seed=99))
    clock.advance(due - clock.now() - 0.5)
    restarted.run(tick(clock))
    assert flaky.delivered == []
    clock.advance(0.5)
    restarted.run(tick(clock))
    assert len(flaky.delivered) == 1
