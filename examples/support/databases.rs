//! The `distributed` example's databases: the producer's event store (the outbox) and the
//! relay's checkpoints from `--store`, the consumer's processed messages from `--processed`.

use std::sync::Arc;

use eventsource_runtime::bus::{InMemoryProcessedMessages, ProcessedMessages};
use eventsource_runtime::postgres::{PostgresEventStore, PostgresProcessedMessages};
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::{CheckpointStore, InMemoryCheckpointStore};
use eventsource_runtime::sqlite::SqliteEventStore;
use eventsource_runtime::telemetry::secrets::redact_url;

use super::{AnyError, support};

/// A database named on the command line (`--store`, `--processed`).
enum Database {
    Memory,
    Sqlite(SqliteEventStore),
    Postgres(PostgresEventStore),
}

impl Database {
    /// `memory`, `sqlite:PATH` or `postgres://...` (its tables in `schema`, PostgreSQL
    /// only), opened and migrated. Fails with one line naming the option and the database
    /// (its password as `***`).
    async fn open(option: &str, spec: &str, schema: Option<&str>) -> Result<Self, AnyError> {
        let failed = |error: eventsource_runtime::store::StoreError| -> AnyError {
            format!("{option} {}: {}", redact_url(spec), support::chain(&error)).into()
        };
        let postgres = spec.starts_with("postgres://") || spec.starts_with("postgresql://");
        if let Some(schema) = schema.filter(|_| !postgres) {
            return Err(format!(
                "--store-schema {schema}: a schema is for a PostgreSQL {option}, not {}",
                redact_url(spec)
            )
            .into());
        }
        if spec == "memory" {
            return Ok(Self::Memory);
        }
        if spec.starts_with("sqlite:") {
            let store = SqliteEventStore::connect(spec).await.map_err(failed)?;
            store.migrate().await.map_err(failed)?;
            return Ok(Self::Sqlite(store));
        }
        if postgres {
            let mut store = PostgresEventStore::connect(spec).await.map_err(failed)?;
            if let Some(schema) = schema {
                store = store
                    .with_schema(schema)
                    .map_err(|error| format!("--store-schema {schema}: {error}"))?;
            }
            store.migrate().await.map_err(failed)?;
            return Ok(Self::Postgres(store));
        }
        Err(format!(
            "{option} {}: expected `memory`, `sqlite:PATH` or `postgres://...`",
            redact_url(spec)
        )
        .into())
    }
}

/// The producer's event store and the relay's checkpoints.
pub(crate) struct Stores {
    pub(crate) events: Arc<dyn EventStore>,
    pub(crate) checkpoints: Arc<dyn CheckpointStore>,
    /// The same store when it is PostgreSQL, where a segmented relay's workers claim their
    /// segments.
    pub(crate) postgres: Option<PostgresEventStore>,
}

/// The producer's stores, from `--store` (in `--store-schema`).
pub(crate) async fn stores(spec: &str, schema: Option<&str>) -> Result<Stores, AnyError> {
    Ok(match Database::open("--store", spec, schema).await? {
        Database::Memory => Stores {
            events: Arc::new(InMemoryEventStore::new()),
            checkpoints: Arc::new(InMemoryCheckpointStore::new()),
            postgres: None,
        },
        Database::Sqlite(store) => Stores {
            checkpoints: Arc::new(store.checkpoint_store()),
            events: Arc::new(store),
            postgres: None,
        },
        Database::Postgres(store) => Stores {
            checkpoints: Arc::new(store.checkpoint_store()),
            events: Arc::new(store.clone()),
            postgres: Some(store),
        },
    })
}

/// Where the consumer records the messages its idempotent handlers handled.
pub(crate) struct Processed {
    pub(crate) any: Arc<dyn ProcessedMessages>,
    /// The same, when it is PostgreSQL (for the history's transactions).
    pub(crate) postgres: Option<PostgresProcessedMessages>,
}

/// Where the consumer records the messages its idempotent handlers handled, from
/// `--processed`.
pub(crate) async fn processed_messages(spec: &str) -> Result<Processed, AnyError> {
    Ok(match Database::open("--processed", spec, None).await? {
        Database::Memory => Processed {
            any: Arc::new(InMemoryProcessedMessages::new()),
            postgres: None,
        },
        Database::Sqlite(store) => Processed {
            any: Arc::new(store.processed_messages()),
            postgres: None,
        },
        Database::Postgres(store) => {
            let processed = store.processed_messages();
            Processed {
                any: Arc::new(processed.clone()),
                postgres: Some(processed),
            }
        }
    })
}
