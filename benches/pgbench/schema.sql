-- pgbench's side of the PostgreSQL append comparison (see run.sh): a table with the row shape
-- of eventsource's `events` table (eventsource-runtime/src/postgres/schema.sql), its primary
-- key and unique constraint, in a schema of its own that run.sh drops at the end.
DROP SCHEMA IF EXISTS pgbench_events CASCADE;
CREATE SCHEMA pgbench_events;
CREATE TABLE pgbench_events.events (
    position          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_type       text        NOT NULL,
    stream_id         text        NOT NULL,
    version           bigint      NOT NULL CHECK (version >= 1),
    event_id          uuid        NOT NULL,
    event_type        text        NOT NULL,
    schema_version    bigint      NOT NULL,
    recorded_at       timestamptz NOT NULL,
    recorded_at_nanos integer     NOT NULL DEFAULT 0,
    payload           jsonb       NOT NULL,
    metadata          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT events_stream_version_key UNIQUE (stream_type, stream_id, version)
);
-- Each append takes the next versions of one stream, as the bench's appends do.
CREATE SEQUENCE pgbench_events.versions;
