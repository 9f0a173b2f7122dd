"""PostgreSQL-only behaviour: reconnecting after the server drops us, bounded failures."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gatewarden.errors import StoreError
from gatewarden.models import Event, EventType
from gatewarden.store import is_postgres_url, open_store
from gatewarden.store.postgres import PostgresStore
from gatewarden.store.sqlite import SQLiteStore
from tests.store.backends import Backend, admin_connection, open_backend


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Backend]:
    yield from open_backend("postgres", tmp_path)


def terminate(application_name: str) -> int:
    """Kill the server side of every connection with that name, like a DBA or a restart."""
    with admin_connection() as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchall()
    return len(rows)


def alert(key: str) -> Event:
    return Event(ts=1.0, type=EventType.ALERT_FIRED, key=key)


def test_a_dropped_connection_fails_one_call_and_the_next_reconnects(pg: Backend) -> None:
    name = f"gw-test-{uuid.uuid4().hex[:8]}"
    store = pg.open(application_name=name)
    store.append([alert("before")])
    assert terminate(name) == 1
    with pytest.raises(StoreError, match="append failed"):
        store.append([alert("during")])
    assert store.append([alert("after")])[0].key == "after"
    assert [e.key for e in store.events()] in (["before", "after"], ["before", "during", "after"])

    for call in (store.events, lambda: store.get_state("x"), lambda: store.lease_token("l")):
        assert terminate(name) == 1
        with pytest.raises(StoreError):
            call()
        call()  # the next call is served by a new connection


def test_a_lease_survives_a_reconnect_with_its_token(pg: Backend) -> None:
    name = f"gw-test-{uuid.uuid4().hex[:8]}"
    store = pg.open(application_name=name)
    assert store.lease("leader", "a", 30, 0.0) == 1
    terminate(name)
    with pytest.raises(StoreError):
        store.lease("leader", "a", 30, 10.0)
    assert store.lease("leader", "a", 30, 11.0) == 1


def test_an_unreachable_server_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="OperationalError"):
        PostgresStore("host=127.0.0.1 port=1 dbname=test user=postgres", connect_timeout_s=2)


def test_a_bad_schema_name_is_refused_before_connecting() -> None:
    with pytest.raises(StoreError, match="invalid schema name"):
        PostgresStore("host=127.0.0.1 port=1", schema='x"; DROP TABLE events; --')


def test_open_store_picks_the_backend_from_the_target(pg: Backend, tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:5432/test"
    assert is_postgres_url(url) and not is_postgres_url(tmp_path / "x.db")
    store = open_store(url, schema=pg.schema)
    try:
        assert isinstance(store, PostgresStore) and store.schema == pg.schema
    finally:
        store.close()
    sqlite = open_store(tmp_path / "x.db")
    assert isinstance(sqlite, SQLiteStore)
    sqlite.close()
