//! A runner's settings and their defaults.

use std::time::Duration;

use super::UnreadablePolicy;

/// Default [`ProjectionRunner::batch_size`](super::ProjectionRunner::batch_size).
pub const DEFAULT_BATCH_SIZE: usize = 256;
/// Default [`ProjectionRunner::poll_interval`](super::ProjectionRunner::poll_interval).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Default [`ProjectionRunner::max_attempts`](super::ProjectionRunner::max_attempts).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Default first delay of [`ProjectionRunner::backoff`](super::ProjectionRunner::backoff).
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Default longest delay of [`ProjectionRunner::backoff`](super::ProjectionRunner::backoff).
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Default [`ProjectionRunner::lease_retry_interval`](super::ProjectionRunner::lease_retry_interval).
pub const DEFAULT_LEASE_RETRY_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
pub(super) struct Settings {
    pub(super) batch_size: usize,
    pub(super) poll_interval: Duration,
    pub(super) max_attempts: u32,
    pub(super) initial_backoff: Duration,
    pub(super) max_backoff: Duration,
    pub(super) lease_retry_interval: Duration,
    pub(super) max_store_attempts: Option<u32>,
    pub(super) on_unreadable: UnreadablePolicy,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            batch_size: DEFAULT_BATCH_SIZE,
            poll_interval: DEFAULT_POLL_INTERVAL,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            lease_retry_interval: DEFAULT_LEASE_RETRY_INTERVAL,
            max_store_attempts: None,
            on_unreadable: UnreadablePolicy::Stop,
        }
    }
}

impl Settings {
    /// The delay after failed attempt `attempt` (1-based): doubling from the initial one,
    /// capped.
    pub(super) fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1_u32 << attempt.saturating_sub(1).min(20);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let settings = Settings {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            ..Settings::default()
        };
        let delays: Vec<_> = (1..=5).map(|a| settings.backoff(a).as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 50, 50]);
        assert_eq!(settings.backoff(u32::MAX), Duration::from_millis(50));
    }
}
