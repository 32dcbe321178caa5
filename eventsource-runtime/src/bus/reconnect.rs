//! What every broker's consumer group does when its connection is lost: log why, wait
//! (doubling the wait up to a bound), connect again, until it is told to stop.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::BusError;
use crate::telemetry::otel::log::log_warn;
use crate::telemetry::values::Chain;

/// The first wait before connecting again after a failure; it doubles up to
/// [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait between reconnections.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The wait before the next connection of a consumer group.
pub(crate) struct Backoff(Duration);

impl Backoff {
    pub(crate) fn new() -> Self {
        Self(MIN_BACKOFF)
    }

    /// After a session of `group` ended in `error`: logs it, then waits out the backoff
    /// (doubled for next time). `false` when `shutdown` completed first: stop.
    pub(crate) async fn wait<S: Future<Output = ()>>(
        &mut self,
        group: &str,
        error: &BusError,
        shutdown: Pin<&mut S>,
    ) -> bool {
        let wait = self.0;
        log_warn!(
            group = group,
            error = %Chain(error),
            retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            "consumer group disconnected; connecting again"
        );
        self.0 = (wait * 2).min(MAX_BACKOFF);
        tokio::select! {
            biased;
            () = shutdown => false,
            () = tokio::time::sleep(wait) => true,
        }
    }
}
