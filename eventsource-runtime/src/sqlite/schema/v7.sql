-- eventsource SQLite schema, version 7 (applied by `migrate()` after version 6).
-- A projection's runner that stops on an error records why on its checkpoint
-- (`stopped_at`, RFC 3339 UTC, and `stop_error`), for `eventsource status` and the
-- console; the next runner to take the projection clears it. NULL: running, or stopped
-- without an error.

ALTER TABLE checkpoints ADD COLUMN stopped_at TEXT;
ALTER TABLE checkpoints ADD COLUMN stop_error TEXT;
