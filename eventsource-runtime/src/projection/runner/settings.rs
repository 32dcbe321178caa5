//! A runner's settings and their defaults.

use std::time::Duration;

use super::{ProjectionRunner, UnreadablePolicy};
use crate::projection::Projection;

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
/// Default [`ProjectionRunner::takeover_grace`](super::ProjectionRunner::takeover_grace).
pub const DEFAULT_TAKEOVER_GRACE: Duration = Duration::from_millis(250);
/// Default [`ProjectionRunner::checkpoint_every`]: after every batch.
pub const DEFAULT_CHECKPOINT_EVERY: usize = 1;
/// Default [`ProjectionRunner::max_unsaved_events`].
pub const DEFAULT_MAX_UNSAVED_EVENTS: usize = 4096;
/// Default [`ProjectionRunner::checkpoint_interval`].
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
pub(super) struct Settings {
    pub(super) batch_size: usize,
    pub(super) poll_interval: Duration,
    pub(super) max_attempts: u32,
    pub(super) initial_backoff: Duration,
    pub(super) max_backoff: Duration,
    pub(super) lease_retry_interval: Duration,
    pub(super) takeover_grace: Duration,
    pub(super) max_store_attempts: Option<u32>,
    pub(super) on_unreadable: UnreadablePolicy,
    pub(super) checkpoint_every: usize,
    pub(super) checkpoint_interval: Duration,
    pub(super) max_unsaved: usize,
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
            takeover_grace: DEFAULT_TAKEOVER_GRACE,
            max_store_attempts: None,
            on_unreadable: UnreadablePolicy::Stop,
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            max_unsaved: DEFAULT_MAX_UNSAVED_EVENTS,
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

impl<P: Projection> ProjectionRunner<P> {
    /// How many events, at least, a runner catching up hands over between two checkpoint
    /// saves (default [`DEFAULT_CHECKPOINT_EVERY`]: after every batch; at least 1). It also
    /// saves once [`checkpoint_interval`](Self::checkpoint_interval) passed since the last
    /// save, and always after a batch that was not full (it caught up) and before it
    /// stops, whatever the reason (unless its lease is lost).
    ///
    /// A full batch's checkpoint is saved in the background, one save at a time, while the
    /// next batches are handled; see [`max_unsaved_events`](Self::max_unsaved_events) for
    /// how far the runner goes meanwhile. Saving less often spares a database store a write
    /// per batch.
    #[must_use]
    pub fn checkpoint_every(mut self, events: usize) -> Self {
        self.settings.checkpoint_every = events.max(1);
        self
    }

    /// How many events a runner catching up hands over past its last completed checkpoint
    /// save before it waits for the save in flight (default
    /// [`DEFAULT_MAX_UNSAVED_EVENTS`]; at least 1): a save that takes long (a database
    /// waiting for its disk) holds the runner back only past that many events.
    ///
    /// A runner killed without a chance to save (a crash, `SIGKILL`) hands over again, next
    /// time, the events handled since its last completed save: fewer than the larger of
    /// this and [`checkpoint_every`](Self::checkpoint_every), plus two
    /// [batches](Self::batch_size). That is the window its handlers' idempotence covers.
    #[must_use]
    pub fn max_unsaved_events(mut self, events: usize) -> Self {
        self.settings.max_unsaved = events.max(1);
        self
    }

    /// How long, at most, a runner catching up goes without saving its checkpoint when
    /// [`checkpoint_every`](Self::checkpoint_every) lets it save less often than every
    /// batch (default [`DEFAULT_CHECKPOINT_INTERVAL`]): a slow projection's window stays
    /// short in time too.
    #[must_use]
    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.settings.checkpoint_interval = interval;
        self
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
