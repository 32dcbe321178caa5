-- eventsource PostgreSQL schema, version 4 (applied by `migrate()` after version 3, in
-- the same transaction). `__schema__` stands for the quoted schema name.
--
-- eventsource_append reads the stream's version from the newest entry of the
-- (stream_type, stream_id, version) index, whatever the planner's statistics say. Version 1
-- asked for max(version), which a plan made with stale statistics (a table that grew since
-- its last ANALYZE) computed by reading every entry of the stream: appends to a stream of
-- 60,000 events took 20 ms. The function is otherwise version 1's.

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
    SELECT coalesce((SELECT e.version
                       FROM __schema__.events e
                      WHERE e.stream_type = p_stream_type AND e.stream_id = p_stream_id
                      ORDER BY e.version DESC
                      LIMIT 1), 0) INTO v_actual;
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
