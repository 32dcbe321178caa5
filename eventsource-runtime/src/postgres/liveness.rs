//! How long a silent peer keeps a session: the server-side TCP settings every connection
//! the stores open asks for, so that a client whose host vanished or whose network drops
//! every packet loses its session (and the locks it holds) within a bound, not after the
//! operating system's two hours of TCP keepalive.
//!
//! PostgreSQL takes `tcp_keepalives_idle`, `tcp_keepalives_interval`, `tcp_keepalives_count`
//! and `tcp_user_timeout` (PostgreSQL 12 or later) from any client, as settings of its
//! session: each connection sets them once, right after it connects (a `SET`, not the
//! startup packet's `options`, which connection poolers refuse). With `tcp_user_timeout`
//! set, Linux ends the connection once nothing was heard from the client for that long:
//! while the backend is idle (keepalive probes unanswered), while it is writing to a client
//! that reads nothing (a `LISTEN` backend whose client vanished) and while its data goes
//! unacknowledged. Over a Unix socket the settings do nothing, and nothing is needed: the
//! server learns of the client's end at once.

use std::time::Duration;

use sqlx::PgConnection;

use crate::store::StoreError;

/// The bound the stores' connections ask of the server by default: a backend whose client
/// has been silent this long (no answer, not even to keepalive probes) ends, and releases
/// its locks. A lease's session asks for its own,
/// [`PostgresCheckpointStore::lease_timeout`](super::PostgresCheckpointStore::lease_timeout).
pub const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long each of an event store's round trips waits for the server's answer by default
/// ([`PostgresEventStore::answer_timeout`](super::PostgresEventStore::answer_timeout)): the
/// client's side of the same fault, which no socket setting of sqlx's bounds.
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// A round trip the server did not answer in time.
#[derive(Debug, thiserror::Error)]
#[error(
    "PostgreSQL did not answer within {within:?} (its host gone, or the network silent); \
     an append's outcome is unknown"
)]
pub(super) struct NoAnswer {
    within: Duration,
}

/// `call`, failing with [`StoreError::Unavailable`] when its answer has not come `within`
/// (zero: no bound). Dropped unanswered, its connection is checked before it is used again
/// (sqlx pings a connection given back in the middle of a query, and closes it if that
/// fails).
pub(super) async fn answered<T>(
    within: Duration,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    if within.is_zero() {
        return call.await;
    }
    tokio::time::timeout(within, call)
        .await
        .unwrap_or_else(|_| Err(StoreError::Unavailable(Box::new(NoAnswer { within }))))
}

/// Asks the server to end `connection`'s session once its client has been silent for
/// `timeout` (at least one second): keepalive probes from a quarter of it on, every quarter
/// of it, and the TCP user timeout. One round trip.
pub(super) async fn bound_session(
    connection: &mut PgConnection,
    timeout: Duration,
) -> Result<(), sqlx::Error> {
    let timeout = at_least_a_second(timeout);
    let probe_every = (timeout.as_secs() / 4).max(1).to_string();
    let user_timeout = timeout.as_millis().to_string();
    sqlx::query(
        "SELECT set_config('tcp_keepalives_idle', $1, false), \
                set_config('tcp_keepalives_interval', $1, false), \
                set_config('tcp_keepalives_count', '4', false), \
                set_config('tcp_user_timeout', $2, false)",
    )
    .bind(probe_every)
    .bind(user_timeout)
    .execute(connection)
    .await?;
    Ok(())
}

/// The longest the server may take, after the last packet it had from a silent client, to
/// end its session: the timeout, then the next keepalive probe's tick.
pub(super) fn server_bound(timeout: Duration) -> Duration {
    let timeout = at_least_a_second(timeout);
    timeout + Duration::from_secs((timeout.as_secs() / 4).max(1))
}

fn at_least_a_second(timeout: Duration) -> Duration {
    timeout.max(Duration::from_secs(1))
}
