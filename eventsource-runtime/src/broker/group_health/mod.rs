//! What every broker's consumer group shares for its health: a status its running loop
//! updates, its lag gauges sampled on an interval while it runs, the watch that says when
//! it stalls, and the `health()` made of the broker's own `lag()`.

mod instrument;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::bus::BusError;
use crate::event::EventEnvelope;
use crate::health::instrument::record_group_lag;
use crate::health::{
    ComponentHealth, ComponentKind, ComponentState, DEFAULT_LAG_INTERVAL, Holding, Lag, LeaseState,
    Status,
};
use instrument::{group_resumed, group_stalled};

/// How long a consumer group may have events waiting and handle none before it reports
/// itself stalled, unless told otherwise (`stall_after` on each broker's group).
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(30);

/// How long a consumer group's graceful stop may take, from the moment its `shutdown`
/// completed, unless told otherwise (`stop_timeout` on each broker's group): a third of
/// Kubernetes' default grace period (30 s), leaving the process time for the rest of its
/// exit (telemetry's last export, 2 s by default) however slow the broker or the handlers.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A consumer group had events waiting and handled none for its stall bound: the last
/// error of its [`health`](crate::health::ComponentHealth) while it is
/// [`Stalled`](crate::health::ComponentState::Stalled).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "consumer group `{group}` stalled: {waiting} events waiting and none handled for {} s ({broker})",
    idle.as_secs()
)]
#[non_exhaustive]
pub struct GroupStalled {
    /// The group's name.
    pub group: String,
    /// The events waiting (its lag).
    pub waiting: u64,
    /// How long it handled none.
    pub idle: Duration,
    /// What the broker and the group's consumer say of the group: its state, its members,
    /// the partitions assigned (Kafka), the messages pending (NATS, RabbitMQ).
    pub broker: String,
}

/// A consumer group's status, lag sampling interval and stall watch, shared by its clones.
#[derive(Clone, Debug)]
pub(crate) struct GroupHealth {
    status: Arc<Status>,
    pub(crate) interval: Duration,
    pub(crate) stall_after: Duration,
    /// How long a graceful stop may take (see [`DEFAULT_STOP_TIMEOUT`]).
    pub(crate) stop_timeout: Duration,
    progress: Arc<Progress>,
}

/// What the stall watch reads: how many steps of progress the group made (messages this
/// process started handling, and on Kafka moves of the group's committed offsets); and the
/// wake-up of a session asked to start again.
#[derive(Debug, Default)]
struct Progress {
    steps: AtomicU64,
    restart: Notify,
}

impl GroupHealth {
    pub(crate) fn new() -> Self {
        Self {
            status: Arc::new(Status::new(LeaseState::NotApplicable)),
            interval: DEFAULT_LAG_INTERVAL,
            stall_after: DEFAULT_STALL_AFTER,
            stop_timeout: DEFAULT_STOP_TIMEOUT,
            progress: Arc::default(),
        }
    }

    /// The group made progress this process did not see start (another member's commit).
    pub(crate) fn progressed(&self) {
        self.progress.steps.fetch_add(1, Ordering::Relaxed);
    }

    /// A session is connected and consuming: the group follows, unless it is stalled (a
    /// session started again after a stall says so only once it moves).
    pub(crate) fn connected(&self) {
        if self.status.state() != ComponentState::Stalled {
            self.status.set(ComponentState::Following);
        }
    }

    /// The error that ends a session the stall watch asked to start again.
    pub(crate) fn restart_error(&self) -> BusError {
        BusError::unavailable(RestartAfterStall)
    }

    /// Completes when the stall watch asks the group's session to start again (a new
    /// connection, a new member of the broker's group).
    pub(crate) async fn restart_requested(&self) {
        self.progress.restart.notified().await;
    }

    /// The status the running loop updates.
    pub(crate) fn status(&self) -> &Status {
        &self.status
    }

    /// Holds `event` as the one being handled (its age is the group's oldest) until the
    /// guard is dropped.
    pub(crate) fn handling(&self, event: &EventEnvelope) -> Holding<'_> {
        self.progressed();
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
    /// interval (the first at once) and watched for a stall: `sample` measures it,
    /// `describe` says what the broker says of the group when it stalls. The group is
    /// `stopped` after.
    pub(crate) async fn running<T, L, D>(
        &self,
        system: &'static str,
        name: &str,
        consume: impl Future<Output = T>,
        sample: impl Fn() -> L,
        describe: impl Fn() -> D,
    ) -> T
    where
        L: Future<Output = Result<Lag, BusError>>,
        D: Future<Output = String>,
    {
        let output = tokio::select! {
            output = consume => output,
            never = self.watch_forever(system, name, sample, describe) => match never {},
        };
        self.status.set(ComponentState::Stopped);
        output
    }

    async fn watch_forever<L, D>(
        &self,
        system: &'static str,
        name: &str,
        sample: impl Fn() -> L,
        describe: impl Fn() -> D,
    ) -> Infallible
    where
        L: Future<Output = Result<Lag, BusError>>,
        D: Future<Output = String>,
    {
        let interval = self.interval.max(Duration::from_millis(1));
        let tick = interval
            .min(self.stall_after / 4)
            .max(Duration::from_millis(1));
        let mut ticks = tokio::time::interval(tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut recorded: Option<Instant> = None;
        let mut watch = StallWatch::default();
        loop {
            ticks.tick().await;
            let Ok(lag) = sample().await else {
                continue;
            };
            let now = Instant::now();
            if recorded.is_none_or(|at| now.duration_since(at) >= interval) {
                record_group_lag(system, name, lag);
                recorded = Some(now);
            }
            let steps = self.progress.steps.load(Ordering::Relaxed);
            match watch.observe(lag.events, steps, now, self.stall_after) {
                Verdict::Moving => {}
                Verdict::Stalled { idle, first } => {
                    let stalled = GroupStalled {
                        group: name.to_owned(),
                        waiting: lag.events,
                        idle,
                        broker: describe().await,
                    };
                    if first {
                        group_stalled(system, &stalled);
                    }
                    self.status.set_after(ComponentState::Stalled, &stalled);
                    // A new session: a new connection, and on Kafka a new member of the
                    // group, which makes the broker form the group again.
                    self.progress.restart.notify_waiters();
                }
                Verdict::Resumed { after } => {
                    if self.status.state() == ComponentState::Stalled {
                        self.status.set(ComponentState::Following);
                    }
                    group_resumed(system, name, after);
                }
            }
        }
    }

    /// The report of a group retrying its connection, without asking the broker (lag
    /// unknown, nothing parked as far as it can tell); `None` when it is not retrying.
    ///
    /// A broker that refuses or does not answer makes each of its calls wait out a timeout
    /// (Kafka's lag and dead-letter queries, 10 s each): a readiness probe would wait with
    /// them for figures the report could not give anyway.
    pub(crate) fn while_retrying(&self, name: &str) -> Option<ComponentHealth> {
        let retrying = self.status.state() == ComponentState::Retrying;
        retrying.then(|| self.health_with(name, None, 0))
    }

    /// The group's health from its status, `lag` and dead letters (`parked`).
    pub(crate) fn report(
        &self,
        name: &str,
        lag: Result<Lag, BusError>,
        parked: Result<u64, BusError>,
    ) -> ComponentHealth {
        self.health_with(name, lag.ok(), parked.unwrap_or(0))
    }

    /// The group's health from its status, with these figures.
    fn health_with(&self, name: &str, lag: Option<Lag>, parked: u64) -> ComponentHealth {
        let now = self.status.now();
        let mut health = ComponentHealth::new(
            ComponentKind::ConsumerGroup,
            name,
            now.state,
            LeaseState::NotApplicable,
        );
        health.last_error = now.last_error;
        health.lag = lag;
        health.parked = parked;
        health
    }
}

/// Why a session ended: the stall watch asked for a new one (not a failure: no backoff, no
/// second log line; the stall was reported).
#[derive(Debug, thiserror::Error)]
#[error("started again after a stall")]
pub(crate) struct RestartAfterStall;

/// Whether a session ended because the stall watch asked for a new one.
pub(crate) fn is_restart(error: &BusError) -> bool {
    matches!(error, BusError::Unavailable(source) if source.is::<RestartAfterStall>())
}

/// When a group with events waiting stopped moving: it is stalled once it has had events
/// waiting and made no progress for the bound, and again every bound after that while it
/// still makes none.
#[derive(Debug, Default)]
struct StallWatch {
    /// The progress seen last, and since when it has not changed while events waited.
    still_since: Option<(u64, Instant)>,
    /// When the current stall was reported first, and last.
    stalled: Option<(Instant, Instant)>,
}

/// What a stall watch concluded from one sample.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Nothing waits, or it moved, or not for long enough to tell.
    Moving,
    /// Nothing moved for `idle` with events waiting (`first`: the stall is new).
    Stalled { idle: Duration, first: bool },
    /// A stall ended after `after`.
    Resumed { after: Duration },
}

impl StallWatch {
    fn observe(&mut self, waiting: u64, steps: u64, now: Instant, bound: Duration) -> Verdict {
        let moved = waiting == 0 || self.still_since.is_none_or(|(seen, _)| seen != steps);
        if moved {
            self.still_since = (waiting > 0).then_some((steps, now));
            return match self.stalled.take() {
                Some((since, _)) => Verdict::Resumed {
                    after: now.duration_since(since),
                },
                None => Verdict::Moving,
            };
        }
        let Some((_, since)) = self.still_since else {
            return Verdict::Moving;
        };
        let idle = now.duration_since(since);
        match &mut self.stalled {
            None if idle >= bound => {
                self.stalled = Some((now, now));
                Verdict::Stalled { idle, first: true }
            }
            Some((_, last)) if now.duration_since(*last) >= bound => {
                *last = now;
                Verdict::Stalled { idle, first: false }
            }
            _ => Verdict::Moving,
        }
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

            /// Builder: how long the group may have events waiting and handle none before
            /// it reports itself stalled (default
            /// [`DEFAULT_STALL_AFTER`](crate::broker::DEFAULT_STALL_AFTER), 30 s; at least a
            /// second). A stalled group's [`health`](Self::health) says
            /// [`Stalled`](crate::health::ComponentState::Stalled) with a
            /// [`GroupStalled`](crate::broker::GroupStalled) as its last error (what the
            /// broker says of the group), one WARN line is written and
            /// `eventsource.bus.consumer_group.stalls` counts it; the group then connects
            /// again, as after a lost connection, and once more every such bound while it
            /// stays stalled. Set it above the slowest handler's time: a handler that takes
            /// longer looks like a stall.
            #[must_use]
            pub fn stall_after(mut self, bound: std::time::Duration) -> Self {
                self.health.stall_after = bound.max(std::time::Duration::from_secs(1));
                self
            }

            /// Builder: how long [`run`](Self::run) may take to stop once its `shutdown`
            /// completed (default
            /// [`DEFAULT_STOP_TIMEOUT`](crate::broker::DEFAULT_STOP_TIMEOUT), 10 s): the
            /// message in hand, what the group still handles before it goes (the
            /// `drain_on_stop` window of RabbitMQ and NATS, which it cuts short) and its
            /// goodbyes to the broker (a cancel, a close, the last commit) all fit in it.
            /// What is not settled by then is left unacknowledged (on Kafka, not committed
            /// past): the broker delivers it again, as after a crash (at least once), and
            /// one WARN line says so. A handler, a database or a broker that does not
            /// answer holds the stop no longer than this: keep it below the grace period
            /// the process gets (Kubernetes': 30 s), with room for the rest of its exit.
            #[must_use]
            pub fn stop_timeout(mut self, bound: std::time::Duration) -> Self {
                self.health.stop_timeout = bound;
                self
            }

            /// The group's health (kind `consumer_group`, no lease): its state, its lag
            /// (asked now, see [`lag`](Self::lag)), its dead letters as parked events, and
            /// its last error (a lost connection, a failed handler).
            pub async fn health(&self) -> $crate::health::ComponentHealth {
                if let Some(retrying) = self.health.while_retrying(&self.name) {
                    return retrying;
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_is_stalled_after_the_bound_again_every_bound_and_resumes_when_it_moves() {
        let bound = Duration::from_secs(10);
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut watch = StallWatch::default();
        // Nothing waits: never stalled, however long nothing moves.
        assert_eq!(watch.observe(0, 0, at(0), bound), Verdict::Moving);
        assert_eq!(watch.observe(0, 0, at(30), bound), Verdict::Moving);
        // Events wait from 30 s on, nothing moves.
        assert_eq!(watch.observe(5, 0, at(30), bound), Verdict::Moving);
        assert_eq!(watch.observe(5, 0, at(39), bound), Verdict::Moving);
        let idle = Duration::from_secs(10);
        assert_eq!(
            watch.observe(5, 0, at(40), bound),
            Verdict::Stalled { idle, first: true }
        );
        assert_eq!(watch.observe(5, 0, at(45), bound), Verdict::Moving);
        let idle = Duration::from_secs(20);
        assert_eq!(
            watch.observe(5, 0, at(50), bound),
            Verdict::Stalled { idle, first: false }
        );
        // A step of progress ends it; the clock starts again from there.
        let after = Duration::from_secs(12);
        assert_eq!(
            watch.observe(5, 1, at(52), bound),
            Verdict::Resumed { after }
        );
        assert_eq!(watch.observe(5, 1, at(61), bound), Verdict::Moving);
        assert!(matches!(
            watch.observe(5, 1, at(62), bound),
            Verdict::Stalled { first: true, .. }
        ));
        // Caught up ends it too.
        assert!(matches!(
            watch.observe(0, 1, at(63), bound),
            Verdict::Resumed { .. }
        ));
    }
}
