-- The append-only event log: the single source of truth for incidents, runs and the outbox.
-- Same tables, columns and meaning as migrations/sqlite/0001_events.sql; only the types differ.
CREATE TABLE events (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts          DOUBLE PRECISION NOT NULL,
    type        TEXT    NOT NULL,
    incident_id TEXT,
    run_id      TEXT,
    key         TEXT    UNIQUE,      -- idempotency key: a second append with the same key is a no-op
    payload     JSONB   NOT NULL
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
    expires DOUBLE PRECISION NOT NULL,
    token   BIGINT  NOT NULL
);
