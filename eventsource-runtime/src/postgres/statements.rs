//! The PostgreSQL event store's SQL statements, each written once per schema.

use super::schema::{lock_key, qualify};

/// The event store's statements, for one schema.
#[derive(Debug)]
pub(super) struct Statements {
    pub(super) schema: String,
    /// The `NOTIFY` channel of the schema's appends.
    pub(super) channel: String,
    pub(super) append: String,
    pub(super) load: String,
    pub(super) load_page: String,
    pub(super) read_all: String,
    pub(super) by_correlation: String,
    /// `read_all` below a high-water mark already known: a plain keyset read.
    pub(super) read_below: String,
    pub(super) high_water_mark: String,
    pub(super) version: String,
    pub(super) max_position: String,
}

pub(super) const COLUMNS: &str = "position, stream_type, stream_id, version, event_id, event_type, \
     schema_version, recorded_at, recorded_at_nanos, payload::text AS payload, \
     metadata::text AS metadata";

impl Statements {
    pub(super) fn new(schema: &str) -> Self {
        let channel = format!("eventsource_{schema}");
        let channel = if channel.len() < 64 {
            channel
        } else {
            format!(
                "eventsource_{:016x}",
                u64::from_ne_bytes(lock_key(&[schema]).to_ne_bytes())
            )
        };
        Self {
            schema: schema.to_owned(),
            channel,
            // `$10` holds one metadata text a row, or one for all rows (`rows::Batch`): read
            // into `jsonb` once, then given to each.
            append: qualify(
                "SELECT actual, conflict, positions FROM __schema__.eventsource_append(\
                     $1, $2, $3, $4, $5, $6, $7, $8, $9::text[]::jsonb[], \
                     CASE WHEN cardinality($10::text[]) = 1 \
                          THEN array_fill((($10::text[])[1])::jsonb, \
                                          ARRAY[cardinality($4::uuid[])]) \
                          ELSE $10::text[]::jsonb[] END, \
                     $11)",
                schema,
            ),
            load: qualify(
                &format!(
                    "SELECT {COLUMNS} FROM __schema__.events \
                     WHERE stream_type = $1 AND stream_id = $2 AND version >= $3 ORDER BY version"
                ),
                schema,
            ),
            load_page: qualify(
                &format!(
                    "SELECT {COLUMNS} FROM __schema__.events \
                     WHERE stream_type = $1 AND stream_id = $2 AND version >= $3 \
                     ORDER BY version LIMIT $4"
                ),
                schema,
            ),
            read_all: qualify(
                &format!("SELECT {COLUMNS} FROM __schema__.eventsource_read_all($1, $2)"),
                schema,
            ),
            // Through the index of schema version 8 (`events_correlation_id`).
            by_correlation: qualify(
                &format!(
                    "SELECT {COLUMNS} FROM __schema__.events \
                     WHERE (metadata ->> 'correlation_id') = $1 ORDER BY position"
                ),
                schema,
            ),
            read_below: qualify(
                &format!(
                    "SELECT {COLUMNS} FROM __schema__.events \
                     WHERE position >= $1 AND position < $2 ORDER BY position LIMIT $3"
                ),
                schema,
            ),
            high_water_mark: qualify("SELECT __schema__.eventsource_high_water_mark()", schema),
            version: qualify(
                // The newest index entry, not max(version), which a plan made with stale
                // statistics computes by reading the whole stream (see schema/v4.sql).
                "SELECT coalesce((SELECT version FROM __schema__.events \
                 WHERE stream_type = $1 AND stream_id = $2 \
                 ORDER BY version DESC LIMIT 1), 0)",
                schema,
            ),
            max_position: qualify(
                "SELECT coalesce((SELECT position FROM __schema__.events \
                 ORDER BY position DESC LIMIT 1), 0)",
                schema,
            ),
        }
    }
}
