//! A [`PostgresCheckpointStore`](super::PostgresCheckpointStore) lease: a session-level
//! advisory lock on a connection of its own, kept by a task that notices at once, without
//! a query, when the session ends, and through which the holder saves its checkpoint.
//!
//! The keeper waits on the connection as a [`PgListener`] does for notifications (none
//! are listened for): when the server ends the session (a terminated backend, a restart)
//! or the connection breaks, the wait returns and the lease reads as lost. The lock went
//! with the session, so another runner may hold the projection from then on; the listener
//! never reconnects.
//!
//! A connection can also go silent without breaking (the holder's host vanished, a network
//! drops every packet). Both sides then bound it by the lease timeout `T`:
//!
//! - the server ends the session, and frees the lock, once it has heard nothing from the
//!   holder for `T` (the session's `tcp_user_timeout` and keepalives, see `liveness`), at
//!   most `T + T/4` after the last packet it had;
//! - the holder sends a round trip every `T/4` and counts the lease as held only until
//!   `3T/4` after it sent the last one answered: it stops at least `T/4` before the server
//!   can free the lock, so a standby that takes the lock never overlaps it.
//!
//! A paused holder (SIGSTOP, a frozen VM) is not silent to TCP: its kernel answers for it.
//! A runner that finds the lock taken ends the holder's session when it has run nothing
//! for `T` by the server's clock (`pg_stat_activity.state_change`), which a live holder's
//! round trips move every `T/4`; the paused holder's own deadline passed `T/4` before.
//! Every runner of a projection must therefore use the same lease timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{
    PgConnectOptions, PgDatabaseError, PgListener, PgPool, PgPoolOptions, PgSeverity,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::liveness::{bound_session, server_bound};
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
/// A connection that goes silent without closing (a network partition, a host that
/// vanished) is bounded by the lease timeout `T`
/// ([`PostgresCheckpointStore::lease_timeout`](super::PostgresCheckpointStore::lease_timeout),
/// [`DEFAULT_LEASE_TIMEOUT`] by default): the holder counts the lease as held only until
/// `3T/4` after the last round trip it sent that the server answered (it sends one every
/// `T/4`), and the server ends a session it heard nothing from for `T` (at most `T + T/4`
/// after the holder's last packet), freeing the lock for a standby. The holder stops first.
/// A holder that is paused (its kernel still answering) is ended by a standby once it has
/// run nothing for `T` by the server's clock: give every runner of a projection the same
/// lease timeout.
#[derive(Debug)]
pub struct PostgresLease {
    projection: String,
    validity: Arc<Validity>,
    requests: mpsc::Sender<Request>,
}

/// The lease timeout unless told otherwise: 10 seconds. A holder cut off from the server
/// stops handling within `3/4` of it; a standby can take the projection within `5/4` of
/// it (plus its own retry interval).
pub const DEFAULT_LEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether the lease holds, as its holder knows it: until the session ends or is given up,
/// and no longer than `3T/4` after the last round trip the server answered was sent.
#[derive(Debug)]
struct Validity {
    held: AtomicBool,
    origin: Instant,
    /// Until when (nanoseconds after `origin`) the lease holds, short of the server's bound.
    until_nanos: AtomicU64,
    timeout: Duration,
}

impl Validity {
    fn new(timeout: Duration, confirmed_at: Instant) -> Self {
        let validity = Self {
            held: AtomicBool::new(true),
            origin: confirmed_at,
            until_nanos: AtomicU64::new(0),
            timeout,
        };
        validity.confirm(confirmed_at);
        validity
    }

    /// How long after a round trip was sent the lease holds on its strength.
    fn window(&self) -> Duration {
        self.timeout * 3 / 4
    }

    /// How often the keeper asks the server for a word.
    fn round_trip_every(&self) -> Duration {
        self.timeout / 4
    }

    /// A round trip sent at `sent` was answered: the server heard from the holder then.
    fn confirm(&self, sent: Instant) {
        let until = sent.saturating_duration_since(self.origin) + self.window();
        let nanos = u64::try_from(until.as_nanos()).unwrap_or(u64::MAX);
        self.until_nanos.fetch_max(nanos, Ordering::AcqRel);
    }

    fn deadline(&self) -> Instant {
        self.origin + Duration::from_nanos(self.until_nanos.load(Ordering::Acquire))
    }

    fn end(&self) {
        self.held.store(false, Ordering::Release);
    }

    fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire) && Instant::now() < self.deadline()
    }
}

impl PostgresLease {
    /// Takes the lock `key` on a new connection (with `options`), or `None` when another
    /// session holds it; `statements` save and reset the projection's checkpoint.
    pub(super) async fn try_take(
        options: PgConnectOptions,
        projection: &str,
        key: i64,
        statements: LeaseStatements,
        timeout: Duration,
    ) -> Result<Option<Self>, StoreError> {
        // A pool of its own with one connection: never one of the store's, and nothing to
        // reconnect to silently.
        let own = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(None)
            .max_lifetime(None)
            .after_connect(move |connection, _| Box::pin(bound_session(connection, timeout)))
            .connect_lazy_with(options);
        let sent = Instant::now();
        let listener = match lock(&own, key, projection, timeout).await {
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
        let validity = Arc::new(Validity::new(timeout, sent));
        let (requests, received) = mpsc::channel(1);
        tokio::spawn(keep(Keeper {
            listener,
            own,
            key,
            statements,
            projection: projection.to_owned(),
            validity: Arc::clone(&validity),
            requests: received,
        }));
        Ok(Some(Self {
            projection: projection.to_owned(),
            validity,
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
        self.validity.is_held()
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
async fn lock(
    own: &PgPool,
    key: i64,
    projection: &str,
    timeout: Duration,
) -> Result<Option<PgListener>, sqlx::Error> {
    let mut listener = PgListener::connect_with(own).await?;
    listener.ignore_pool_close_event(true);
    listener.eager_reconnect(false);
    let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(&mut listener)
        .await?;
    if !taken {
        end_silent_holder(&mut listener, key, projection, timeout).await;
    }
    Ok(taken.then_some(listener))
}

/// Ends the session holding `key` when it has sent nothing for `timeout` by the server's
/// clock (a paused process, whose kernel still answers for it, so that no TCP bound ends
/// it): its holder counts the lease as held only `3/4` of that after its last round trip,
/// so it stopped handling before. The lock goes with the session, for the next try to
/// take. A session this role may not signal (another role's, without `pg_signal_backend`)
/// is left alone.
async fn end_silent_holder(
    listener: &mut PgListener,
    key: i64,
    projection: &str,
    timeout: Duration,
) {
    let key = u64::from_ne_bytes(key.to_ne_bytes());
    let (high, low) = (to_i64(key >> 32), to_i64(key & 0xffff_ffff));
    let ended: Result<Option<Silent>, _> = sqlx::query_as(END_SILENT_HOLDER)
        .bind(high)
        .bind(low)
        .bind(i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX))
        .fetch_optional(&mut *listener)
        .await;
    if let Ok(Some((pid, application, client, silent_ms, true))) = ended {
        log_warn!(
            projection,
            holder_pid = pid,
            holder_application = application.unwrap_or_default(),
            holder_client = client.unwrap_or_default(),
            silent_ms,
            "projection lease's holder silent past the lease timeout (a paused process?): \
             its session was ended, and the lease is free for this runner"
        );
    }
}

/// The silent holder's pid, application, address, milliseconds of silence, and whether it
/// was ended.
type Silent = (i32, Option<String>, Option<String>, i64, bool);

/// The session holding the lease's lock, ended when idle for longer than `$3` ms.
const END_SILENT_HOLDER: &str = "\
SELECT a.pid, a.application_name, host(a.client_addr),
       (extract(epoch FROM clock_timestamp() - a.state_change) * 1000)::bigint,
       pg_terminate_backend(a.pid)
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
   AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
   AND l.classid::bigint = $1 AND l.objid::bigint = $2
   AND a.state = 'idle'
   AND clock_timestamp() - a.state_change > $3 * interval '1 millisecond'
 LIMIT 1";

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
    validity: Arc<Validity>,
    requests: mpsc::Receiver<Request>,
}

/// What woke the keeper.
enum Woken {
    Request(Option<Request>),
    Connection(Result<bool, sqlx::Error>),
    /// Time to ask the server for a word.
    RoundTrip,
}

/// What the keeper runs on the lease's session.
enum OnSession {
    /// The checkpoint's save (or, `reset`, its reset) at `position`.
    Save { position: u64, reset: bool },
    /// A word with the server, to confirm the lease.
    RoundTrip,
}

/// How a statement on the lease's session ended.
enum Outcome {
    Done,
    /// The server reported an error and the session lives on.
    Refused(sqlx::Error),
    /// The session ended, or went silent past the lease's validity.
    Lost,
}

impl Keeper {
    fn lost(&self, error: &dyn std::fmt::Display) {
        self.validity.end();
        log_warn!(
            projection = self.projection.as_str(),
            error = %error,
            "projection lease lost: its PostgreSQL session ended"
        );
    }

    /// The server did not answer before the lease's validity ran out: given up, before the
    /// server can free the lock.
    fn gone_silent(&self) {
        self.validity.end();
        let timeout_ms = u64::try_from(self.validity.timeout.as_millis()).unwrap_or(u64::MAX);
        let server_frees_within_ms =
            u64::try_from(server_bound(self.validity.timeout).as_millis()).unwrap_or(u64::MAX);
        log_warn!(
            projection = self.projection.as_str(),
            timeout_ms,
            server_frees_within_ms,
            "projection lease given up: PostgreSQL did not answer in time (a network partition \
             or a vanished server); the server ends the session, and frees the lease for \
             another runner, once it has heard nothing from this one for the lease timeout"
        );
    }

    /// Runs `what` on the lease's session, bounded by the lease's validity; an answer
    /// confirms the lease.
    async fn run(&mut self, what: OnSession) -> Outcome {
        let sent = Instant::now();
        let query = match what {
            OnSession::Save { position, reset } => {
                let statement = if reset {
                    &self.statements.reset
                } else {
                    &self.statements.save
                };
                sqlx::query(statement)
                    .bind(&self.projection)
                    .bind(to_i64(position))
            }
            OnSession::RoundTrip => sqlx::query("SELECT 1"),
        };
        let ran =
            tokio::time::timeout_at(self.validity.deadline(), query.execute(&mut self.listener))
                .await;
        match ran {
            Ok(Ok(_)) => {
                self.validity.confirm(sent);
                Outcome::Done
            }
            Ok(Err(e)) if session_survived(&e) => {
                self.validity.confirm(sent);
                Outcome::Refused(e)
            }
            Ok(Err(e)) => {
                self.lost(&Chain(&e));
                Outcome::Lost
            }
            Err(_) => {
                self.gone_silent();
                Outcome::Lost
            }
        }
    }

    /// Unlocks, unless the server does not answer in time (the session then ends, and the
    /// lock with it, when the connection is closed or the server's bound runs out).
    async fn unlock(&mut self) {
        let unlock = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(self.key)
            .execute(&mut self.listener);
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, unlock).await;
    }
}

/// Keeps the session until the lease is released or dropped, or the session ends.
async fn keep(mut keeper: Keeper) {
    let every = keeper.validity.round_trip_every();
    let mut round_trip = tokio::time::interval_at(Instant::now() + every, every);
    round_trip.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let released = loop {
        // The waits are cancel-safe: a request does not cost a message on the connection.
        let woken = tokio::select! {
            request = keeper.requests.recv() => Woken::Request(request),
            received = keeper.listener.try_recv() => {
                Woken::Connection(received.map(|notification| notification.is_some()))
            }
            _ = round_trip.tick() => Woken::RoundTrip,
        };
        match woken {
            Woken::Request(Some(Request::Save {
                position,
                reset,
                reply,
            })) => match keeper.run(OnSession::Save { position, reset }).await {
                Outcome::Done => {
                    let _ = reply.send(Ok(()));
                }
                Outcome::Refused(e) => {
                    let _ = reply.send(Err(unavailable(e)));
                }
                Outcome::Lost => {
                    let _ = reply.send(Err(StoreError::LeaseLost {
                        projection: keeper.projection.clone(),
                    }));
                    break None;
                }
            },
            Woken::RoundTrip => {
                if let Outcome::Lost = keeper.run(OnSession::RoundTrip).await {
                    break None;
                }
            }
            Woken::Request(Some(Request::Release { reply })) => {
                keeper.validity.end();
                keeper.unlock().await;
                break Some(reply);
            }
            Woken::Request(None) => {
                // The lease was dropped.
                keeper.validity.end();
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
