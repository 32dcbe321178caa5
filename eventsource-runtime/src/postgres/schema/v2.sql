-- eventsource PostgreSQL schema, version 2: the events projections parked.
-- Applied by `migrate()` after version 1, in the same transaction. `__schema__` stands for
-- the store's schema, quoted.

-- Events a projection runner could not read and set aside (its `Park` policy), with why;
-- listed and retried from the runner.
CREATE TABLE IF NOT EXISTS __schema__.parked_events (
    projection text        NOT NULL,
    position   bigint      NOT NULL,
    error      text        NOT NULL,
    parked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, position)
);
