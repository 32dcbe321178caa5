-- eventsource SQLite schema, version 4 (applied by `migrate()` after version 3).
-- Snapshots carry the schema version of the aggregate state they hold (the aggregate's
-- `SNAPSHOT_VERSION` when taken); a snapshot stored before this version reads as version 1.

ALTER TABLE snapshots ADD COLUMN schema_version INTEGER NOT NULL DEFAULT 1;
