-- eventsource PostgreSQL schema, version 9 (applied by `migrate()` after version 8, in
-- the same transaction). `__schema__` stands for the quoted schema name.
--
-- Projections split into segments (`SegmentedRunner`): which segment a stream's events are
-- in, the segments' claims (owner and fencing epoch), and the workers alive. The runtime
-- role needs the new tables' grants (`RUNTIME_GRANTS`, run again).

-- The segment of `p_count` holding a stream: its hash (hashtextextended, stable across
-- PostgreSQL versions on one platform, as hash partitioning relies on), modulo the count.
-- IMMUTABLE, so that an index on it (`events_segments_{count}`, made by
-- `prepare_segments`) serves each segment's reads.
CREATE OR REPLACE FUNCTION __schema__.eventsource_segment(
    p_stream_type text, p_stream_id text, p_count integer)
RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $eventsource$
    SELECT ((hashtextextended(p_stream_id, hashtextextended(p_stream_type, 0))
             & 9223372036854775807) % p_count)::integer
$eventsource$;

-- One row per segment of a split projection: who holds it (NULL: free), the epoch of its
-- claim (grows with every claim), and when its owner last renewed it (the database's clock).
CREATE TABLE IF NOT EXISTS __schema__.projection_segments (
    projection text        NOT NULL,
    segment    integer     NOT NULL CHECK (segment >= 0),
    segments   integer     NOT NULL CHECK (segments > segment),
    owner      text,
    epoch      bigint      NOT NULL DEFAULT 0,
    renewed_at timestamptz,
    PRIMARY KEY (projection, segment)
);

-- The workers of each split projection, and when each last said it was alive.
CREATE TABLE IF NOT EXISTS __schema__.projection_workers (
    projection text        NOT NULL,
    worker     text        NOT NULL,
    seen_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, worker)
);
