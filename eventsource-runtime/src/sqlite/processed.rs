//! Idempotent handlers' records in the SQLite `processed_messages` table, with in-process
//! claims.

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use chrono::Utc;
use sqlx::sqlite::SqlitePool;
use uuid::Uuid;

use super::{database_file, detached, format_timestamp, pool_store, unavailable};
use crate::bus::{ClaimGuard, ClaimLocks, MessageClaim, ProcessedMessages};
use crate::store::StoreError;

const IS_RECORDED: &str =
    "SELECT EXISTS (SELECT 1 FROM processed_messages WHERE handler = ?1 AND message_id = ?2)";
const RECORD: &str = "INSERT INTO processed_messages (handler, message_id, handled_at) \
     VALUES (?1, ?2, ?3) ON CONFLICT (handler, message_id) DO NOTHING";

/// The database file, the handler and the message a claim is for.
type Key = (PathBuf, String, Uuid);

/// The claims held in this process, on every database.
static CLAIMS: LazyLock<Arc<ClaimLocks<Key>>> = LazyLock::new(Arc::default);

/// A [`ProcessedMessages`] store in the SQLite `processed_messages` table (schema version
/// 3), for [`Idempotent`](crate::bus::Idempotent) handlers.
///
/// A message is recorded (one row per handler and message) after its handler succeeded.
/// Claims are **in-process**, like the [`SqliteCheckpointStore`](super::SqliteCheckpointStore)'s
/// leases: concurrent deliveries of one message to one handler wait for each other within
/// this process (whichever store or pool they use on the same database file), not across
/// processes. Run the handlers of one SQLite database in one process.
///
/// ```
/// use eventsource_runtime::bus::ProcessedMessages;
/// use eventsource_runtime::sqlite::SqliteProcessedMessages;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let processed = SqliteProcessedMessages::connect(":memory:").await?;
/// processed.migrate().await?;
///
/// let message = uuid::Uuid::now_v7();
/// let claim = processed.claim("send-confirmation", message).await?.expect("new");
/// claim.record().await?;
/// assert!(processed.claim("send-confirmation", message).await?.is_none(), "handled");
/// # Ok::<(), eventsource_runtime::store::StoreError>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct SqliteProcessedMessages {
    pool: SqlitePool,
}

pool_store!(SqliteProcessedMessages, "store of handled messages");

impl SqliteProcessedMessages {
    async fn recorded(
        pool: SqlitePool,
        handler: String,
        message_id: Uuid,
    ) -> Result<bool, StoreError> {
        detached(async move {
            sqlx::query_scalar::<_, bool>(IS_RECORDED)
                .bind(handler)
                .bind(message_id.to_string())
                .fetch_one(&pool)
                .await
                .map_err(unavailable)
        })
        .await
    }
}

#[async_trait]
impl ProcessedMessages for SqliteProcessedMessages {
    async fn claim(
        &self,
        handler: &str,
        message_id: Uuid,
    ) -> Result<Option<Box<dyn MessageClaim>>, StoreError> {
        if self.pool.is_closed() {
            return Err(unavailable(sqlx::Error::PoolClosed));
        }
        let key = (database_file(&self.pool), handler.to_owned(), message_id);
        let guard = CLAIMS.lock(key).await;
        if Self::recorded(self.pool.clone(), handler.to_owned(), message_id).await? {
            return Ok(None);
        }
        Ok(Some(Box::new(SqliteClaim {
            pool: self.pool.clone(),
            handler: handler.to_owned(),
            message_id,
            _guard: guard,
        })))
    }

    async fn is_recorded(&self, handler: &str, message_id: Uuid) -> Result<bool, StoreError> {
        Self::recorded(self.pool.clone(), handler.to_owned(), message_id).await
    }
}

/// A claim of the SQLite store: the in-process lock, until recorded or released.
struct SqliteClaim {
    pool: SqlitePool,
    handler: String,
    message_id: Uuid,
    _guard: ClaimGuard<Key>,
}

#[async_trait]
impl MessageClaim for SqliteClaim {
    async fn record(self: Box<Self>) -> Result<(), StoreError> {
        let (pool, handler, message_id) =
            (self.pool.clone(), self.handler.clone(), self.message_id);
        detached(async move {
            let insert = sqlx::query(RECORD)
                .bind(handler)
                .bind(message_id.to_string())
                .bind(format_timestamp(Utc::now()));
            insert.execute(&pool).await.map(drop).map_err(unavailable)
        })
        .await
    }

    async fn release(self: Box<Self>) {}
}
