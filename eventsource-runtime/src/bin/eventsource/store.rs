//! Opening the store `--store` names (PostgreSQL or SQLite, as the features allow),
//! without creating or migrating anything (but `migrate`).

use std::sync::Arc;

use async_trait::async_trait;
use eventsource_runtime::projection::checkpoint::CheckpointStore;
use eventsource_runtime::projection::segments::SegmentClaims;
use eventsource_runtime::store::{EventStore, StoreError};

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
    /// The store's schema, for `migrate`.
    pub schema: Arc<dyn Migrate>,
}

/// A store's `migrate()`, and whether it was: every command but `migrate` needs a store
/// there, and a schema or a file that holds none is not found, in one line.
#[async_trait]
pub trait Migrate: Send + Sync {
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Where the store is, for a message: `schema `orders`` or `this SQLite database`.
    fn place(&self) -> String;

    /// Whether the store's events table is there (`None`: the store could not say).
    async fn is_migrated(&self) -> Option<bool>;
}

#[cfg(feature = "postgres")]
#[async_trait]
impl Migrate for eventsource_runtime::postgres::PostgresEventStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        eventsource_runtime::postgres::PostgresEventStore::migrate(self).await
    }

    fn place(&self) -> String {
        format!("schema `{}` of this database", self.schema())
    }

    async fn is_migrated(&self) -> Option<bool> {
        eventsource_runtime::postgres::PostgresEventStore::is_migrated(self)
            .await
            .ok()
    }
}

#[cfg(feature = "sqlite")]
#[async_trait]
impl Migrate for eventsource_runtime::sqlite::SqliteEventStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        eventsource_runtime::sqlite::SqliteEventStore::migrate(self).await
    }

    fn place(&self) -> String {
        "this SQLite database".to_owned()
    }

    async fn is_migrated(&self) -> Option<bool> {
        eventsource_runtime::sqlite::SqliteEventStore::is_migrated(self)
            .await
            .ok()
    }
}

/// The kinds of store a URL can name.
enum Target<'a> {
    Postgres(&'a str),
    /// The file (or `:memory:`) and the whole target as given.
    Sqlite {
        file: &'a str,
        target: &'a str,
    },
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

fn parse(target: &str) -> Result<Target<'_>, CliError> {
    if target.starts_with("postgres://") || target.starts_with("postgresql://") {
        return Ok(Target::Postgres(target));
    }
    if let Some(rest) = target
        .strip_prefix("sqlite://")
        .or_else(|| target.strip_prefix("sqlite:"))
    {
        let file = rest.split('?').next().unwrap_or(rest);
        return Ok(Target::Sqlite { file, target });
    }
    // Only the scheme is echoed: the rest may hold a password.
    let scheme = target.split_once(':').map_or("", |(scheme, _)| scheme);
    Err(CliError::Usage(format!(
        "unknown store `{scheme}:`: give postgres://... or sqlite:path/to/file.db"
    )))
}

impl Stores {
    pub async fn open(args: &StoreArgs) -> Result<Self, CliError> {
        Self::open_target(&target_of(args)?, &args.schema).await
    }

    /// The store at `target` (a PostgreSQL one in `schema`).
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
        match self.schema.is_migrated().await {
            Some(false) => Err(CliError::NotFound(format!(
                "no eventsource store in {} (`eventsource migrate` makes one; check --store \
                 and --schema)",
                self.schema.place()
            ))),
            // Found, or the store could not say: the commands say what it answers to
            // their own reads.
            Some(true) | None => Ok(()),
        }
    }

    pub async fn open_target(target: &str, schema: &str) -> Result<Self, CliError> {
        match parse(target)? {
            Target::Postgres(url) => open_postgres(url, schema).await,
            Target::Sqlite { file, target } => open_sqlite(file, target).await,
        }
    }
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str, schema: &str) -> Result<Stores, CliError> {
    use eventsource_runtime::postgres::PostgresEventStore;

    let store = PostgresEventStore::connect(url)
        .await
        .map_err(CliError::store("cannot open the PostgreSQL store"))?
        .with_schema(schema)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let checkpoints = Arc::new(store.checkpoint_store());
    Ok(Stores {
        events: Arc::new(store.clone()),
        claims: Some(checkpoints.clone()),
        checkpoints,
        leases_shared: true,
        schema: Arc::new(store),
    })
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_: &str, _: &str) -> Result<Stores, CliError> {
    Err(CliError::Usage(
        "this eventsource was built without PostgreSQL: install it with --features cli,postgres"
            .to_owned(),
    ))
}

#[cfg(feature = "sqlite")]
async fn open_sqlite(file: &str, target: &str) -> Result<Stores, CliError> {
    use eventsource_runtime::sqlite::SqliteEventStore;

    // Opening a database creates a missing file: a typo must not make an empty store.
    if file != ":memory:" && !std::path::Path::new(file).is_file() {
        return Err(CliError::NotFound(format!(
            "no SQLite database at `{file}`"
        )));
    }
    let store = SqliteEventStore::connect(target)
        .await
        .map_err(CliError::store("cannot open the SQLite store"))?;
    Ok(Stores {
        events: Arc::new(store.clone()),
        checkpoints: Arc::new(store.checkpoint_store()),
        claims: None,
        leases_shared: false,
        schema: Arc::new(store),
    })
}

#[cfg(not(feature = "sqlite"))]
async fn open_sqlite(_: &str, _: &str) -> Result<Stores, CliError> {
    Err(CliError::Usage(
        "this eventsource was built without SQLite: install it with --features cli,sqlite"
            .to_owned(),
    ))
}
