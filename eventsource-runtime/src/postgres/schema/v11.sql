-- eventsource PostgreSQL schema, version 11 (applied by `migrate()` after version 10, in
-- the same transaction). `__schema__` stands for the quoted schema name.
--
-- A parked event can carry an operator's request to retry it (`eventsource parked retry`):
-- the projection's running runner retries it on its next poll. Parking it again clears the
-- request. The runtime role updates the table already: no new GRANT.

ALTER TABLE __schema__.parked_events ADD COLUMN IF NOT EXISTS retry_requested_at timestamptz;
