-- eventsource PostgreSQL schema, version 5 (applied by `migrate()` after version 4, in
-- the same transaction). `__schema__` stands for the quoted schema name.
--
-- eventsource_append takes a batch's positions from the identity's sequence as one range
-- (nextval, then setval to its end) and inserts them with the rows, where version 4 let
-- each row take its own value and read them back through RETURNING, sorted and
-- aggregated: about 5% of a 100-event append's time on the server. The positions are
-- still allocated under the sequencing lock, so they are consecutive, in version order,
-- and the high-water mark reads the same sequence. The function is otherwise version 4's.

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
    v_count bigint := coalesce(cardinality(p_event_ids), 0);
    v_sequence regclass;
    v_first bigint;
BEGIN
    -- Writers of one stream take turns (until commit), so the version read below is the
    -- stream's last committed one and a concurrent writer cannot slip in between.
    PERFORM pg_advisory_xact_lock(1163088978,
        hashtext(v_table::text || chr(31) || p_stream_type || chr(31) || p_stream_id));
    SELECT coalesce((SELECT e.version
                       FROM __schema__.events e
                      WHERE e.stream_type = p_stream_type AND e.stream_id = p_stream_id
                      ORDER BY e.version DESC
                      LIMIT 1), 0) INTO v_actual;
    IF p_expected >= 0 AND v_actual <> p_expected THEN
        RETURN QUERY SELECT v_actual, true, NULL::bigint[];
        RETURN;
    END IF;
    IF v_count = 0 THEN
        RETURN QUERY SELECT v_actual, false, ARRAY[]::bigint[];
        RETURN;
    END IF;

    -- Sequencing: positions are allocated, and the transaction registered as in flight
    -- from its first position on, under one lock that readers share while they compute
    -- their high-water mark. The lock is session level so that it ends here, before the
    -- commit; the handler releases it on any error, cancellation included.
    BEGIN
        PERFORM pg_advisory_lock(1163085137, __schema__.eventsource_int4(v_table));
        -- The batch's positions, one range taken from the identity's sequence at once
        -- (not one value per row) while no other append allocates. A writer around this
        -- function taking a value from the range meets a duplicate position: an error for
        -- one of the two, never a position reported wrong.
        v_sequence := pg_get_serial_sequence('__schema__.events', 'position')::regclass;
        v_first := nextval(v_sequence);
        IF v_count > 1 THEN
            PERFORM setval(v_sequence, v_first + v_count - 1);
        END IF;
        INSERT INTO __schema__.events (position, stream_type, stream_id, version, event_id,
                                       event_type, schema_version, recorded_at,
                                       recorded_at_nanos, payload, metadata)
        OVERRIDING SYSTEM VALUE
        SELECT v_first + b.n - 1, p_stream_type, p_stream_id, v_actual + b.n, b.event_id,
               b.event_type, b.schema_version, b.recorded_at, b.nanos, b.payload, b.metadata
          FROM unnest(p_event_ids, p_event_types, p_schema_versions, p_recorded_at,
                      p_recorded_at_nanos, p_payloads, p_metadata)
               WITH ORDINALITY AS b(event_id, event_type, schema_version, recorded_at,
                                    nanos, payload, metadata, n);
        PERFORM pg_advisory_xact_lock_shared(__schema__.eventsource_int4(v_table),
                                             __schema__.eventsource_int4(v_first));
        PERFORM pg_advisory_unlock(1163085137, __schema__.eventsource_int4(v_table));
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        PERFORM pg_advisory_unlock(1163085137, __schema__.eventsource_int4(v_table));
        RAISE;
    END;

    IF p_channel IS NOT NULL THEN
        PERFORM pg_notify(p_channel, (v_first + v_count - 1)::text);
    END IF;
    RETURN QUERY SELECT v_actual, false,
        ARRAY(SELECT generate_series(v_first, v_first + v_count - 1));
END
$eventsource$;
