-- eventsource PostgreSQL schema, version 10 (applied by `migrate()` after version 9, in
-- the same transaction). `__schema__` stands for the quoted schema name.
--
-- Each segment claim records the claim timeout its owner runs with: a claim expires when its
-- owner has not renewed it for that long, whoever judges it (a worker taking it over, the
-- health report, `SegmentedRunner::segments`), instead of by the judge's own timeout (a
-- worker with a long timeout no longer waits past a short one, nor takes a long one early).
-- Claims made before this version, or by a worker of an earlier release, have none: they
-- are judged by the default timeout, 10 s. The runtime role updates the table already: no
-- new GRANT.

ALTER TABLE __schema__.projection_segments ADD COLUMN IF NOT EXISTS claim_timeout interval;
