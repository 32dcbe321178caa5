-- One event per transaction, the payload of benches/store.rs's `event(n)`, sent as JSON text
-- and parsed into jsonb as the store's are.
INSERT INTO pgbench_events.events
    (stream_type, stream_id, version, event_id, event_type, schema_version, recorded_at,
     recorded_at_nanos, payload, metadata)
VALUES ('BenchAppend', 'pgbench', nextval('pgbench_events.versions'), gen_random_uuid(),
        'AmountDeposited', 1, now(), 0,
        format('{"n": %s, "amount": 1250, "currency": "EUR", "reference": "bench"}', :client_id::int)::jsonb,
        '{}');
