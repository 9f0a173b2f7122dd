"""SQLite event store: the embedded default (one file, WAL, safe for one daemon process)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

from gatewarden.errors import StoreError
from gatewarden.models import Event
from gatewarden.store.codec import COLUMNS as _COLUMNS
from gatewarden.store.codec import clean_opt, clean_text, encode_payload, lease_decision
from gatewarden.store.codec import row_to_event as _row_to_event
from gatewarden.store.migrations import LATEST, migrations

_WAL_ATTEMPTS = 100  # x 50 ms = busy_timeout


def _enable_wal(db: sqlite3.Connection) -> None:
    """Switching a fresh file to WAL takes an exclusive lock without calling the busy handler,
    so two processes opening a new store at once (daemon and CLI at first start) can get
    "database is locked": retry for as long as busy_timeout would have waited."""
    for attempt in range(_WAL_ATTEMPTS):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == _WAL_ATTEMPTS - 1:
                raise
            time.sleep(0.05)


class SQLiteStore:
    """Store protocol over SQLite. ``path=":memory:"`` gives a private in-memory store."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            # One connection shared under a lock: the tick thread and the web thread both write.
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout=5000")
            _enable_wal(self._db)
            self._db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store {self.path}: {exc}") from exc
        self._lock = threading.RLock()
        try:
            self._migrate()
        except StoreError:
            self._db.close()
            raise

    def _rollback(self) -> None:
        # The failure may be that the connection is unusable (closed): keep the first error.
        with suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")

    # -- schema -----------------------------------------------------------------------------
    def schema_version(self) -> int:
        with self._lock:
            self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = self._db.execute("SELECT MAX(version) FROM schema_version").fetchone()
            return int(row[0]) if row and row[0] is not None else 0

    def _migrate(self) -> None:
        for migration in migrations("sqlite"):
            with self._lock:
                try:
                    # The version is read inside the write transaction: another process opening
                    # the same fresh file at the same time must find the migration applied.
                    self._db.execute("BEGIN IMMEDIATE")
                    current = self.schema_version()
                    if current > LATEST:
                        raise StoreError(
                            f"store schema v{current} is newer than this gatewarden (v{LATEST})"
                        )
                    if migration.version > current:
                        for statement in migration.statements():
                            self._db.execute(statement)
                        self._db.execute(
                            "INSERT INTO schema_version (version) VALUES (?)", (migration.version,)
                        )
                    self._db.execute("COMMIT")
                except (sqlite3.Error, StoreError) as exc:
                    self._rollback()
                    if isinstance(exc, StoreError):
                        raise
                    raise StoreError(f"migration {migration.name} failed: {exc}") from exc

    # -- events -----------------------------------------------------------------------------
    def append(self, events: Sequence[Event]) -> list[Event]:
        stored: list[Event] = []
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for event in events:
                    key = clean_opt(event.key)
                    cursor = self._db.execute(
                        "INSERT INTO events (ts, type, incident_id, run_id, key, payload) "
                        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                        (
                            event.ts,
                            event.type.value,
                            clean_opt(event.incident_id),
                            clean_opt(event.run_id),
                            key,
                            encode_payload(event.payload),
                        ),
                    )
                    if cursor.rowcount == 1:
                        stored.append(event.model_copy(update={"seq": cursor.lastrowid}))
                    else:
                        row = self._db.execute(
                            f"SELECT {_COLUMNS} FROM events WHERE key = ?", (key,)
                        ).fetchone()
                        stored.append(_row_to_event(row))
                self._db.execute("COMMIT")
            except (sqlite3.Error, StoreError) as exc:
                self._rollback()
                raise StoreError(f"append failed: {exc}") from exc
        return stored

    def events(
        self,
        *,
        incident_id: str | None = None,
        run_id: str | None = None,
        types: Sequence[str] | None = None,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> list[Event]:
        clauses = ["seq > ?"]
        params: list[object] = [after_seq]
        if incident_id is not None:
            clauses.append("incident_id = ?")
            params.append(clean_text(incident_id))
        if run_id is not None:
            clauses.append("run_id = ?")
            params.append(clean_text(run_id))
        if types:
            clauses.append(f"type IN ({','.join('?' * len(types))})")
            params.extend(clean_text(str(t)) for t in types)
        sql = f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(clauses)} ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_row_to_event(r) for r in self._read(sql, params)]

    def event_by_key(self, key: str) -> Event | None:
        rows = self._read(f"SELECT {_COLUMNS} FROM events WHERE key = ?", [clean_text(key)])
        return _row_to_event(rows[0]) if rows else None

    def _read(self, sql: str, params: Sequence[object]) -> list[tuple[object, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"read failed: {exc}") from exc

    # -- keyed state ------------------------------------------------------------------------
    def get_state(self, name: str) -> str | None:
        rows = self._read("SELECT value FROM state WHERE name = ?", [clean_text(name)])
        return str(rows[0][0]) if rows else None

    def put_state(self, name: str, value: str) -> None:
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO state (name, value) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    (clean_text(name), clean_text(value)),
                )
            except sqlite3.Error as exc:
                raise StoreError(f"put_state failed: {exc}") from exc

    # -- leadership -------------------------------------------------------------------------
    def lease(self, name: str, holder: str, ttl: float, now: float) -> int | None:
        """Take the lease if free or expired, renew it if ours; the token bumps on each take."""
        name, holder = clean_text(name), clean_text(holder)
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                row = self._db.execute(
                    "SELECT holder, expires, token FROM leases WHERE name = ?", (name,)
                ).fetchone()
                token = lease_decision(row, holder, now)
                if token is not None:
                    self._db.execute(
                        "INSERT INTO leases (name, holder, expires, token) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                        "expires = excluded.expires, token = excluded.token",
                        (name, holder, now + ttl, token),
                    )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise StoreError(f"lease failed: {exc}") from exc
        return token

    def lease_token(self, name: str) -> int | None:
        """The fencing token lease ``name`` carries now (None if never taken)."""
        rows = self._read("SELECT token FROM leases WHERE name = ?", [clean_text(name)])
        return int(str(rows[0][0])) if rows else None

    def close(self) -> None:
        with self._lock:
            self._db.close()
