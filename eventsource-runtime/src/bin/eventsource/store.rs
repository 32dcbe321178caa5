//! Opening the store `--store` names (`operate::OpenedStore`), without creating or migrating
//! anything (but `migrate`).

use std::sync::Arc;

use eventsource_runtime::operate::OpenedStore;
use eventsource_runtime::projection::checkpoint::CheckpointStore;
use eventsource_runtime::projection::segments::SegmentClaims;
use eventsource_runtime::store::EventStore;

use crate::args::StoreArgs;
use crate::exit::CliError;

/// What the commands work on.
pub struct Stores {
    pub events: Arc<dyn EventStore>,
    pub checkpoints: Arc<dyn CheckpointStore>,
    /// Where split projections' segments are claimed, when the store keeps them across
    /// processes (PostgreSQL; SQLite's claims live in the service's process).
    pub claims: Option<Arc<dyn SegmentClaims>>,
    /// Whether the store's leases and claims are seen by every process (PostgreSQL), or
    /// only in the process holding them (SQLite: the command line sees none of the
    /// service's).
    pub leases_shared: bool,
    /// The store as opened, for `migrate`.
    pub opened: OpenedStore,
}

/// The store `--store` (else `EVENTSOURCE_STORE`, else `DATABASE_URL`) names.
pub fn target_of(args: &StoreArgs) -> Result<String, CliError> {
    args.store
        .clone()
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .filter(|target| !target.trim().is_empty())
        .ok_or_else(|| {
            CliError::Usage(
                "no store: give --store postgres://... or sqlite:..., or set \
                 EVENTSOURCE_STORE or DATABASE_URL"
                    .to_owned(),
            )
        })
}

impl Stores {
    pub async fn open(args: &StoreArgs) -> Result<Self, CliError> {
        Self::open_target(&target_of(args)?, &args.schema).await
    }

    /// Another service's store, named by `--also-store`: an error says which one (its
    /// password hidden).
    pub async fn open_also(target: &str, schema: &str) -> Result<Self, CliError> {
        let subject = format!(
            "--also-store {}",
            eventsource_runtime::telemetry::secrets::redact_url(target)
        );
        Self::open_target(target, schema)
            .await
            .map_err(|error| error.about(&subject))
    }

    /// `Ok` when the store holds an eventsource store (its events table), not found
    /// otherwise: a `--schema` typo or a file never migrated says so in one line.
    pub async fn found(&self) -> Result<(), CliError> {
        Ok(self.opened.found().await?)
    }

    /// The store at `target` (a PostgreSQL one in `schema`).
    pub async fn open_target(target: &str, schema: &str) -> Result<Self, CliError> {
        let opened = OpenedStore::open(target, schema).await?;
        Ok(Stores {
            events: opened.stores.events.clone(),
            checkpoints: opened.stores.checkpoints.clone(),
            claims: opened.stores.claims.clone(),
            leases_shared: opened.leases_shared,
            opened,
        })
    }
}
