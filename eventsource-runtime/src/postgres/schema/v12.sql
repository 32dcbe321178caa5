-- eventsource PostgreSQL schema, version 12 (applied by `migrate()` after version 11, in
-- the same transaction). `__schema__` stands for the quoted schema name.
--
-- A projection's runner that stops on an error records why on its checkpoint
-- (`stopped_at`, `stop_error`), for `eventsource status` and the console; the next runner
-- to take the projection clears it. The runtime role updates the table already: no new
-- GRANT.

ALTER TABLE __schema__.checkpoints
    ADD COLUMN IF NOT EXISTS stopped_at timestamptz,
    ADD COLUMN IF NOT EXISTS stop_error text;
