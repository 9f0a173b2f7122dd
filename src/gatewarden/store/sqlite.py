"""SQLite event store: the embedded default (one file, WAL, safe for one daemon process)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from gatewarden.errors import StoreError
from gatewarden.models import Event, EventType
from gatewarden.store.migrations import LATEST, migrations

_COLUMNS = "seq, ts, type, incident_id, run_id, key, payload"


def _row_to_event(row: tuple[object, ...]) -> Event:
    seq, ts, type_, incident_id, run_id, key, payload = row
    return Event(
        seq=int(str(seq)),
        ts=float(str(ts)),
        type=EventType(str(type_)),
        incident_id=None if incident_id is None else str(incident_id),
        run_id=None if run_id is None else str(run_id),
        key=None if key is None else str(key),
        payload=json.loads(str(payload)),
    )


class SQLiteStore:
    """Store protocol over SQLite. ``path=":memory:"`` gives a private in-memory store."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            # One connection shared under a lock: the tick thread and the web thread both write.
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store {self.path}: {exc}") from exc
        self._lock = threading.RLock()
        self._migrate()

    # -- schema -----------------------------------------------------------------------------
    def schema_version(self) -> int:
        with self._lock:
            self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = self._db.execute("SELECT MAX(version) FROM schema_version").fetchone()
            return int(row[0]) if row and row[0] is not None else 0

    def _migrate(self) -> None:
        current = self.schema_version()
        if current > LATEST:
            raise StoreError(f"store schema v{current} is newer than this gatewarden (v{LATEST})")
        for migration in migrations():
            if migration.version <= current:
                continue
            with self._lock:
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    for statement in migration.statements():
                        self._db.execute(statement)
                    self._db.execute(
                        "INSERT INTO schema_version (version) VALUES (?)", (migration.version,)
                    )
                    self._db.execute("COMMIT")
                except sqlite3.Error as exc:
                    self._db.execute("ROLLBACK")
                    raise StoreError(f"migration {migration.name} failed: {exc}") from exc

    # -- events -----------------------------------------------------------------------------
    def append(self, events: Sequence[Event]) -> list[Event]:
        stored: list[Event] = []
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for event in events:
                    cursor = self._db.execute(
                        "INSERT INTO events (ts, type, incident_id, run_id, key, payload) "
                        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                        (
                            event.ts,
                            event.type.value,
                            event.incident_id,
                            event.run_id,
                            event.key,
                            json.dumps(event.payload, separators=(",", ":"), default=str),
                        ),
                    )
                    if cursor.rowcount == 1:
                        stored.append(event.model_copy(update={"seq": cursor.lastrowid}))
                    else:
                        row = self._db.execute(
                            f"SELECT {_COLUMNS} FROM events WHERE key = ?", (event.key,)
                        ).fetchone()
                        stored.append(_row_to_event(row))
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
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
            params.append(incident_id)
        if run_id is not None:
            clauses.append("run_id = ?")
            params.append(run_id)
        if types:
            clauses.append(f"type IN ({','.join('?' * len(types))})")
            params.extend(str(t) for t in types)
        sql = f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(clauses)} ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._lock:
            try:
                rows = self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"read failed: {exc}") from exc
        return [_row_to_event(r) for r in rows]

    def event_by_key(self, key: str) -> Event | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM events WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else _row_to_event(row)

    # -- keyed state ------------------------------------------------------------------------
    def get_state(self, name: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def put_state(self, name: str, value: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO state (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )

    # -- leadership -------------------------------------------------------------------------
    def lease(self, name: str, holder: str, ttl: float, now: float) -> int | None:
        """Take the lease if free or expired, renew it if ours; the token bumps on each take."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                row = self._db.execute(
                    "SELECT holder, expires, token FROM leases WHERE name = ?", (name,)
                ).fetchone()
                token: int | None
                if row is None:
                    token = 1
                    self._db.execute(
                        "INSERT INTO leases (name, holder, expires, token) VALUES (?, ?, ?, ?)",
                        (name, holder, now + ttl, token),
                    )
                elif row[0] == holder and row[1] >= now:
                    token = int(row[2])
                    self._db.execute(
                        "UPDATE leases SET expires = ? WHERE name = ?", (now + ttl, name)
                    )
                elif row[1] < now:
                    token = int(row[2]) + 1
                    self._db.execute(
                        "UPDATE leases SET holder = ?, expires = ?, token = ? WHERE name = ?",
                        (holder, now + ttl, token, name),
                    )
                else:
                    token = None
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise StoreError(f"lease failed: {exc}") from exc
        return token

    def close(self) -> None:
        with self._lock:
            self._db.close()
