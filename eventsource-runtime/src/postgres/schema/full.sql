-- eventsource PostgreSQL schema, version 1 (PostgreSQL 13 or later).
-- Applied by `migrate()` of PostgresEventStore, PostgresSnapshotStore or
-- PostgresCheckpointStore (each applies the whole schema, in one transaction). `__schema__`
-- stands for the store's schema, quoted ("public" unless configured).

-- The event log. `position` is the global order; see eventsource_append and
-- eventsource_read_all for how readers never pass over an event that commits late.
CREATE TABLE IF NOT EXISTS __schema__.events (
    position          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_type       text        NOT NULL,
    stream_id         text        NOT NULL,
    version           bigint      NOT NULL CHECK (version >= 1),
    event_id          uuid        NOT NULL,
    event_type        text        NOT NULL,
    schema_version    bigint      NOT NULL,
    -- the event's timestamp to the microsecond, and the nanoseconds below it, so that
    -- what is read back is exactly what was appended
    recorded_at       timestamptz NOT NULL,
    recorded_at_nanos integer     NOT NULL DEFAULT 0 CHECK (recorded_at_nanos BETWEEN 0 AND 999),
    payload           jsonb       NOT NULL,
    -- object of strings: correlation, causation, W3C trace context
    metadata          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT events_stream_version_key UNIQUE (stream_type, stream_id, version)
);

-- The newest snapshot of each stream.
CREATE TABLE IF NOT EXISTS __schema__.snapshots (
    stream_type    text        NOT NULL,
    stream_id      text        NOT NULL,
    version        bigint      NOT NULL,
    state          jsonb       NOT NULL,
    taken_at       timestamptz NOT NULL,
    taken_at_nanos integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (stream_type, stream_id)
);

-- Each projection's checkpoint: the global position of the last event it handled.
CREATE TABLE IF NOT EXISTS __schema__.checkpoints (
    projection text        NOT NULL PRIMARY KEY,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- An unsigned 32-bit number (0 .. 2^32-1, or any bigint taken modulo 2^32) as the int4
-- an advisory lock key takes; pg_locks shows it back as the unsigned number.
CREATE OR REPLACE FUNCTION __schema__.eventsource_int4(n bigint) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $eventsource$ SELECT (((n & 4294967295) + 2147483648) % 4294967296 - 2147483648)::integer $eventsource$;

-- Advisory locks (two-key form; classid, objid):
--   (1163085137 'ESEQ', events table oid)  the sequencing lock, session level: held by an
--       append only while it allocates its positions, shared by readers while they
--       compute the high-water mark;
--   (events table oid, position mod 2^32)  registration, transaction level, shared: held
--       by each append transaction from its first position until it commits or aborts;
--   (1163088978 'ESTR', hash of table and stream) one writer per stream, transaction level.
--
-- Appends one batch to one stream, all or nothing, if the stream is at p_expected (-1: any
-- version). Returns the stream's version before the append, whether the expectation
-- failed (then nothing is appended), and the new events' positions in version order.
CREATE OR REPLACE FUNCTION __schema__.eventsource_append(
    p_stream_type text,
    p_stream_id text,
    p_expected bigint,
    p_event_ids uuid[],
    p_event_types text[],
    p_schema_versions bigint[],
    p_recorded_at timestamptz[],
    p_recorded_at_nanos integer[],
    p_payloads jsonb[],
    p_metadata jsonb[],
    p_channel text
) RETURNS TABLE (actual bigint, conflict boolean, positions bigint[])
LANGUAGE plpgsql
AS $eventsource$
DECLARE
    v_table bigint := '__schema__.events'::regclass::oid::bigint;
    v_actual bigint;
    v_positions bigint[];
BEGIN
    -- Writers of one stream take turns (until commit), so the version read below is the
    -- stream's last committed one and a concurrent writer cannot slip in between.
    PERFORM pg_advisory_xact_lock(1163088978,
        hashtext(v_table::text || chr(31) || p_stream_type || chr(31) || p_stream_id));
    SELECT coalesce(max(e.version), 0) INTO v_actual
      FROM __schema__.events e
     WHERE e.stream_type = p_stream_type AND e.stream_id = p_stream_id;
    IF p_expected >= 0 AND v_actual <> p_expected THEN
        RETURN QUERY SELECT v_actual, true, NULL::bigint[];
        RETURN;
    END IF;
    IF coalesce(cardinality(p_event_ids), 0) = 0 THEN
        RETURN QUERY SELECT v_actual, false, ARRAY[]::bigint[];
        RETURN;
    END IF;

    -- Sequencing: positions are allocated, and the transaction registered as in flight
    -- from its first position on, under one lock that readers share while they compute
    -- their high-water mark. The lock is session level so that it ends here, before the
    -- commit; the handler releases it on any error, cancellation included.
    BEGIN
        PERFORM pg_advisory_lock(1163085137, __schema__.eventsource_int4(v_table));
        WITH inserted AS (
            INSERT INTO __schema__.events (stream_type, stream_id, version, event_id, event_type,
                                           schema_version, recorded_at, recorded_at_nanos,
                                           payload, metadata)
            SELECT p_stream_type, p_stream_id, v_actual + b.n, b.event_id, b.event_type,
                   b.schema_version, b.recorded_at, b.nanos, b.payload, b.metadata
              FROM unnest(p_event_ids, p_event_types, p_schema_versions, p_recorded_at,
                          p_recorded_at_nanos, p_payloads, p_metadata)
                   WITH ORDINALITY AS b(event_id, event_type, schema_version, recorded_at,
                                        nanos, payload, metadata, n)
             ORDER BY b.n
            RETURNING __schema__.events.position, __schema__.events.version
        )
        SELECT array_agg(i.position ORDER BY i.version) INTO v_positions FROM inserted i;
        PERFORM pg_advisory_xact_lock_shared(__schema__.eventsource_int4(v_table),
                                             __schema__.eventsource_int4(v_positions[1]));
        PERFORM pg_advisory_unlock(1163085137, __schema__.eventsource_int4(v_table));
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        PERFORM pg_advisory_unlock(1163085137, __schema__.eventsource_int4(v_table));
        RAISE;
    END;

    IF p_channel IS NOT NULL THEN
        PERFORM pg_notify(p_channel, v_positions[cardinality(v_positions)]::text);
    END IF;
    RETURN QUERY SELECT v_actual, false, v_positions;
END
$eventsource$;

-- The high-water mark: the lowest position an append still in flight holds, or the next
-- position to be allocated when none is. Every event below it is committed or will never
-- be (its transaction aborted): no event can commit later below it.
CREATE OR REPLACE FUNCTION __schema__.eventsource_high_water_mark() RETURNS bigint
LANGUAGE plpgsql
AS $eventsource$
DECLARE
    v_table bigint := '__schema__.events'::regclass::oid::bigint;
    v_last bigint;
    v_in_flight bigint;
BEGIN
    BEGIN
        -- No append is allocating positions while this is held.
        PERFORM pg_advisory_lock_shared(1163085137, __schema__.eventsource_int4(v_table));
        v_last := coalesce(pg_sequence_last_value(
            pg_get_serial_sequence('__schema__.events', 'position')::regclass), 0);
        -- The registered first positions, each restored from its low 32 bits as the
        -- highest position at most v_last with those bits.
        SELECT min(v_last - (((v_last - l.objid::bigint) % 4294967296) + 4294967296) % 4294967296)
          INTO v_in_flight
          FROM pg_locks l
         WHERE l.locktype = 'advisory'
           AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
           AND l.classid::bigint = v_table
           AND l.objsubid = 2
           AND l.granted;
        PERFORM pg_advisory_unlock_shared(1163085137, __schema__.eventsource_int4(v_table));
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        PERFORM pg_advisory_unlock_shared(1163085137, __schema__.eventsource_int4(v_table));
        RAISE;
    END;
    RETURN coalesce(v_in_flight, v_last + 1);
END
$eventsource$;

-- Up to p_limit events from position p_from on, in global order, below the high-water
-- mark. Needs READ COMMITTED: the events are read with a snapshot taken after the mark was
-- computed, so everything below the mark that committed is in it.
CREATE OR REPLACE FUNCTION __schema__.eventsource_read_all(p_from bigint, p_limit bigint)
RETURNS SETOF __schema__.events
LANGUAGE plpgsql
AS $eventsource$
DECLARE
    v_mark bigint;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'eventsource_read_all needs the READ COMMITTED isolation level, not %',
            current_setting('transaction_isolation')
            USING ERRCODE = 'feature_not_supported';
    END IF;
    v_mark := __schema__.eventsource_high_water_mark();
    RETURN QUERY
        SELECT * FROM __schema__.events e
         WHERE e.position >= p_from AND e.position < v_mark
         ORDER BY e.position
         LIMIT p_limit;
END
$eventsource$;
