-- eventsource SQLite schema, version 6 (applied by `migrate()` after version 5).
-- A parked event can carry an operator's request to retry it (`eventsource parked retry`):
-- the projection's running runner retries it on its next poll. Parking it again clears the
-- request. RFC 3339, UTC; NULL: none.

ALTER TABLE parked_events ADD COLUMN retry_requested_at TEXT;
