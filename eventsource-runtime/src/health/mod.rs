//! Lag and health: how far behind each projection runner, relay and consumer group is, and
//! what it is doing, for dashboards and readiness checks.
//!
//! Every [`ProjectionRunner`](crate::projection::runner::ProjectionRunner), every
//! [`Relay`](crate::relay::Relay) and every broker's consumer group
//! - reports its [`Lag`] through `lag()`: the events not handled yet, and the age of the
//!   oldest of them;
//! - records it as the gauges `eventsource.lag.events` and `eventsource.lag.oldest_age`
//!   (see `docs/telemetry.md`): runners and relays after each batch they read, consumer
//!   groups every `lag_interval` while they run;
//! - reports its [`ComponentHealth`] through `health()`: its [state](ComponentState), its
//!   lag, whether it holds its lease, its parked events and its last error; a runner or
//!   relay also names the session holding its store's high-water mark back, when one has
//!   for longer than [`MARK_HELD_WARN_AFTER`](crate::store::MARK_HELD_WARN_AFTER) (a
//!   PostgreSQL append whose transaction stalls: nothing after it is readable until it
//!   ends), logs a WARN line naming it and records the gauge `eventsource.store.mark_held`.
//!
//! A worker of a projection or relay [split into segments](crate::projection::segments)
//! reports as one component too, listing every segment of the projection
//! ([`SegmentHealth`]: owner, epoch, checkpoint, lag, parked events).
//!
//! A [`HealthRegistry`] watches several of them and makes one [`HealthReport`] of them
//! all: printed, it is a table; serialized (serde), JSON; [`is_ready`](HealthReport::is_ready)
//! answers a readiness probe. The report holds one [`ComponentHealth`] per component. What
//! the registry keeps of a component is a [`ReportsHealth`], the reporter that answers for
//! it; a runner, relay or group is [`Watchable`]: it hands out a reporter sharing its
//! state, so the registry needs no borrow of it (a component of your own implements
//! `ReportsHealth` and is [registered](HealthRegistry::register)). The runtime serves nothing itself: an application answers its
//! own readiness endpoint with it (`docs/guide/operating.md` in the repository shows one).
//!
//! How each kind measures its lag:
//! - a **projection runner** or **relay**: events = the store's newest position minus the
//!   checkpoint; age = now minus the time the first event after the checkpoint was
//!   recorded;
//! - a **segment** of a split projection: the same, from the segment's checkpoint, when one
//!   of the segment's own events waits (zero otherwise); its worker's lag is that of its
//!   furthest-behind segment;
//! - a **RabbitMQ** group: events = the messages ready in its queue, plus the one being
//!   handled (messages the broker already handed to the consumer, up to its prefetch, are
//!   not counted: RabbitMQ does not say how many); age = that of the event being handled,
//!   0 when none is (a queue cannot be looked into without taking a message);
//! - a **NATS JetStream** group: events = its durable consumer's pending plus
//!   acknowledgement-pending messages; age = that of the first message after the consumer's
//!   acknowledgement floor (read from the stream);
//! - a **Kafka** group: events = the sum over the partitions of its topics of the high
//!   watermark minus the group's committed offset; age = that of the event being handled,
//!   0 when none is (reading the record at the committed offset would mean joining the
//!   partition).
//!
//! Retry and dead-letter queues are not lag: a message waiting out its retry delay is
//! waiting on purpose.
//!
//! ```
//! use std::sync::Arc;
//!
//! use eventsource_runtime::health::{ComponentState, HealthRegistry};
//! use eventsource_runtime::prelude::*;
//! use eventsource_runtime::projection::checkpoint::InMemoryCheckpointStore;
//!
//! #[derive(Default)]
//! struct Counter;
//!
//! #[eventsource_runtime::async_trait]
//! impl Projection for Counter {
//!     fn name(&self) -> &str { "Counter" }
//!     async fn handle(&mut self, _: &EventEnvelope) -> Result<(), ProjectionError> { Ok(()) }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let store = InMemoryEventStore::new();
//! let event = eventsource_runtime::event::NewEvent::new("Placed", 1, serde_json::json!({}));
//! store.append(&StreamId::new("Order", "o-1"), ExpectedVersion::Any, vec![event]).await?;
//! let runner = ProjectionRunner::new(
//!     Arc::new(store),
//!     Arc::new(InMemoryCheckpointStore::new()),
//!     Counter,
//! );
//! let health = HealthRegistry::new();
//! health.watch(&runner);
//! assert_eq!(runner.lag().await?.events, 1, "not handled yet");
//!
//! runner.run_until_caught_up().await?;
//! let report = health.report().await;
//! assert_eq!(report.components()[0].state, ComponentState::CaughtUp);
//! assert_eq!(report.components()[0].lag.unwrap().events, 0);
//! assert!(report.is_ready());
//! println!("{report}");
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```

pub(crate) mod instrument;
mod mark;
mod report;
mod status;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::Serialize;

use crate::store::MarkHolder;

pub(crate) use mark::late_mark_holder;
pub use report::{HealthRegistry, HealthReport};
#[cfg(feature = "broker")]
pub(crate) use status::Holding;
pub(crate) use status::Status;

/// How often a running consumer group records its lag gauges, unless told otherwise
/// (`lag_interval` on each broker's group).
pub const DEFAULT_LAG_INTERVAL: Duration = Duration::from_secs(15);

/// How far behind a component is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Lag {
    /// Events (messages) stored or published and not handled yet.
    pub events: u64,
    /// The age of the oldest of them: now minus the time it was recorded; zero when none
    /// waits (or when the broker cannot tell, see the [module](self)).
    #[serde(rename = "oldest_age_seconds", serialize_with = "seconds")]
    pub oldest_age: Duration,
}

impl Lag {
    /// Nothing waiting.
    pub const ZERO: Self = Self {
        events: 0,
        oldest_age: Duration::ZERO,
    };

    /// `events` waiting, the oldest recorded at `oldest`; an event recorded "in the future"
    /// (another machine's clock) is zero seconds old.
    #[must_use]
    pub fn since(events: u64, oldest: chrono::DateTime<chrono::Utc>) -> Self {
        let oldest_age = (chrono::Utc::now() - oldest).to_std().unwrap_or_default();
        Self { events, oldest_age }
    }
}

impl fmt::Display for Lag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} events, oldest {:.3} s",
            self.events,
            self.oldest_age.as_secs_f64()
        )
    }
}

/// What a component is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ComponentKind {
    /// A [`ProjectionRunner`](crate::projection::runner::ProjectionRunner).
    Projection,
    /// A [`Relay`](crate::relay::Relay).
    Relay,
    /// A broker's consumer group (RabbitMQ, Kafka, NATS JetStream).
    ConsumerGroup,
}

impl ComponentKind {
    /// The value of `eventsource.component.kind`: `projection`, `relay`, `consumer_group`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Projection => "projection",
            Self::Relay => "relay",
            Self::ConsumerGroup => "consumer_group",
        }
    }
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a component is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ComponentState {
    /// Built, not run yet.
    Starting,
    /// Handling events stored before it started (or a full batch behind).
    CatchingUp,
    /// Caught up, handling new events as they come (a consumer group: consuming).
    Following,
    /// A run that ends once caught up (`run_until_caught_up`, `rebuild`) got there.
    CaughtUp,
    /// Another runner holds the lease: this one is a standby and takes over when it can.
    WaitingForLease,
    /// It lost the lease it held (its database session ended) and stopped handling; a
    /// following runner waits for the lease again.
    LeaseLost,
    /// Waiting out a backoff: a handler failed, or the store or broker is unavailable
    /// (see the last error).
    Retrying,
    /// A consumer group that has had events waiting and handled none for its stall bound
    /// (see the last error: what the broker says of the group); it connects again.
    Stalled,
    /// It stopped as asked (its shutdown future completed).
    Stopped,
    /// It stopped on an error it cannot work around (see the last error).
    Failed,
}

impl ComponentState {
    /// The state as the report writes it: `starting`, `catching_up`, `following`,
    /// `caught_up`, `waiting_for_lease`, `lease_lost`, `retrying`, `stalled`, `stopped`,
    /// `failed`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::CatchingUp => "catching_up",
            Self::Following => "following",
            Self::CaughtUp => "caught_up",
            Self::WaitingForLease => "waiting_for_lease",
            Self::LeaseLost => "lease_lost",
            Self::Retrying => "retrying",
            Self::Stalled => "stalled",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
        }
    }

    /// Whether a process with a component in this state is ready to serve: not while one
    /// is starting, catching up, retrying, stalled or failed. A standby (waiting for the
    /// lease, or having lost it to another replica) is ready: the other replica does the
    /// work.
    #[must_use]
    pub const fn is_ready(self) -> bool {
        matches!(
            self,
            Self::Following
                | Self::CaughtUp
                | Self::WaitingForLease
                | Self::LeaseLost
                | Self::Stopped
        )
    }
}

impl fmt::Display for ComponentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a component holds its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseState {
    /// It holds the lease: it is the one doing the work.
    Held,
    /// It does not (not running, waiting for it, or lost it).
    NotHeld,
    /// The component has no lease (a consumer group: the broker shares the work out).
    NotApplicable,
}

impl LeaseState {
    /// `held`, `not_held` or `n/a`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::NotHeld => "not_held",
            Self::NotApplicable => "n/a",
        }
    }
}

/// The last error a component met, retried or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastError {
    /// The error and its sources, each said once (`projection `Orders` stopped: its
    /// handler failed 3 times ...: order o-1 is unknown`).
    pub message: String,
    /// When it happened.
    #[serde(serialize_with = "rfc3339")]
    pub at: SystemTime,
}

impl LastError {
    /// `error` with its whole chain of sources, now.
    #[must_use]
    pub fn now(error: &(dyn std::error::Error + '_)) -> Self {
        Self {
            message: crate::telemetry::values::Chain(error).to_string(),
            at: SystemTime::now(),
        }
    }
}

/// One component's health.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ComponentHealth {
    /// What it is.
    pub kind: ComponentKind,
    /// Its name: the projection's, the relay's, the consumer group's.
    pub name: String,
    /// What it is doing.
    pub state: ComponentState,
    /// How far behind it is; `None` when the store or broker could not be asked (a consumer
    /// group retrying its connection does not ask it again: its report comes at once).
    pub lag: Option<Lag>,
    /// Whether it holds its lease.
    pub lease: LeaseState,
    /// Events it set aside: a runner's parked events (unreadable, see
    /// [`UnreadablePolicy::Park`](crate::projection::runner::UnreadablePolicy::Park)), a
    /// consumer group's dead letters (its `dead_letters().count()`; 0 when the broker
    /// cannot be asked).
    pub parked: u64,
    /// The last error it met, if any.
    pub last_error: Option<LastError>,
    /// A projection or relay split into segments: each segment, who holds it, how far it
    /// got (one line each in the printed report); empty otherwise (and left out of the
    /// JSON).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<SegmentHealth>,
    /// A runner or relay: the session holding its store's high-water mark back, when one
    /// has for longer than [`MARK_HELD_WARN_AFTER`](crate::store::MARK_HELD_WARN_AFTER):
    /// the component reads nothing stored after the mark until that session's transaction
    /// ends, so its lag understates what waits. `None` otherwise (and left out of the JSON,
    /// `mark_held_by` there).
    #[serde(rename = "mark_held_by", skip_serializing_if = "Option::is_none")]
    pub mark_holder: Option<MarkHolder>,
}

/// One segment of a projection or relay split into segments, in its worker's
/// [`ComponentHealth`]: as every worker of the projection sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SegmentHealth {
    /// The segment, as `index/count` (`3/16`).
    pub segment: String,
    /// The worker holding it; `None` when free.
    pub owner: Option<String>,
    /// The epoch of its current claim (it grows with each new owner; 0: never claimed).
    pub epoch: u64,
    /// Whether its owner stopped renewing the claim within its own claim timeout (the one
    /// the claim was made with): any worker may take it over.
    pub expired: bool,
    /// The last position of the log it saved as handled.
    pub checkpoint: u64,
    /// How far behind it is: when one of its events waits, the positions of the log after
    /// its checkpoint (the store's newest position minus it) and the age of its first
    /// waiting event; [`Lag::ZERO`] when none waits. `None` when the store could not be
    /// asked.
    pub lag: Option<Lag>,
    /// Its parked events.
    pub parked: u64,
}

impl ComponentHealth {
    /// A component's health; `lag` unknown, nothing parked, no error.
    #[must_use]
    pub fn new(
        kind: ComponentKind,
        name: impl Into<String>,
        state: ComponentState,
        lease: LeaseState,
    ) -> Self {
        Self {
            kind,
            name: name.into(),
            state,
            lag: None,
            lease,
            parked: 0,
            last_error: None,
            segments: Vec::new(),
            mark_holder: None,
        }
    }
}

/// A component that reports its health: what a [`HealthRegistry`] asks. Implemented by
/// the runtime's runners, relay and consumer groups; implement it for a component of your
/// own to put it in the same report.
#[async_trait]
pub trait ReportsHealth: Send + Sync + 'static {
    /// The component's health now (its lag measured now).
    async fn health(&self) -> ComponentHealth;
}

/// A component a [`HealthRegistry`] can [watch](HealthRegistry::watch): it hands out a
/// reporter sharing its state, so the registry needs no borrow of it.
pub trait Watchable {
    /// A reporter of this component's health, alive as long as the registry keeps it.
    fn health_reporter(&self) -> Arc<dyn ReportsHealth>;
}

fn seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

fn rfc3339<S: serde::Serializer>(at: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    let at: chrono::DateTime<chrono::Utc> = (*at).into();
    serializer.collect_str(&at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}
