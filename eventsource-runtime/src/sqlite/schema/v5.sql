-- eventsource SQLite schema, version 5 (applied by `migrate()` after version 4).
-- The events of one correlation id (`EventStore::events_by_correlation`), from an index:
-- the metadata's `correlation_id` as a virtual column (computed on read, nothing stored;
-- NULL for metadata that is not JSON, so an unreadable row stays unreadable instead of
-- failing the index), indexed where present. Index entries end with the rowid, the
-- position: one correlation's entries come in global order.

ALTER TABLE events ADD COLUMN correlation_id TEXT GENERATED ALWAYS AS (
    CASE WHEN json_valid(metadata) THEN json_extract(metadata, '$.correlation_id') END
) VIRTUAL;
CREATE INDEX IF NOT EXISTS events_correlation_id ON events (correlation_id)
    WHERE correlation_id IS NOT NULL;
