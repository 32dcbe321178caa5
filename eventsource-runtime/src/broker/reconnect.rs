//! What every broker's consumer group does when its connection is lost: log why, wait
//! (doubling the wait up to a bound), connect again, until it is told to stop; the run of
//! a group made of such sessions, its lag sampled meanwhile; and the bound on its stop.

use std::future::Future;
use std::pin::{Pin, pin};
use std::time::Duration;

use tokio::sync::watch;

use super::group_health::{GroupHealth, is_restart};
use crate::bus::BusError;
use crate::health::Lag;
use crate::telemetry::otel::log::log_warn;
use crate::telemetry::values::Chain;

/// The first wait before connecting again after a failure; it doubles up to
/// [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait between reconnections.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A wait that doubles each time, up to a bound: before a consumer group connects again,
/// or a Kafka member asks again whether it is one.
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// The first wait `first`, doubling up to `max`.
    pub(crate) fn new(first: Duration, max: Duration) -> Self {
        Self { next: first, max }
    }

    /// Waits the next wait (doubled for next time). `false` when `shutdown` completed
    /// first: stop.
    pub(crate) async fn sleep<S: Future<Output = ()>>(&mut self, shutdown: Pin<&mut S>) -> bool {
        let wait = self.next;
        self.next = (wait * 2).min(self.max);
        tokio::select! {
            biased;
            () = shutdown => false,
            () = tokio::time::sleep(wait) => true,
        }
    }

    /// After a session of `group` ended in `error`: logs it, then waits out the backoff.
    /// `false` when `shutdown` completed first: stop.
    async fn reconnect<S: Future<Output = ()>>(
        &mut self,
        group: &str,
        error: &BusError,
        shutdown: Pin<&mut S>,
    ) -> bool {
        log_warn!(
            group = group,
            error = %Chain(error),
            retry_in_ms = u64::try_from(self.next.as_millis()).unwrap_or(u64::MAX),
            "consumer group disconnected; connecting again"
        );
        self.sleep(shutdown).await
    }
}

/// A consumer group's sessions: each connects and consumes until `shutdown` completes or
/// the connection fails; [`reconnecting`] starts the next after a failure.
///
/// A trait rather than a closure: the session future borrows `shutdown` anew each time,
/// and the futures of an `AsyncFnMut` doing so cannot be shown `Send` (a spawned group's
/// run must be).
pub(crate) trait Sessions {
    /// One session: `Ok` once `shutdown` completed, the error that ended it otherwise.
    fn session<'a, S: Future<Output = ()> + Send>(
        &'a mut self,
        shutdown: Pin<&'a mut S>,
    ) -> impl Future<Output = Result<(), BusError>> + Send + 'a;
}

/// Runs the `sessions` of the consumer group `group`, one after the other, until one ends
/// because `shutdown` completed, or `shutdown` completes during a backoff: a session that
/// ends in an error marks the group retrying in `health`, is logged, and is followed by a
/// new one after the backoff.
pub(crate) async fn reconnecting<S: Future<Output = ()> + Send>(
    group: &str,
    health: &GroupHealth,
    mut shutdown: Pin<&mut S>,
    mut sessions: impl Sessions,
) {
    let mut backoff = Backoff::new(MIN_BACKOFF, MAX_BACKOFF);
    // Boxed: a session's future is large (the broker client's own), and unboxed it is
    // copied into every frame that polls it, which overflowed a 2 MiB thread in a debug
    // build. One allocation per session.
    while let Err(error) = Box::pin(sessions.session(shutdown.as_mut())).await {
        if is_restart(&error) {
            // Asked for by the stall watch, which said so: at once, and a failure after
            // it waits the shortest backoff again.
            backoff = Backoff::new(MIN_BACKOFF, MAX_BACKOFF);
            continue;
        }
        health.retrying(&error);
        if !backoff.reconnect(group, &error, shutdown.as_mut()).await {
            return;
        }
    }
}

/// Runs the consumer group `group` until `shutdown` completes: its `sessions`, again after
/// each failure ([`reconnecting`]), while its lag (measured by `lag`) is recorded on
/// `system` and watched for a stall (`describe` says what the broker says of the group)
/// ([`GroupHealth::running`]); their graceful stop bounded by the group's stop timeout
/// ([`stop_within`]).
// Kafka runs its loops itself (one per source), through `GroupHealth::running`.
#[cfg_attr(not(any(feature = "rabbitmq", feature = "nats")), allow(dead_code))]
pub(crate) async fn keep_running<L, D>(
    system: &'static str,
    group: &str,
    health: &GroupHealth,
    shutdown: impl Future + Send,
    sessions: impl Sessions,
    lag: impl Fn() -> L,
    describe: impl Fn() -> D,
) where
    L: Future<Output = Result<Lag, BusError>>,
    D: Future<Output = String>,
{
    let (stop, stopped) = watch::channel(false);
    let asked = pin!(stop_asked(stopped));
    let consume = reconnecting(group, health, asked, sessions);
    let bounded = stop_within(group, health.stop_timeout, shutdown, stop, consume);
    health.running(system, group, bounded, lag, describe).await;
}

/// Completes once `true` is sent on `stopped` (or its sender is gone).
pub(crate) async fn stop_asked(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Runs `consume` (a group's sessions, which stop gracefully once told on `stop`) until it
/// returns, or until `within` has passed since `shutdown` completed: `consume` is then
/// dropped where it stands, with the message in its handler and the connection it holds,
/// and one WARN line says so.
///
/// Dropped, a delivery is never settled: the broker hands what was not acknowledged to the
/// next consumer (RabbitMQ once the connection is gone, NATS after its ack wait; Kafka's
/// offsets were never committed past it), as after a crash. What it bounds is everything a
/// graceful stop waits for without a limit of its own: a handler that does not return, the
/// drain of what the broker had handed over, a broker (or a database) too slow to answer
/// the cancel, the last acknowledgements or the close.
pub(crate) async fn stop_within(
    group: &str,
    within: Duration,
    shutdown: impl Future,
    stop: watch::Sender<bool>,
    consume: impl Future<Output = ()>,
) {
    // `shutdown` is polled here, not by the sessions: the clock starts when it completes,
    // even while a session is busy with a message or connecting and does not look at it.
    let deadline = async {
        shutdown.await;
        let _ = stop.send(true);
        tokio::time::sleep(within).await;
    };
    tokio::select! {
        biased;
        () = consume => {}
        () = deadline => log_warn!(
            group = group,
            stop_timeout_ms = u64::try_from(within.as_millis()).unwrap_or(u64::MAX),
            "consumer group did not stop within its stop timeout; what it had not settled \
             is left unacknowledged, and the broker delivers it again"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[tokio::test]
    async fn a_stop_that_outlasts_its_bound_is_cut_short_once_the_bound_is_over() {
        let (stop, stopped) = watch::channel(false);
        let bound = Duration::from_millis(100);
        let started = Instant::now();
        // Shut down at once; sessions that never finish their stop.
        stop_within("g", bound, async {}, stop, std::future::pending()).await;
        let took = started.elapsed();
        assert!(took >= bound, "{took:?}");
        assert!(took < bound * 20, "{took:?}");
        assert!(*stopped.borrow(), "the sessions were told to stop");
    }

    #[tokio::test]
    async fn a_stop_within_its_bound_returns_when_the_sessions_do() {
        let (stop, stopped) = watch::channel(false);
        let bound = Duration::from_secs(60);
        let started = Instant::now();
        let shutdown = tokio::time::sleep(Duration::from_millis(20));
        stop_within("g", bound, shutdown, stop, stop_asked(stopped)).await;
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
