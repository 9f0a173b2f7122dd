"""Concurrent writers, readers, migrators and lease takers, on both backends.

Each thread opens its own handle (its own connection), as two replicas would; one handle is
also shared by several threads, as the tick thread and the web thread share one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from gatewarden.models import Event, EventType
from gatewarden.store.migrations import LATEST
from tests.store.backends import Backend, Store

WRITERS = 4
PER_WRITER = 40


def run_threads(targets: list[Callable[[], None]]) -> None:
    """Start all at once (a barrier), join all, re-raise the first failure."""
    barrier = threading.Barrier(len(targets))
    errors: list[BaseException] = []

    def body(target: Callable[[], None]) -> None:
        try:
            barrier.wait()
            target()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_concurrent_appends_never_lose_reorder_or_duplicate(backend: Backend) -> None:
    stores = [backend.open() for _ in range(WRITERS - 1)]
    shared = backend.open()
    stores.append(shared)
    returned: dict[int, list[Event]] = {}
    seen: list[Event] = []
    done = threading.Event()

    def writer(n: int, store: Store) -> Callable[[], None]:
        def write() -> None:
            out = []
            for i in range(PER_WRITER):
                # Every writer also appends the same shared keys: only one copy may survive.
                batch = [
                    Event(ts=float(i), type=EventType.ALERT_FIRED, key=f"w{n}:{i}", payload={}),
                    Event(ts=float(i), type=EventType.ALERT_UPDATED, key=f"shared:{i}"),
                ]
                out.extend(store.append(batch))
            returned[n] = out

        return write

    def reader() -> None:
        # A reader paging by after_seq (as the remediation cache and the outbox do) must see
        # every event: a seq that commits after a bigger one would be skipped for good.
        store, cursor = backend.open(), 0
        while True:
            finished = done.is_set()
            for event in store.events(after_seq=cursor):
                assert event.seq is not None and event.seq > cursor
                cursor = event.seq
                seen.append(event)
            if finished:
                return
            done.wait(0.005)

    def writers_then_done() -> None:
        run_threads([writer(n, s) for n, s in enumerate(stores)] + [writer(WRITERS, shared)])
        done.set()

    run_threads([writers_then_done, reader])

    final = backend.open().events()
    seqs = [e.seq or 0 for e in final]
    assert len(final) == (WRITERS + 1) * PER_WRITER + PER_WRITER
    assert len(set(seqs)) == len(seqs) and seqs == sorted(seqs) and 0 not in seqs
    assert seen == final
    keys = {e.key for e in final}
    assert {f"shared:{i}" for i in range(PER_WRITER)} <= keys
    for out in returned.values():
        shared_copies = [e for e in out if e.key and e.key.startswith("shared:")]
        assert all(e == next(f for f in final if f.key == e.key) for e in shared_copies)


def test_replicas_opening_a_fresh_store_together_migrate_it_once(backend: Backend) -> None:
    opened: list[Store] = []
    run_threads([lambda: opened.append(backend.open()) for _ in range(4)])
    assert [s.schema_version() for s in opened] == [LATEST] * 4
    opened[0].append([Event(ts=0.0, type=EventType.ALERT_FIRED, key="k")])
    assert [e.key for e in opened[3].events()] == ["k"]


def test_racing_takers_of_an_expired_lease_get_one_token(backend: Backend) -> None:
    backend.open().lease("leader", "old", 10, 0.0)
    results: dict[str, int | None] = {}
    holders = [f"replica-{i}" for i in range(6)]

    def take(holder: str) -> Callable[[], None]:
        store = backend.open()

        def go() -> None:
            results[holder] = store.lease("leader", holder, 10, 100.0)

        return go

    run_threads([take(h) for h in holders])
    winners = [h for h, token in results.items() if token is not None]
    assert len(winners) == 1
    assert results[winners[0]] == 2
    assert backend.open().lease_token("leader") == 2
