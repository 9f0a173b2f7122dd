-- The append-only event log: the single source of truth for incidents, runs and the outbox.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    ts          REAL    NOT NULL,
    type        TEXT    NOT NULL,
    incident_id TEXT,
    run_id      TEXT,
    key         TEXT    UNIQUE,      -- idempotency key: a second append with the same key is a no-op
    payload     TEXT    NOT NULL
);
CREATE INDEX events_incident ON events (incident_id, seq);
CREATE INDEX events_run ON events (run_id, seq);
CREATE INDEX events_type ON events (type, seq);

-- Small keyed state: source cursors, detector checkpoints.
CREATE TABLE state (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Leadership leases with a monotonically increasing fencing token.
CREATE TABLE leases (
    name    TEXT PRIMARY KEY,
    holder  TEXT    NOT NULL,
    expires REAL    NOT NULL,
    token   INTEGER NOT NULL
);
