"""Event stores. SQLite is the embedded default; a PostgreSQL backend shares the protocol."""

from gatewarden.store.sqlite import SQLiteStore

__all__ = ["SQLiteStore"]
