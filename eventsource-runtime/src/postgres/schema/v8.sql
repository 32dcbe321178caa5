-- eventsource PostgreSQL schema, version 8 (applied by `migrate()` after version 7, in
-- the same transaction). `__schema__` stands for the quoted schema name.
--
-- The events of one correlation id (`EventStore::events_by_correlation`), from an index on
-- the metadata's `correlation_id` (and the position, so one correlation's entries come in
-- global order), over the events that have one. The runtime role reads it through its
-- SELECT on `events`: no new GRANT.
--
-- On a large events table, build the index beforehand without blocking appends (outside
-- a transaction), under the same name; this migration then finds it:
--   CREATE INDEX CONCURRENTLY events_correlation_id ON <schema>.events
--       ((metadata ->> 'correlation_id'), position) WHERE (metadata ->> 'correlation_id') IS NOT NULL;

CREATE INDEX IF NOT EXISTS events_correlation_id ON __schema__.events
    ((metadata ->> 'correlation_id'), position)
    WHERE (metadata ->> 'correlation_id') IS NOT NULL;
