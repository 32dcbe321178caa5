//! The event store's `appended_signal`: a watch channel fed by this process's appends and
//! by a task that `LISTEN`s for every process's.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::ACQUIRE_TIMEOUT;
use super::liveness::{self, DEFAULT_PEER_TIMEOUT};
use crate::store::AppendSignal;
use crate::telemetry::otel::log::log_warn;
use crate::telemetry::values::Chain;

/// The first wait before reconnecting after a failure; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The newest position known, and the listener task once someone subscribed.
pub(super) struct Signal {
    channel: String,
    newest: Arc<watch::Sender<u64>>,
    listener: Mutex<Option<JoinHandle<()>>>,
}

impl Signal {
    pub(super) fn new(channel: String) -> Self {
        Self {
            channel,
            newest: Arc::new(watch::Sender::new(0)),
            listener: Mutex::new(None),
        }
    }

    /// Records that events up to `position` exist.
    pub(super) fn advance(&self, position: u64) {
        advance(&self.newest, position);
    }

    /// A receiver of the signal; the first call (on a tokio runtime) starts the listener.
    pub(super) fn subscribe(&self, pool: &PgPool) -> AppendSignal {
        let mut listener = self.listener.lock().unwrap_or_else(PoisonError::into_inner);
        let running = listener.as_ref().is_some_and(|task| !task.is_finished());
        if !running
            && !pool.is_closed()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            *listener = Some(runtime.spawn(listen(
                pool.clone(),
                self.channel.clone(),
                Arc::clone(&self.newest),
            )));
        }
        self.newest.subscribe()
    }
}

impl Drop for Signal {
    fn drop(&mut self) {
        let listener = self
            .listener
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = listener.take() {
            task.abort();
        }
    }
}

fn advance(newest: &watch::Sender<u64>, position: u64) {
    newest.send_if_modified(|known| {
        let newer = position > *known;
        if newer {
            *known = position;
        }
        newer
    });
}

/// Wakes the followers without a new position: notifications may have been missed.
fn wake(newest: &watch::Sender<u64>) {
    newest.send_modify(|_| {});
}

/// Listens on `channel` until `pool` is closed (the task is aborted when the store is
/// dropped), reconnecting with backoff. Never panics: the database may come and go.
async fn listen(pool: PgPool, channel: String, newest: Arc<watch::Sender<u64>>) {
    // A connection of its own, so the listener never takes one of the pool's.
    let own = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // A server whose client vanished stops writing notifications to it within a bound.
        .after_connect(|connection, _| {
            Box::pin(liveness::bound_session(connection, DEFAULT_PEER_TIMEOUT))
        })
        .connect_lazy_with((*pool.connect_options()).clone());
    let mut backoff = MIN_BACKOFF;
    loop {
        tokio::select! {
            () = pool.close_event() => break,
            error = session(&own, &channel, &newest, &mut backoff) => {
                log_warn!(
                    error = %Chain(&error),
                    channel,
                    retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                    "event store notifications interrupted"
                );
            }
        }
        tokio::select! {
            () = pool.close_event() => break,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    own.close().await;
}

/// How long the listening connection may stay quiet before it is asked for a word.
const QUIET_CHECK_AFTER: Duration = Duration::from_secs(5);

/// The error of a listening connection whose server did not answer.
fn silent() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "the server did not answer within {}s",
            DEFAULT_PEER_TIMEOUT.as_secs()
        ),
    ))
}

/// One listening session: returns the error that ended it.
async fn session(
    own: &PgPool,
    channel: &str,
    newest: &watch::Sender<u64>,
    backoff: &mut Duration,
) -> sqlx::Error {
    let mut listener = match PgListener::connect_with(own).await {
        Ok(listener) => listener,
        Err(e) => return e,
    };
    if let Err(e) = listener.listen(channel).await {
        return e;
    }
    *backoff = MIN_BACKOFF;
    wake(newest);
    loop {
        // A quiet connection is asked for a word now and then: one whose server went
        // silent (a black hole) is given up and opened anew, not waited on for ever.
        let received = tokio::select! {
            received = listener.try_recv() => received,
            () = tokio::time::sleep(QUIET_CHECK_AFTER) => {
                let ping = sqlx::query("SELECT 1").execute(&mut listener);
                match tokio::time::timeout(DEFAULT_PEER_TIMEOUT, ping).await {
                    Ok(Ok(_)) => continue,
                    Ok(Err(e)) => return e,
                    Err(_) => return silent(),
                }
            }
        };
        match received {
            Ok(Some(notification)) => {
                if let Ok(position) = notification.payload().parse::<u64>() {
                    advance(newest, position);
                }
            }
            // The connection was lost and is back (or will be on the next call).
            Ok(None) => wake(newest),
            Err(e) => return e,
        }
    }
}
