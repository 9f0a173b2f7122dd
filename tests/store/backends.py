"""Both store backends behind one handle, for the contract, HA and fencing tests.

PostgreSQL is the real server at ``GATEWARDEN_TEST_PG_DSN`` (default: 127.0.0.1:5432, database
``test``, user ``postgres``); every test gets a fresh schema, dropped afterwards. If PostgreSQL
is unreachable the test fails, unless ``GATEWARDEN_SKIP_PG=1`` says to skip it.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from gatewarden.store.postgres import PostgresStore
from gatewarden.store.sqlite import SQLiteStore

PG_DSN = os.environ.get(
    "GATEWARDEN_TEST_PG_DSN", "host=127.0.0.1 port=5432 dbname=test user=postgres"
)
BACKENDS = ["sqlite", "postgres"]

Store = SQLiteStore | PostgresStore


def admin_connection() -> psycopg.Connection[tuple[Any, ...]]:
    """A plain connection to the test database; fails (or skips, if told to) when down."""
    try:
        return psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("GATEWARDEN_SKIP_PG") == "1":
            pytest.skip(f"PostgreSQL unreachable and GATEWARDEN_SKIP_PG=1: {exc}")
        pytest.fail(
            f"PostgreSQL unreachable at {PG_DSN!r} ({exc}); start it, point "
            "GATEWARDEN_TEST_PG_DSN at one, or set GATEWARDEN_SKIP_PG=1 to skip these tests"
        )


@dataclass
class Backend:
    """One store location; ``open()`` gives a new handle on it (a new connection, like another
    replica or a restarted daemon)."""

    name: str
    tmp_path: Path
    schema: str = field(default_factory=lambda: f"gwt_{uuid.uuid4().hex[:12]}")
    opened: list[Store] = field(default_factory=list)

    def open(self, **kwargs: Any) -> Store:
        store: Store
        if self.name == "sqlite":
            store = SQLiteStore(self.tmp_path / "events.db")
        else:
            store = PostgresStore(PG_DSN, schema=self.schema, **kwargs)
        self.opened.append(store)
        return store

    def execute(self, statement: str) -> None:
        """Run raw SQL against the store's tables, behind gatewarden's back."""
        if self.name == "sqlite":
            db = sqlite3.connect(self.tmp_path / "events.db", isolation_level=None)
            try:
                db.execute(statement)
            finally:
                db.close()
            return
        with admin_connection() as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
            conn.execute(statement)

    def close(self) -> None:
        for store in self.opened:
            store.close()
        if self.name == "postgres":
            with admin_connection() as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
                )


def open_backend(name: str, tmp_path: Path) -> Iterator[Backend]:
    """Body of a parametrised fixture: ``yield from open_backend(request.param, tmp_path)``."""
    if name == "postgres":
        admin_connection().close()  # fail (or skip) early and clearly when the server is down
    backend = Backend(name, tmp_path)
    try:
        yield backend
    finally:
        backend.close()
