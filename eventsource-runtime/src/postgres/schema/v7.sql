-- eventsource PostgreSQL schema, version 7 (applied by `migrate()` after version 6, in
-- the same transaction). `__schema__` stands for the quoted schema name.
--
-- Snapshots carry the schema version of the aggregate state they hold (the aggregate's
-- `SNAPSHOT_VERSION` when taken); a snapshot stored before this version reads as version 1.
-- `bigint`, as `events.schema_version`, so every u32 fits. The runtime role's grants on
-- `snapshots` are table-wide: it writes the new column with no new GRANT.

ALTER TABLE __schema__.snapshots
    ADD COLUMN IF NOT EXISTS schema_version bigint NOT NULL DEFAULT 1;
