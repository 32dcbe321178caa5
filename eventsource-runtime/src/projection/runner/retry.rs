//! Store operations retried while the store is unavailable, and the runner's log lines
//! about retries and stops.

use std::time::Duration;

use super::shutdown::Shutdown;
use super::{Halt, ProjectionRunner, RunnerError};
use crate::health::ComponentState;
use crate::projection::Projection;
use crate::store::StoreError;
use crate::telemetry::otel::log::{log_error, log_warn};
use crate::telemetry::values::Chain;

impl<P: Projection> ProjectionRunner<P> {
    /// A store operation, retried with backoff while the store is unavailable;
    /// `Halt::LeaseLost` when the checkpoint store says the lease is lost.
    ///
    /// The operation itself is never cut short by shutdown (a checkpoint save must land);
    /// the waits between attempts are, and a runner asked to stop tries a failing save
    /// twice, not until it lands.
    pub(super) async fn retrying<T, Fut>(
        &self,
        name: &str,
        operation: &'static str,
        shutdown: &mut Shutdown<'_>,
        attempt_once: impl FnMut() -> Fut,
    ) -> Result<T, Halt>
    where
        Fut: Future<Output = Result<T, StoreError>>,
    {
        self.attempts(name, operation, shutdown, false, attempt_once)
            .await
    }

    /// [`retrying`](Self::retrying) for an operation that changes nothing (a read): cut
    /// short by shutdown (`Halt::Shutdown`), as is a store that fails it once shutdown was
    /// asked for, so that a read stuck on a silent network cannot hold a stopping runner.
    pub(super) async fn reading<T, Fut>(
        &self,
        name: &str,
        operation: &'static str,
        shutdown: &mut Shutdown<'_>,
        attempt_once: impl FnMut() -> Fut,
    ) -> Result<T, Halt>
    where
        Fut: Future<Output = Result<T, StoreError>>,
    {
        self.attempts(name, operation, shutdown, true, attempt_once)
            .await
    }

    async fn attempts<T, Fut>(
        &self,
        name: &str,
        operation: &'static str,
        shutdown: &mut Shutdown<'_>,
        read: bool,
        mut attempt_once: impl FnMut() -> Fut,
    ) -> Result<T, Halt>
    where
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut attempt = 1;
        let mut before_retrying = None;
        loop {
            let attempted = if read {
                shutdown.or(attempt_once()).await.ok_or(Halt::Shutdown)?
            } else {
                attempt_once().await
            };
            let error = match attempted {
                Ok(value) => {
                    if let Some(state) = before_retrying {
                        self.probe.status.set(state);
                    }
                    return Ok(value);
                }
                Err(StoreError::LeaseLost { .. }) => return Err(Halt::LeaseLost),
                Err(error) => error,
            };
            let transient = matches!(error, StoreError::Unavailable(_));
            if read && transient && shutdown.requested() {
                return Err(Halt::Shutdown);
            }
            let exhausted = self
                .settings
                .max_store_attempts
                .is_some_and(|max| attempt >= max);
            // A save that fails on its first try while the runner stops is tried once more
            // at once: the pool hands out a connection the server ended during a fault (it
            // fails with a reset), and the next try gets a fresh one.
            let once_more = !read && transient && attempt == 1 && !exhausted;
            if shutdown.requested() && once_more {
                attempt += 1;
                continue;
            }
            if !transient || exhausted || shutdown.requested() {
                let error = RunnerError::Store {
                    projection: name.to_owned(),
                    operation,
                    source: error,
                };
                log_stopped(&error);
                return Err(error.into());
            }
            let status = &self.probe.status;
            before_retrying.get_or_insert_with(|| status.state());
            status.set_after(ComponentState::Retrying, &error);
            let delay = self.settings.backoff(attempt);
            log_retry(name, operation, 0, attempt, delay, &Chain(&error));
            shutdown
                .or(tokio::time::sleep(delay))
                .await
                .ok_or(Halt::Shutdown)?;
            attempt = attempt.saturating_add(1);
        }
    }
}

/// A failed attempt that the runner retries after `delay`.
pub(super) fn log_retry(
    projection: &str,
    operation: &str,
    position: u64,
    attempt: u32,
    delay: Duration,
    error: &dyn std::fmt::Display,
) {
    log_warn!(
        projection,
        operation,
        position,
        attempt,
        retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        error = %error,
        "projection runner: attempt failed; retrying"
    );
}

/// The error the runner stops with.
pub(super) fn log_stopped(error: &RunnerError) {
    log_error!(error = %Chain(error), "projection runner stopped");
}
