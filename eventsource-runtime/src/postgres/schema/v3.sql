-- eventsource PostgreSQL schema, version 3 (applied by `migrate()` after version 1, in
-- the same transaction). `__schema__` stands for the quoted schema name.
-- Idempotent handlers: the messages each handler handled (PostgresProcessedMessages).

-- One row per handler and message handled, inserted in the transaction that runs the
-- handler (or holds its claim): a concurrent delivery of the same message waits on the
-- row's key until that transaction ends, then finds it (committed) or takes it (rolled
-- back).
CREATE TABLE IF NOT EXISTS __schema__.processed_messages (
    handler    text        NOT NULL,
    message_id uuid        NOT NULL,
    handled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (handler, message_id)
);
