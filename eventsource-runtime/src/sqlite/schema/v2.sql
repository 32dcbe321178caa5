-- eventsource SQLite schema, version 2: the events projections parked.
-- Applied by `migrate()` after version 1. Idempotent.

-- Events a projection runner could not read and set aside (its `Park` policy), with why;
-- listed and retried from the runner.
CREATE TABLE IF NOT EXISTS parked_events (
    projection TEXT    NOT NULL,
    position   INTEGER NOT NULL,
    error      TEXT    NOT NULL,
    -- RFC 3339, UTC, nanoseconds
    parked_at  TEXT    NOT NULL,
    PRIMARY KEY (projection, position)
);
