//! A [`PostgresCheckpointStore`](super::PostgresCheckpointStore) lease: a session-level
//! advisory lock on a connection of its own, kept by a task that notices at once, without
//! a query, when the session ends, and through which the holder saves its checkpoint.
//!
//! The keeper waits on the connection as a [`PgListener`] does for notifications (none
//! are listened for): when the server ends the session (a terminated backend, a restart)
//! or the connection breaks, the wait returns and the lease reads as lost. The lock went
//! with the session, so another runner may hold the projection from then on; the listener
//! never reconnects.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{
    PgConnectOptions, PgDatabaseError, PgListener, PgPool, PgPoolOptions, PgSeverity,
};
use tokio::sync::{mpsc, oneshot};

use super::{ACQUIRE_TIMEOUT, to_i64, unavailable};
use crate::projection::checkpoint::ProjectionLease;
use crate::store::StoreError;
use crate::telemetry::otel::log::log_warn;
use crate::telemetry::values::Chain;

/// The statements a lease runs on its session, each binding the projection and a position.
#[derive(Debug, Clone)]
pub(super) struct LeaseStatements {
    /// Saves the checkpoint (never back).
    pub(super) save: String,
    /// Resets it (back as well).
    pub(super) reset: String,
}

/// What a lease asks of its keeper.
#[derive(Debug)]
enum Request {
    /// Runs the checkpoint save (or, `reset`, the reset), binding the projection and the
    /// position, on the lease's session.
    Save {
        position: u64,
        reset: bool,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Unlocks, closes the connection, then answers.
    Release { reply: oneshot::Sender<()> },
}

/// A [`PostgresCheckpointStore`](super::PostgresCheckpointStore) lease: a session-level
/// advisory lock on a connection of its own (outside the store's pool), held until
/// released or dropped (dropping it unlocks and closes the connection in the background).
///
/// A task keeps the session and notices when it ends (the server restarts, the backend is
/// terminated, the network fails): the lock is gone then, and
/// [`is_held`](ProjectionLease::is_held) says so at once, without a query. The
/// checkpoints a runner saves while holding the lease go through the same session
/// ([`CheckpointStore::save_leased`](crate::projection::checkpoint::CheckpointStore::save_leased)),
/// so none can land after the lock is gone.
///
/// A connection that goes silent without closing (a network partition) is noticed only
/// when the operating system gives up on it (TCP keepalive, or the next save).
#[derive(Debug)]
pub struct PostgresLease {
    projection: String,
    held: Arc<AtomicBool>,
    requests: mpsc::Sender<Request>,
}

impl PostgresLease {
    /// Takes the lock `key` on a new connection (with `options`), or `None` when another
    /// session holds it; `statements` save and reset the projection's checkpoint.
    pub(super) async fn try_take(
        options: PgConnectOptions,
        projection: &str,
        key: i64,
        statements: LeaseStatements,
    ) -> Result<Option<Self>, StoreError> {
        // A pool of its own with one connection: never one of the store's, and nothing to
        // reconnect to silently.
        let own = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(options);
        let listener = match lock(&own, key).await {
            Ok(Some(listener)) => listener,
            Ok(None) => {
                own.close().await;
                return Ok(None);
            }
            Err(e) => {
                own.close().await;
                return Err(unavailable(e));
            }
        };
        let held = Arc::new(AtomicBool::new(true));
        let (requests, received) = mpsc::channel(1);
        tokio::spawn(keep(Keeper {
            listener,
            own,
            key,
            statements,
            projection: projection.to_owned(),
            held: Arc::clone(&held),
            requests: received,
        }));
        Ok(Some(Self {
            projection: projection.to_owned(),
            held,
            requests,
        }))
    }

    /// The projection held.
    #[must_use]
    pub fn projection(&self) -> &str {
        &self.projection
    }

    /// [`save`](Self::save) for a checkpoint store that asks this lease to write its own
    /// projection's checkpoint; `None` for another projection's (the store writes it).
    async fn save_own(
        &self,
        projection: &str,
        position: u64,
        reset: bool,
    ) -> Option<Result<(), StoreError>> {
        if projection != self.projection {
            return None;
        }
        Some(self.save(position, reset).await)
    }

    /// Saves (or, `reset`, resets) the checkpoint `position` on the lease's session.
    async fn save(&self, position: u64, reset: bool) -> Result<(), StoreError> {
        let lost = || StoreError::LeaseLost {
            projection: self.projection.clone(),
        };
        if !self.is_held() {
            return Err(lost());
        }
        let (reply, answer) = oneshot::channel();
        if self
            .requests
            .send(Request::Save {
                position,
                reset,
                reply,
            })
            .await
            .is_err()
        {
            return Err(lost());
        }
        answer.await.unwrap_or_else(|_| Err(lost()))
    }
}

#[async_trait]
impl ProjectionLease for PostgresLease {
    fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }

    /// Saves on the lease's own session: never once the lock is gone.
    async fn save_checkpoint(
        &self,
        projection: &str,
        position: u64,
    ) -> Option<Result<(), StoreError>> {
        self.save_own(projection, position, false).await
    }

    /// Resets on the lease's own session: never once the lock is gone.
    async fn reset_checkpoint(
        &self,
        projection: &str,
        position: u64,
    ) -> Option<Result<(), StoreError>> {
        self.save_own(projection, position, true).await
    }

    async fn release(self: Box<Self>) {
        let (reply, answer) = oneshot::channel();
        if self.requests.send(Request::Release { reply }).await.is_ok() {
            let _ = answer.await;
        }
    }
}

/// Takes the advisory lock on a listener's connection; `None` when it is taken.
async fn lock(own: &PgPool, key: i64) -> Result<Option<PgListener>, sqlx::Error> {
    let mut listener = PgListener::connect_with(own).await?;
    listener.ignore_pool_close_event(true);
    listener.eager_reconnect(false);
    let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(&mut listener)
        .await?;
    Ok(taken.then_some(listener))
}

/// Whether the session survived `error` (an error the server reported without ending it).
fn session_survived(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.try_downcast_ref::<PgDatabaseError>())
        .is_some_and(|e| !matches!(e.severity(), PgSeverity::Fatal | PgSeverity::Panic))
}

/// The lease's session and what the keeper needs to keep it.
struct Keeper {
    listener: PgListener,
    own: PgPool,
    key: i64,
    /// The statements saving and resetting the projection's checkpoint.
    statements: LeaseStatements,
    projection: String,
    held: Arc<AtomicBool>,
    requests: mpsc::Receiver<Request>,
}

/// What woke the keeper.
enum Woken {
    Request(Option<Request>),
    Connection(Result<bool, sqlx::Error>),
}

impl Keeper {
    fn lost(&self, error: &dyn std::fmt::Display) {
        self.held.store(false, Ordering::Release);
        log_warn!(
            projection = self.projection.as_str(),
            error = %error,
            "projection lease lost: its PostgreSQL session ended"
        );
    }

    async fn unlock(&mut self) {
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(self.key)
            .execute(&mut self.listener)
            .await;
    }
}

/// Keeps the session until the lease is released or dropped, or the session ends.
async fn keep(mut keeper: Keeper) {
    let released = loop {
        // Both waits are cancel-safe: a request does not cost a message on the connection.
        let woken = tokio::select! {
            request = keeper.requests.recv() => Woken::Request(request),
            received = keeper.listener.try_recv() => {
                Woken::Connection(received.map(|notification| notification.is_some()))
            }
        };
        match woken {
            Woken::Request(Some(Request::Save {
                position,
                reset,
                reply,
            })) => {
                let statement = if reset {
                    &keeper.statements.reset
                } else {
                    &keeper.statements.save
                };
                let saved = sqlx::query(statement)
                    .bind(&keeper.projection)
                    .bind(to_i64(position))
                    .execute(&mut keeper.listener)
                    .await;
                match saved {
                    Ok(_) => {
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) if session_survived(&e) => {
                        let _ = reply.send(Err(unavailable(e)));
                    }
                    Err(e) => {
                        keeper.lost(&Chain(&e));
                        let _ = reply.send(Err(StoreError::LeaseLost {
                            projection: keeper.projection.clone(),
                        }));
                        break None;
                    }
                }
            }
            Woken::Request(Some(Request::Release { reply })) => {
                keeper.held.store(false, Ordering::Release);
                keeper.unlock().await;
                break Some(reply);
            }
            Woken::Request(None) => {
                // The lease was dropped.
                keeper.held.store(false, Ordering::Release);
                keeper.unlock().await;
                break None;
            }
            // A notification: none is listened for; keep waiting.
            Woken::Connection(Ok(true)) => {}
            Woken::Connection(Ok(false)) => {
                keeper.lost(&"the connection was closed");
                break None;
            }
            Woken::Connection(Err(e)) => {
                keeper.lost(&Chain(&e));
                break None;
            }
        }
    };
    let Keeper {
        listener,
        own,
        requests,
        ..
    } = keeper;
    // Nothing more is asked of the keeper: a release from now on returns at once (the lock
    // is unlocked or went with the session), whatever the close below takes.
    drop(requests);
    drop(listener);
    // Bounded: the pool waits for its connection to close, and a connection whose peer
    // vanished must not keep a release waiting. Dropped, the pool closes it all the same.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, own.close()).await;
    if let Some(reply) = released {
        let _ = reply.send(());
    }
}

/// How long a lease's keeper waits for its connection to close before letting it go.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
