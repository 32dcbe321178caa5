-- What the runtime role needs, once the owner has migrated (`__schema__`: the quoted
-- schema, `__role__`: the quoted runtime role). No UPDATE or DELETE on events, no CREATE
-- anywhere. Run again after a migration that adds a table (idempotent).
GRANT USAGE ON SCHEMA __schema__ TO __role__;
GRANT SELECT ON __schema__.eventsource_schema_migrations TO __role__;
GRANT SELECT, INSERT ON __schema__.events TO __role__;
GRANT USAGE, UPDATE ON SEQUENCE __schema__.events_position_seq TO __role__;
GRANT SELECT, INSERT, UPDATE, DELETE ON __schema__.snapshots TO __role__;
GRANT SELECT, INSERT, UPDATE ON __schema__.checkpoints TO __role__;
GRANT SELECT, INSERT, UPDATE, DELETE ON __schema__.parked_events TO __role__;
GRANT SELECT, INSERT ON __schema__.processed_messages TO __role__;
GRANT SELECT, INSERT, UPDATE, DELETE ON __schema__.projection_segments TO __role__;
GRANT SELECT, INSERT, UPDATE, DELETE ON __schema__.projection_workers TO __role__;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA __schema__ TO __role__;
