-- eventsource PostgreSQL schema, version 6 (applied by `migrate()` after version 5, in
-- the same transaction). `__schema__` stands for the quoted schema name.
--
-- History nobody rewrites: UPDATE, DELETE and TRUNCATE of stored events are refused for
-- every role but the events table's owner (the role that migrates, and the roles that
-- inherit its privileges; superusers too, who can switch any trigger off anyway), even for
-- a role that was granted UPDATE or DELETE by mistake. The runtime role is granted neither
-- (docs/postgres.md). Dropping the schema (DROP SCHEMA ... CASCADE) is the owner's, and
-- fires no trigger.

CREATE OR REPLACE FUNCTION __schema__.eventsource_refuse_rewrite() RETURNS trigger
LANGUAGE plpgsql
AS $eventsource$
DECLARE
    v_owner oid := (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID);
BEGIN
    IF pg_catalog.pg_has_role(current_user, v_owner, 'USAGE') THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'stored events are never rewritten: % on %.% refused for role %',
        TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, current_user
        USING ERRCODE = 'insufficient_privilege',
              HINT = format('only the owner of the events table (%s) may change stored events',
                            v_owner::regrole);
END
$eventsource$;

DROP TRIGGER IF EXISTS eventsource_events_never_rewritten ON __schema__.events;
CREATE TRIGGER eventsource_events_never_rewritten
    BEFORE UPDATE OR DELETE OR TRUNCATE ON __schema__.events
    FOR EACH STATEMENT EXECUTE FUNCTION __schema__.eventsource_refuse_rewrite();
