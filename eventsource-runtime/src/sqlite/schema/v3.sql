-- eventsource SQLite schema, version 3 (applied by `migrate()` after version 1).
-- Idempotent handlers: the messages each handler handled (SqliteProcessedMessages).

-- One row per handler and message handled: a redelivered message finds its row and is
-- acknowledged without running the handler again.
CREATE TABLE IF NOT EXISTS processed_messages (
    handler    TEXT NOT NULL,
    -- the message id (the event id), hyphenated lowercase UUID
    message_id TEXT NOT NULL,
    -- RFC 3339, UTC, nanoseconds
    handled_at TEXT NOT NULL,
    PRIMARY KEY (handler, message_id)
);
