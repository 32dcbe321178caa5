-- eventsource SQLite schema, version 1.
-- Applied by `migrate()` of SqliteEventStore, SqliteSnapshotStore or SqliteCheckpointStore
-- (each applies the whole schema). Every statement is idempotent.

-- The event log. `position` is the global order: AUTOINCREMENT never reuses a value, and
-- appends are serialized (BEGIN IMMEDIATE), so positions increase in commit order.
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_type    TEXT    NOT NULL,
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL CHECK (version >= 1),
    event_id       TEXT    NOT NULL,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    -- RFC 3339, UTC, nanoseconds: `2025-01-31T12:00:00.123456789Z`
    timestamp      TEXT    NOT NULL,
    -- JSON text
    payload        TEXT    NOT NULL,
    -- JSON object of strings (correlation, causation, W3C trace context)
    metadata       TEXT    NOT NULL,
    UNIQUE (stream_type, stream_id, version)
);

-- The newest snapshot of each stream.
CREATE TABLE IF NOT EXISTS snapshots (
    stream_type TEXT    NOT NULL,
    stream_id   TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    -- JSON text
    state       TEXT    NOT NULL,
    -- RFC 3339, UTC, nanoseconds
    taken_at    TEXT    NOT NULL,
    PRIMARY KEY (stream_type, stream_id)
);

-- Each projection's checkpoint: the global position of the last event it handled.
CREATE TABLE IF NOT EXISTS checkpoints (
    projection TEXT    NOT NULL PRIMARY KEY,
    position   INTEGER NOT NULL,
    -- RFC 3339, UTC, nanoseconds
    updated_at TEXT    NOT NULL
);
