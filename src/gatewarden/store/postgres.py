"""PostgreSQL event store: what two replicas share for high availability.

Same semantics as :class:`~gatewarden.store.sqlite.SQLiteStore` (the contract suite in
``tests/store`` runs against both). What PostgreSQL needs on top:

* **Commit order = seq order.** Readers page with ``after_seq`` (the remediation cache, the
  outbox). With concurrent writers a sequence value taken earlier can commit later, and a reader
  that already moved past it would never see that event. ``append`` therefore takes a table
  lock that only writers contend for (``SHARE ROW EXCLUSIVE`` lets reads through), so seqs
  become visible in order.
* **One connection under a lock**, with bounded connect, statement, lock and TCP timeouts so a
  dead or partitioned database fails the call instead of blocking the tick. A call on a broken
  connection raises :class:`StoreError`; the next call reconnects (database restart,
  ``pg_terminate_backend``). Nothing is retried here: the caller's next tick is the retry, and
  idempotency keys make a repeated append harmless.
* **Migrations under an advisory lock**, so two replicas starting together do not race.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg import sql

from gatewarden.errors import StoreError
from gatewarden.models import Event
from gatewarden.store.codec import (
    COLUMNS,
    clean_opt,
    clean_text,
    encode_payload,
    lease_decision,
    row_to_event,
)
from gatewarden.store.migrations import LATEST, Migration, migrations

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresStore:
    """Store protocol over PostgreSQL, inside its own ``schema`` (created on first open).

    ``dsn`` is a libpq connection string or URL, e.g.
    ``host=127.0.0.1 port=5432 dbname=gatewarden user=gatewarden``; a password belongs in
    ``PGPASSWORD`` or ``~/.pgpass``, never in the config file.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "gatewarden",
        connect_timeout_s: float = 5.0,
        statement_timeout_s: float = 10.0,
        application_name: str = "gatewarden",
    ) -> None:
        if not _SCHEMA.match(schema):
            raise StoreError(f"invalid schema name {schema!r}: use [a-z_][a-z0-9_]*")
        self.dsn = dsn
        self.schema = schema
        #: shown in ``pg_stat_activity``: name each replica (``gatewarden:host-a``)
        self.application_name = application_name
        self._connect_timeout = max(2, round(connect_timeout_s))  # libpq's minimum is 2 s
        ms = max(1, round(statement_timeout_s * 1000))
        # Session settings travel in the startup packet, so every reconnect gets them again.
        self._options = (
            f"-c search_path={schema} -c statement_timeout={ms} -c lock_timeout={ms} "
            f"-c idle_in_transaction_session_timeout={ms * 3}"
        )
        self._tcp_user_timeout_ms = ms
        self._lock = threading.RLock()
        self._db: psycopg.Connection[tuple[Any, ...]] | None = None
        self._closed = False
        try:
            for migration in migrations("postgres"):
                self._migrate(migration)
        except StoreError:
            self.close()
            raise

    # -- connection -------------------------------------------------------------------------
    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._closed:
            raise StoreError("the store is closed")
        if self._db is None or self._db.closed:
            self._db = psycopg.connect(
                self.dsn,
                autocommit=True,
                connect_timeout=self._connect_timeout,
                options=self._options,
                application_name=self.application_name,
                # A partitioned server must not leave a call waiting on the socket forever.
                tcp_user_timeout=self._tcp_user_timeout_ms,
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
            )
        return self._db

    @contextmanager
    def _session(self, what: str, *, transaction: bool = False) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor under the lock (in a transaction if asked); every psycopg error becomes a
        StoreError, and a connection that broke is dropped so the next call reconnects."""
        with self._lock:
            try:
                conn = self._connection()
                if transaction:
                    with conn.transaction(), conn.cursor() as cur:
                        yield cur
                else:
                    with conn.cursor() as cur:
                        yield cur
            except psycopg.Error as exc:
                if self._db is not None and (self._db.broken or self._db.closed):
                    self._drop()
                raise StoreError(f"{what} failed: {type(exc).__name__}: {exc}") from exc

    def _drop(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            with suppress(psycopg.Error):  # it is broken already; closing is only tidying up
                db.close()

    # -- schema -----------------------------------------------------------------------------
    def schema_version(self) -> int:
        with self._session("schema_version") as cur:
            row = cur.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _version(self, cur: psycopg.Cursor[Any]) -> int:
        """The recorded version, creating the schema and its version table on first use (only
        under the migration lock: concurrent CREATE ... IF NOT EXISTS can still collide)."""
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
        cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = cur.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _migrate(self, migration: Migration) -> None:
        with self._session("migration", transaction=True) as cur:
            # Serialises concurrent openers; re-reading the version under the lock makes a
            # migration another replica has just applied a no-op here.
            cur.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"gatewarden:{self.schema}",)
            )
            current = self._version(cur)
            if current > LATEST:
                raise StoreError(
                    f"store schema v{current} is newer than this gatewarden (v{LATEST})"
                )
            if migration.version > current:
                for statement in migration.statements():
                    cur.execute(statement)
                cur.execute(
                    "INSERT INTO schema_version (version) VALUES (%s)", (migration.version,)
                )

    # -- events -----------------------------------------------------------------------------
    def append(self, events: Sequence[Event]) -> list[Event]:
        if not events:
            return []
        rows = [
            (
                e.ts,
                e.type.value,
                clean_opt(e.incident_id),
                clean_opt(e.run_id),
                clean_opt(e.key),
                encode_payload(e.payload),
            )
            for e in events
        ]
        stored: list[Event] = []
        with self._session("append", transaction=True) as cur:
            cur.execute("LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE")
            for event, row in zip(events, rows, strict=True):
                cur.execute(
                    "INSERT INTO events (ts, type, incident_id, run_id, key, payload) "
                    "VALUES (%s, %s, %s, %s, %s, %s::jsonb) "
                    "ON CONFLICT (key) DO NOTHING RETURNING seq",
                    row,
                )
                new = cur.fetchone()
                if new is not None:
                    stored.append(event.model_copy(update={"seq": int(new[0])}))
                    continue
                cur.execute(f"SELECT {COLUMNS} FROM events WHERE key = %s", (row[4],))
                stored.append(row_to_event(_one(cur.fetchone())))
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
        clauses = ["seq > %s"]
        params: list[object] = [after_seq]
        if incident_id is not None:
            clauses.append("incident_id = %s")
            params.append(clean_text(incident_id))
        if run_id is not None:
            clauses.append("run_id = %s")
            params.append(clean_text(run_id))
        if types:
            clauses.append("type = ANY(%s)")
            params.append([clean_text(str(t)) for t in types])
        query = f"SELECT {COLUMNS} FROM events WHERE {' AND '.join(clauses)} ORDER BY seq"
        if limit is not None and limit >= 0:  # SQLite reads a negative LIMIT as "no limit"
            query += " LIMIT %s"
            params.append(limit)
        with self._session("read") as cur:
            rows = cur.execute(query, params).fetchall()
        return [row_to_event(r) for r in rows]

    def event_by_key(self, key: str) -> Event | None:
        with self._session("read") as cur:
            cur.execute(f"SELECT {COLUMNS} FROM events WHERE key = %s", (clean_text(key),))
            row = cur.fetchone()
        return None if row is None else row_to_event(row)

    # -- keyed state ------------------------------------------------------------------------
    def get_state(self, name: str) -> str | None:
        with self._session("get_state") as cur:
            cur.execute("SELECT value FROM state WHERE name = %s", (clean_text(name),))
            found = cur.fetchone()
        return None if found is None else str(found[0])

    def put_state(self, name: str, value: str) -> None:
        with self._session("put_state") as cur:
            cur.execute(
                "INSERT INTO state (name, value) VALUES (%s, %s) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (clean_text(name), clean_text(value)),
            )

    # -- leadership -------------------------------------------------------------------------
    def lease(self, name: str, holder: str, ttl: float, now: float) -> int | None:
        """Take the lease if free or expired, renew it if ours; the token bumps on each take."""
        name, holder = clean_text(name), clean_text(holder)
        select = "SELECT holder, expires, token FROM leases WHERE name = %s FOR UPDATE"
        with self._session("lease", transaction=True) as cur:
            # FOR UPDATE serialises replicas deciding on the same lease, so of two taking an
            # expired lease at once only the first bumps the token; the second sees it live.
            row = cur.execute(select, (name,)).fetchone()
            if row is None:
                cur.execute(
                    "INSERT INTO leases (name, holder, expires, token) VALUES (%s, %s, %s, 1) "
                    "ON CONFLICT (name) DO NOTHING RETURNING token",
                    (name, holder, now + ttl),
                )
                if cur.fetchone() is not None:
                    return 1
                row = _one(cur.execute(select, (name,)).fetchone())  # created meanwhile
            token = lease_decision(row, holder, now)
            if token is not None:
                cur.execute(
                    "UPDATE leases SET holder = %s, expires = %s, token = %s WHERE name = %s",
                    (holder, now + ttl, token, name),
                )
        return token

    def lease_token(self, name: str) -> int | None:
        """The fencing token lease ``name`` carries now (None if never taken)."""
        with self._session("lease_token") as cur:
            cur.execute("SELECT token FROM leases WHERE name = %s", (clean_text(name),))
            row = cur.fetchone()
        return None if row is None else int(row[0])

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop()


def _one(row: tuple[Any, ...] | None) -> tuple[Any, ...]:
    if row is None:  # the row was inserted or locked in this same transaction
        raise StoreError("row vanished inside its own transaction")
    return row
