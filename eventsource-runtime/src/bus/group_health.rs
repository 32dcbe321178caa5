//! What every broker's consumer group shares for its health: a status its running loop
//! updates, its lag gauges sampled on an interval while it runs, and the `health()` made
//! of the broker's own `lag()`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::BusError;
use crate::event::EventEnvelope;
use crate::health::instrument::record_group_lag;
use crate::health::{
    ComponentHealth, ComponentKind, ComponentState, DEFAULT_LAG_INTERVAL, Holding, Lag, LeaseState,
    Status,
};

/// A consumer group's status and lag sampling interval, shared by its clones.
#[derive(Clone, Debug)]
pub(crate) struct GroupHealth {
    status: Arc<Status>,
    pub(crate) interval: Duration,
}

impl GroupHealth {
    pub(crate) fn new() -> Self {
        Self {
            status: Arc::new(Status::new(LeaseState::NotApplicable)),
            interval: DEFAULT_LAG_INTERVAL,
        }
    }

    /// The status the running loop updates.
    pub(crate) fn status(&self) -> &Status {
        &self.status
    }

    /// Holds `event` as the one being handled (its age is the group's oldest) until the
    /// guard is dropped.
    pub(crate) fn handling(&self, event: &EventEnvelope) -> Holding<'_> {
        self.status.in_hand().hold(event.timestamp)
    }

    /// The age of the event being handled, if one is: `events` waiting in all.
    pub(crate) fn lag_with(&self, events: u64) -> Lag {
        match self.status.in_hand().recorded_at() {
            Some(recorded_at) => Lag::since(events, recorded_at),
            None => Lag {
                events,
                oldest_age: Duration::ZERO,
            },
        }
    }

    /// A session ended in `error`: retrying after a backoff.
    pub(crate) fn retrying(&self, error: &BusError) {
        self.status.set_after(ComponentState::Retrying, error);
    }

    /// `consume` (a group's whole run), its lag recorded meanwhile on `system` every
    /// interval (the first at once): `sample` measures it. The group is `stopped` after.
    pub(crate) async fn running<T, L>(
        &self,
        system: &'static str,
        name: &str,
        consume: impl Future<Output = T>,
        sample: impl Fn() -> L,
    ) -> T
    where
        L: Future<Output = Result<Lag, BusError>>,
    {
        let output = tokio::select! {
            output = consume => output,
            never = self.sample_forever(system, name, sample) => match never {},
        };
        self.status.set(ComponentState::Stopped);
        output
    }

    async fn sample_forever<L>(
        &self,
        system: &'static str,
        name: &str,
        sample: impl Fn() -> L,
    ) -> Infallible
    where
        L: Future<Output = Result<Lag, BusError>>,
    {
        let mut ticks = tokio::time::interval(self.interval.max(Duration::from_millis(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Ok(lag) = sample().await {
                record_group_lag(system, name, lag);
            }
        }
    }

    /// The group's health from its status, `lag` and dead letters (`parked`).
    pub(crate) fn report(
        &self,
        name: &str,
        lag: Result<Lag, BusError>,
        parked: Result<u64, BusError>,
    ) -> ComponentHealth {
        let now = self.status.now();
        let mut health = ComponentHealth::new(
            ComponentKind::ConsumerGroup,
            name,
            now.state,
            LeaseState::NotApplicable,
        );
        health.last_error = now.last_error;
        health.lag = lag.ok();
        health.parked = parked.unwrap_or(0);
        health
    }
}

/// A consumer group's `lag_interval` builder, `health()`, and its [`ReportsHealth`] and
/// [`Watchable`] impls, for a group type with a `health: GroupHealth` field, a `name`, an
/// `async fn lag(&self) -> Result<Lag, BusError>` and `dead_letters().count()`.
///
/// [`ReportsHealth`]: crate::health::ReportsHealth
/// [`Watchable`]: crate::health::Watchable
macro_rules! group_health {
    ($group:ty) => {
        impl $group {
            /// Builder: how often the running group records its lag gauges
            /// (`eventsource.lag.events`, `eventsource.lag.oldest_age`; default
            /// [`DEFAULT_LAG_INTERVAL`](crate::health::DEFAULT_LAG_INTERVAL)). Each sample
            /// asks the broker once.
            #[must_use]
            pub fn lag_interval(mut self, interval: std::time::Duration) -> Self {
                self.health.interval = interval;
                self
            }

            /// The group's health (kind `consumer_group`, no lease): its state, its lag
            /// (asked now, see [`lag`](Self::lag)), its dead letters as parked events, and
            /// its last error (a lost connection, a failed handler).
            pub async fn health(&self) -> $crate::health::ComponentHealth {
                let lag = self.lag().await;
                let parked = self.dead_letters().count().await.map(u64::from);
                self.health.report(&self.name, lag, parked)
            }
        }

        #[$crate::async_trait]
        impl $crate::health::ReportsHealth for $group {
            async fn health(&self) -> $crate::health::ComponentHealth {
                <$group>::health(self).await
            }
        }

        impl $crate::health::Watchable for $group {
            fn health_reporter(&self) -> std::sync::Arc<dyn $crate::health::ReportsHealth> {
                std::sync::Arc::new(self.clone())
            }
        }
    };
}
pub(crate) use group_health;
