"""The Store contract, run against SQLite and PostgreSQL alike (see conftest ``backend``)."""

from __future__ import annotations

import pytest

from gatewarden.errors import StoreError
from gatewarden.models import Event, EventType
from gatewarden.store.migrations import BACKENDS, LATEST, migrations
from tests.store.backends import Backend

T0 = 1_700_000_000.0


def ev(
    type_: EventType = EventType.ALERT_FIRED,
    *,
    key: str | None = None,
    incident: str | None = None,
    run: str | None = None,
    ts: float = T0,
    **payload: object,
) -> Event:
    return Event(ts=ts, type=type_, incident_id=incident, run_id=run, key=key, payload=payload)


def seq_of(event: Event) -> int:
    assert isinstance(event.seq, int), event
    return event.seq


def without_seq(events: list[Event]) -> list[Event]:
    return [e.model_copy(update={"seq": None}) for e in events]


# -- append ------------------------------------------------------------------------------------


def test_append_assigns_increasing_seqs_and_reads_back_what_was_written(backend: Backend) -> None:
    store = backend.open()
    written = [
        ev(EventType.INCIDENT_OPENED, key="opened:i1", incident="i1", scope={"provider": "x"}),
        ev(EventType.PLAYBOOK_STARTED, incident="i1", run="r1", ts=T0 + 1.25, mode="auto"),
        ev(EventType.ALERT_FIRED, ts=T0 + 2, evidence={"observed": 0.5, "values": [1, 2.5]}),
    ]
    stored = store.append(written)
    seqs = [seq_of(e) for e in stored]
    assert seqs == sorted(set(seqs))
    assert without_seq(stored) == written
    assert store.events() == stored
    more = store.append([ev(key="later")])
    assert seq_of(more[0]) > seqs[-1]


def test_append_of_nothing_stores_nothing(backend: Backend) -> None:
    store = backend.open()
    assert store.append([]) == []
    assert store.events() == []


def test_append_is_idempotent_by_key_and_the_first_event_wins(backend: Backend) -> None:
    store = backend.open()
    first = store.append([ev(key="k1", n=1), ev(key="k2", n=2)])
    again = store.append([ev(key="k1", n=99, ts=T0 + 5), ev(key="k3", n=3)])
    assert again[0] == first[0]  # the stored event, payload and seq of the first append
    assert again[0].payload == {"n": 1}
    assert [e.key for e in store.events()] == ["k1", "k2", "k3"]
    assert seq_of(again[1]) > seq_of(first[1])


def test_a_key_repeated_inside_one_batch_is_stored_once(backend: Backend) -> None:
    store = backend.open()
    stored = store.append([ev(key="dup", n=1), ev(key="dup", n=2)])
    assert stored[0] == stored[1] and stored[1].payload == {"n": 1}
    assert len(store.events()) == 1


def test_events_without_a_key_are_never_deduplicated(backend: Backend) -> None:
    store = backend.open()
    store.append([ev(n=1), ev(n=1)])
    store.append([ev(n=1)])
    assert len(store.events()) == 3


def test_event_by_key(backend: Backend) -> None:
    store = backend.open()
    [stored] = store.append([ev(EventType.ACTION_INTENDED, key="action:r1:1", run="r1", step=1)])
    assert store.event_by_key("action:r1:1") == stored
    assert store.event_by_key("action:r1:2") is None


# -- reading -----------------------------------------------------------------------------------


@pytest.fixture
def log(backend: Backend) -> list[Event]:
    store = backend.open()
    return store.append(
        [
            ev(EventType.INCIDENT_OPENED, incident="i1", key="o1"),
            ev(EventType.ALERT_GROUPED, incident="i1"),
            ev(EventType.PLAYBOOK_STARTED, incident="i1", run="r1"),
            ev(EventType.INCIDENT_OPENED, incident="i2", key="o2"),
            ev(EventType.APPROVAL_REQUESTED, incident="i1", run="r1"),
            ev(EventType.PLAYBOOK_STARTED, incident="i2", run="r2"),
            ev(EventType.NOTIFICATION_QUEUED),
        ]
    )


def test_filters_select_and_keep_seq_order(backend: Backend, log: list[Event]) -> None:
    store = backend.open()
    assert store.events() == log
    assert store.events(incident_id="i1") == [log[0], log[1], log[2], log[4]]
    assert store.events(run_id="r1") == [log[2], log[4]]
    started = [EventType.PLAYBOOK_STARTED.value]
    assert store.events(types=started) == [log[2], log[5]]
    both = [EventType.INCIDENT_OPENED.value, EventType.NOTIFICATION_QUEUED.value]
    assert store.events(types=both) == [log[0], log[3], log[6]]
    assert store.events(types=[]) == log  # an empty filter is no filter
    assert store.events(incident_id="i2", types=started) == [log[5]]
    assert store.events(incident_id="nope") == []


def test_after_seq_and_limit_page_through_the_log(backend: Backend, log: list[Event]) -> None:
    store = backend.open()
    assert store.events(after_seq=log[2].seq or 0) == log[3:]
    assert store.events(limit=2) == log[:2]
    assert store.events(limit=0) == []
    pages, cursor = [], 0
    while page := store.events(after_seq=cursor, limit=3):
        pages.append(page)
        cursor = page[-1].seq or 0
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [e for p in pages for e in p] == log
    assert store.events(after_seq=log[-1].seq or 0) == []
    assert store.events(incident_id="i1", after_seq=log[1].seq or 0, limit=1) == [log[2]]


# -- keyed state -------------------------------------------------------------------------------


def test_state_get_put_overwrite(backend: Backend) -> None:
    store = backend.open()
    assert store.get_state("cursor") is None
    store.put_state("cursor", "41")
    store.put_state("cursor", "42")
    store.put_state("empty", "")
    store.put_state("ünï", '{"a": [1, "é"]}')
    reopened = backend.open()
    assert reopened.get_state("cursor") == "42"
    assert reopened.get_state("empty") == ""
    assert reopened.get_state("ünï") == '{"a": [1, "é"]}'


# -- leases ------------------------------------------------------------------------------------


def test_lease_take_renew_refuse_expire_steal(backend: Backend) -> None:
    store = backend.open()
    assert store.lease_token("leader") is None
    assert store.lease("leader", "a", 30, T0) == 1  # free: taken
    assert store.lease("leader", "a", 30, T0 + 20) == 1  # ours: renewed, same token
    assert store.lease("leader", "b", 30, T0 + 49) is None  # renewed until T0 + 50
    assert store.lease("leader", "b", 30, T0 + 50) is None  # expiry instant still a's
    assert store.lease_token("leader") == 1
    assert store.lease("leader", "b", 30, T0 + 50.5) == 2  # expired: stolen, token bumped
    assert store.lease("leader", "a", 30, T0 + 51) is None  # the old holder is refused
    assert store.lease_token("leader") == 2
    assert store.lease("leader", "b", 30, T0 + 200) == 3  # our own expired lease: new term
    assert store.lease("other", "a", 30, T0 + 200) == 1  # leases are independent
    assert backend.open().lease_token("leader") == 3


# -- migrations --------------------------------------------------------------------------------


def test_migrations_are_idempotent_on_reopen(backend: Backend) -> None:
    store = backend.open()
    assert store.schema_version() == LATEST
    store.append([ev(key="kept")])
    store.put_state("s", "v")
    store.close()
    reopened = backend.open()
    again = backend.open()
    assert reopened.schema_version() == again.schema_version() == LATEST
    assert [e.key for e in again.events()] == ["kept"] and again.get_state("s") == "v"


def test_each_migration_is_recorded_once(backend: Backend) -> None:
    backend.open()
    backend.open()
    backend.execute(
        "INSERT INTO state (name, value) "
        "SELECT 'versions', COUNT(*) || '/' || COUNT(DISTINCT version) FROM schema_version"
    )
    assert backend.open().get_state("versions") == f"{LATEST}/{LATEST}"


def test_a_store_with_a_newer_schema_is_refused(backend: Backend) -> None:
    backend.open().close()
    backend.execute(f"INSERT INTO schema_version (version) VALUES ({LATEST + 1})")
    with pytest.raises(StoreError, match=rf"schema v{LATEST + 1} is newer .*\(v{LATEST}\)"):
        backend.open()


def test_every_backend_ships_the_same_migration_versions() -> None:
    shipped = {b: [(m.version, m.name) for m in migrations(b)] for b in BACKENDS}
    assert shipped["sqlite"] == shipped["postgres"]
    assert [v for v, _ in shipped["sqlite"]] == list(range(1, LATEST + 1))
