//! Idempotent handlers' records in the PostgreSQL `processed_messages` table: claims that
//! exclude every process (the record's row, inserted in an open transaction), and the
//! record in the caller's own transaction.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::Transaction;
use sqlx::postgres::{PgConnection, PgPool, Postgres};
use uuid::Uuid;

use super::schema::{InvalidSchemaName, check_schema, migrate, qualify};
use super::{pool_store, unavailable};
use crate::bus::{MessageClaim, ProcessedMessages};
use crate::store::StoreError;

const RECORD: &str = "INSERT INTO __schema__.processed_messages (handler, message_id) \
     VALUES ($1, $2) ON CONFLICT (handler, message_id) DO NOTHING";
const IS_RECORDED: &str = "SELECT EXISTS (SELECT 1 FROM __schema__.processed_messages \
     WHERE handler = $1 AND message_id = $2)";

/// A [`ProcessedMessages`] store in the PostgreSQL `processed_messages` table (schema
/// version 3), shared by every process on the database, for
/// [`Idempotent`](crate::bus::Idempotent) and [`TransactionalIdempotent`](super::TransactionalIdempotent)
/// handlers.
///
/// A [claim](ProcessedMessages::claim) opens a transaction and inserts the message's row
/// in it: a concurrent claim of the same handler and message, from any process, waits on
/// that row until the transaction ends, then finds the message recorded (committed by
/// [`record`](MessageClaim::record)) or takes it (rolled back by
/// [`release`](MessageClaim::release), a dropped claim or a lost connection). Each claim
/// holds a pooled connection while its handler runs: size the pool for the handlers that
/// run at once.
///
/// [`record_in`](Self::record_in) records a message in the caller's own transaction, so
/// that the record commits with the handler's writes or not at all.
///
/// ```no_run
/// use eventsource_runtime::bus::ProcessedMessages;
/// use eventsource_runtime::postgres::PostgresEventStore;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PostgresEventStore::connect("postgres://postgres@127.0.0.1/app").await?;
/// store.migrate().await?;
/// let processed = store.processed_messages(); // same pool and schema
///
/// let message = uuid::Uuid::now_v7();
/// let claim = processed.claim("send-confirmation", message).await?.expect("new");
/// claim.record().await?;
/// assert!(processed.claim("send-confirmation", message).await?.is_none(), "handled");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresProcessedMessages {
    pool: PgPool,
    schema: Arc<str>,
    record: Arc<str>,
    is_recorded: Arc<str>,
}

pool_store!(PostgresProcessedMessages, "store of handled messages");

impl PostgresProcessedMessages {
    /// Keeps the records in `schema` instead of `public`.
    ///
    /// # Errors
    /// [`InvalidSchemaName`], as for
    /// [`PostgresEventStore::with_schema`](super::PostgresEventStore::with_schema).
    pub fn with_schema(self, schema: &str) -> Result<Self, InvalidSchemaName> {
        Ok(Self::on(self.pool, &check_schema(schema)?))
    }

    /// A store on `pool`, in `schema` (checked).
    pub(super) fn on(pool: PgPool, schema: &str) -> Self {
        Self {
            record: qualify(RECORD, schema).into(),
            is_recorded: qualify(IS_RECORDED, schema).into(),
            schema: schema.into(),
            pool,
        }
    }

    /// Creates the schema and the tables of the PostgreSQL stores where missing (see
    /// [`SCHEMA`](super::SCHEMA) and [`SCHEMA_V3`](super::SCHEMA_V3)). Idempotent.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrate(&self.pool, &self.schema).await
    }

    /// The connection pool.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Records that `handler` handled `message_id`, in the caller's transaction (or on its
    /// connection): `true` when the record is new, `false` when the message was recorded
    /// already (the handler must not run). Call it **before** the handler's writes, in the
    /// same transaction: a concurrent transaction recording the same message waits for
    /// this one to end, and the record commits or rolls back with the writes.
    ///
    /// ```no_run
    /// use eventsource_runtime::postgres::PostgresProcessedMessages;
    /// use eventsource_runtime::sqlx;
    ///
    /// # async fn run(processed: PostgresProcessedMessages, message_id: uuid::Uuid) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut tx = processed.pool().begin().await?;
    /// if processed.record_in(&mut tx, "order-totals", message_id).await? {
    ///     sqlx::query("UPDATE totals SET orders = orders + 1").execute(&mut *tx).await?;
    /// }
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`StoreError::Unavailable`]; the transaction is then aborted.
    pub async fn record_in(
        &self,
        connection: &mut PgConnection,
        handler: &str,
        message_id: Uuid,
    ) -> Result<bool, StoreError> {
        let inserted = sqlx::query(&self.record)
            .bind(handler)
            .bind(message_id)
            .execute(connection)
            .await
            .map_err(unavailable)?;
        Ok(inserted.rows_affected() == 1)
    }
}

#[async_trait]
impl ProcessedMessages for PostgresProcessedMessages {
    async fn claim(
        &self,
        handler: &str,
        message_id: Uuid,
    ) -> Result<Option<Box<dyn MessageClaim>>, StoreError> {
        let mut transaction = self.pool.begin().await.map_err(unavailable)?;
        if self
            .record_in(&mut transaction, handler, message_id)
            .await?
        {
            return Ok(Some(Box::new(PostgresClaim { transaction })));
        }
        // Nothing written: ending the transaction either way is the same.
        let _ = transaction.rollback().await;
        Ok(None)
    }

    async fn is_recorded(&self, handler: &str, message_id: Uuid) -> Result<bool, StoreError> {
        sqlx::query_scalar(&self.is_recorded)
            .bind(handler)
            .bind(message_id)
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)
    }
}

/// A claim of the PostgreSQL store: the open transaction holding the message's row.
struct PostgresClaim {
    transaction: Transaction<'static, Postgres>,
}

#[async_trait]
impl MessageClaim for PostgresClaim {
    async fn record(self: Box<Self>) -> Result<(), StoreError> {
        self.transaction.commit().await.map_err(unavailable)
    }

    async fn release(self: Box<Self>) {
        // A failed rollback means a lost connection: the server rolls back all the same.
        let _ = self.transaction.rollback().await;
    }
}
