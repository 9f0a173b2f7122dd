"""Event stores. SQLite is the embedded default; PostgreSQL (shared by HA replicas) follows the
same protocol and the same contract tests.

``psycopg`` is only imported when a PostgreSQL store is opened, so a SQLite-only install does
not need it.
"""

from __future__ import annotations

from pathlib import Path

from gatewarden.protocols import Store
from gatewarden.store.sqlite import SQLiteStore

__all__ = ["SQLiteStore", "is_postgres_url", "open_store"]


def is_postgres_url(target: str | Path) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def open_store(target: str | Path, *, schema: str = "gatewarden") -> Store:
    """A ``postgresql://`` URL opens a PostgresStore in ``schema``; anything else is a SQLite
    file path (or ``:memory:``)."""
    if is_postgres_url(target):
        from gatewarden.store.postgres import PostgresStore  # optional dependency

        return PostgresStore(str(target), schema=schema)
    return SQLiteStore(target)
