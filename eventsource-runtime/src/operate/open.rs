//! The store a URL names, opened for an operator (PostgreSQL or SQLite, as the features
//! allow), creating and migrating nothing unless asked ([`OpenedStore::migrate`]).

use super::{OperateError, Stores};
use crate::store::StoreError;

/// A store opened by its URL: what the operations read and change, and its schema.
pub struct OpenedStore {
    /// Its events, checkpoints and (PostgreSQL) segment claims.
    pub stores: Stores,
    /// Whether its leases and segment claims are seen by every process (PostgreSQL), or
    /// only by the process holding them (SQLite: another process sees none of a service's).
    pub leases_shared: bool,
    database: Database,
}

impl std::fmt::Debug for OpenedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedStore")
            .field("stores", &self.stores)
            .field("leases_shared", &self.leases_shared)
            .field("place", &self.place())
            .finish()
    }
}

/// The database behind an [`OpenedStore`].
enum Database {
    #[cfg(feature = "postgres")]
    Postgres(crate::postgres::PostgresEventStore),
    #[cfg(feature = "sqlite")]
    Sqlite(crate::sqlite::SqliteEventStore),
    /// A build without either database has none to open (never made).
    #[cfg(not(any(feature = "postgres", feature = "sqlite")))]
    #[allow(dead_code)]
    None(std::convert::Infallible),
}

impl OpenedStore {
    /// Opens the store `target` names: `postgres://...` (its tables in `schema`) or
    /// `sqlite:PATH`. A SQLite file that does not exist is not created.
    ///
    /// # Errors
    /// [`OperateError::Invalid`] for a URL of another kind, a store this build has no
    /// feature for, or a schema name PostgreSQL refuses; [`OperateError::NotFound`] for a
    /// SQLite file that does not exist; [`OperateError::Store`] when the database cannot be
    /// reached. A message shows the URL's scheme only (the rest may hold a password).
    pub async fn open(target: &str, schema: &str) -> Result<Self, OperateError> {
        if target.starts_with("postgres://") || target.starts_with("postgresql://") {
            return open_postgres(target, schema).await;
        }
        if let Some(rest) =
            (target.strip_prefix("sqlite://")).or_else(|| target.strip_prefix("sqlite:"))
        {
            let file = rest.split('?').next().unwrap_or(rest);
            return open_sqlite(file, target).await;
        }
        let scheme = target.split_once(':').map_or("", |(scheme, _)| scheme);
        Err(OperateError::Invalid(format!(
            "unknown store `{scheme}:`: give postgres://... or sqlite:path/to/file.db"
        )))
    }

    /// Creates the store's tables where missing (idempotent).
    ///
    /// # Errors
    /// The store's.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.database {
            #[cfg(feature = "postgres")]
            Database::Postgres(store) => store.migrate().await,
            #[cfg(feature = "sqlite")]
            Database::Sqlite(store) => store.migrate().await,
            #[cfg(not(any(feature = "postgres", feature = "sqlite")))]
            Database::None(never) => match *never {},
        }
    }

    /// Where the store is, for a message: ``schema `orders` of this database`` or
    /// `this SQLite database`.
    #[must_use]
    pub fn place(&self) -> String {
        match &self.database {
            #[cfg(feature = "postgres")]
            Database::Postgres(store) => format!("schema `{}` of this database", store.schema()),
            #[cfg(feature = "sqlite")]
            Database::Sqlite(_) => "this SQLite database".to_owned(),
            #[cfg(not(any(feature = "postgres", feature = "sqlite")))]
            Database::None(never) => match *never {},
        }
    }

    /// `Ok` when the store holds an eventsource store (its events table), or cannot say.
    ///
    /// # Errors
    /// [`OperateError::NotFound`] when it holds none: a schema or file never migrated, or a
    /// typo, said in one line.
    pub async fn found(&self) -> Result<(), OperateError> {
        match self.is_migrated().await {
            Ok(false) => Err(OperateError::NotFound(format!(
                "no eventsource store in {} (`eventsource migrate` makes one; check the \
                 store's URL and schema)",
                self.place()
            ))),
            // Found, or the store could not say: the operations say what it answers to
            // their own reads.
            Ok(true) | Err(_) => Ok(()),
        }
    }

    async fn is_migrated(&self) -> Result<bool, StoreError> {
        match &self.database {
            #[cfg(feature = "postgres")]
            Database::Postgres(store) => store.is_migrated().await,
            #[cfg(feature = "sqlite")]
            Database::Sqlite(store) => store.is_migrated().await,
            #[cfg(not(any(feature = "postgres", feature = "sqlite")))]
            Database::None(never) => match *never {},
        }
    }
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str, schema: &str) -> Result<OpenedStore, OperateError> {
    use crate::postgres::PostgresEventStore;

    let store = (PostgresEventStore::connect(url).await)
        .map_err(OperateError::store("cannot open the PostgreSQL store"))?
        .with_schema(schema)
        .map_err(|e| OperateError::Invalid(e.to_string()))?;
    Ok(OpenedStore {
        stores: Stores::postgres(&store),
        leases_shared: true,
        database: Database::Postgres(store),
    })
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_: &str, _: &str) -> Result<OpenedStore, OperateError> {
    Err(OperateError::Invalid(
        "this build has no PostgreSQL: build it with the `postgres` feature (the command \
         line: cargo install eventsource-runtime --features cli,postgres)"
            .to_owned(),
    ))
}

#[cfg(feature = "sqlite")]
async fn open_sqlite(file: &str, target: &str) -> Result<OpenedStore, OperateError> {
    use crate::sqlite::SqliteEventStore;

    // Opening a database creates a missing file: a typo must not make an empty store.
    if file != ":memory:" && !std::path::Path::new(file).is_file() {
        return Err(OperateError::NotFound(format!(
            "no SQLite database at `{file}`"
        )));
    }
    let store = (SqliteEventStore::connect(target).await)
        .map_err(OperateError::store("cannot open the SQLite store"))?;
    Ok(OpenedStore {
        stores: Stores::sqlite(&store),
        leases_shared: false,
        database: Database::Sqlite(store),
    })
}

#[cfg(not(feature = "sqlite"))]
async fn open_sqlite(_: &str, _: &str) -> Result<OpenedStore, OperateError> {
    Err(OperateError::Invalid(
        "this build has no SQLite: build it with the `sqlite` feature (the command line: \
         cargo install eventsource-runtime --features cli,sqlite)"
            .to_owned(),
    ))
}
