//! A consumer group: the topics it reads, its handlers, its settings, and how it runs (its
//! sessions are in `session.rs`, how each record is settled in `settle.rs`).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use super::KafkaBus;
use super::group_context::GroupConsumer;
use super::protocol::{self, GroupProtocol};
use super::topology::{GroupTopics, Topics, matches_event};
use crate::broker::group_health::GroupHealth;
use crate::broker::reconnect::stop_within;
use crate::broker::settings as broker;
use crate::broker::{BrokerGroup, GroupParts, runnable_through_its_own_methods};
use crate::bus::{BusError, Dispatcher};
use crate::event::EventEnvelope;

/// How often a group commits the offsets of the records it settled, by default (see
/// [`ConsumerGroup::commit_interval`]).
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// How long the broker waits for a group consumer's heartbeat before it hands the
/// consumer's partitions to the others (`session.timeout.ms`), by default, under the
/// classic protocol (under the consumer protocol the broker sets it).
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// The waits before the redeliveries of a failed record, by default: 1 s, 5 s, 30 s (four
/// deliveries in all, then the dead letters).
pub const DEFAULT_RETRY_DELAYS: [Duration; 3] = broker::DEFAULT_RETRY_DELAYS;

/// A consumer group on a [`KafkaBus`] (see the [module](super) for the topics).
///
/// Records are handed to each interested handler in turn (a [`Dispatcher`]: consume and
/// handle spans, bus metrics), one record at a time, a partition's records in order, and
/// committed only once every handler succeeded. When one fails (or panics), a copy goes to
/// the retry topic of its attempt with the failed handlers' names, and the original is
/// committed, so that the partition moves on; the copy is handed to those handlers only once
/// its delay has passed; after the last allowed delivery it goes to the
/// [dead letters](Self::dead_letters) with the error. Handlers should be idempotent:
/// delivery is at least once.
///
/// A consumer that lost touch with the cluster (a connection failed) hands nothing more
/// over until the group coordinator accepted a commit from it that moves nothing: one the
/// group had fenced meanwhile is refused, and gives up its partitions instead of handling
/// records their new owner handles.
///
/// The builder methods configure the group before it is shared; clones share the handlers.
#[derive(Clone)]
pub struct ConsumerGroup {
    pub(super) bus: KafkaBus,
    pub(super) name: Arc<str>,
    pub(super) patterns: Vec<String>,
    pub(super) delays: Vec<Duration>,
    pub(super) batch: Option<usize>,
    pub(super) commit_interval: Duration,
    pub(super) protocol: GroupProtocol,
    /// Set by [`session_timeout`](Self::session_timeout); [`DEFAULT_SESSION_TIMEOUT`] when not.
    pub(super) session_timeout: Option<Duration>,
    /// The broker refused the consumer protocol: the group joins with the classic one.
    pub(super) fallen_back: Arc<AtomicBool>,
    /// Whether the group said which of its settings its protocol does not take.
    pub(super) told_left_out: Arc<AtomicBool>,
    pub(super) topics: GroupTopics,
    pub(super) dispatcher: Dispatcher,
    pub(super) health: GroupHealth,
    /// The consumer of the events' topics, while a session runs (its view of the group).
    pub(super) live: Arc<std::sync::Mutex<std::sync::Weak<GroupConsumer>>>,
    /// The sum of the group's committed offsets when its lag was last measured.
    pub(super) committed: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for ConsumerGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerGroup")
            .field("name", &self.name)
            .field("group_id", &self.topics.group_id)
            .field("patterns", &self.patterns)
            .field("retry_delays", &self.delays)
            .field("batch", &self.batch)
            .field("handlers", &self.dispatcher.handler_names())
            .finish()
    }
}

/// Where a loop reads from.
#[derive(Debug, Clone)]
pub(super) enum Source {
    /// The events' topics, as the group itself.
    Live,
    /// A retry (or the requeue) topic: a record is handed over once `delay` has passed
    /// since it was written.
    Delayed { topic: String, delay: Duration },
}

impl BrokerGroup for ConsumerGroup {
    fn parts(&self) -> GroupParts<'_> {
        GroupParts {
            name: &self.name,
            delays: &self.delays,
            dispatcher: &self.dispatcher,
        }
    }
}

runnable_through_its_own_methods!();

impl ConsumerGroup {
    pub(super) fn new(bus: KafkaBus, name: &str) -> Self {
        let delays = DEFAULT_RETRY_DELAYS.to_vec();
        let topics = GroupTopics::new(bus.topic_prefix(), name, &delays);
        let telemetry = broker::group_telemetry(bus.telemetry(), &topics.group_id);
        Self {
            dispatcher: Dispatcher::new(topics.group_id.as_str(), telemetry),
            name: name.into(),
            patterns: Vec::new(),
            delays,
            batch: None,
            commit_interval: DEFAULT_COMMIT_INTERVAL,
            protocol: GroupProtocol::from_environment(),
            session_timeout: None,
            fallen_back: Arc::default(),
            told_left_out: Arc::default(),
            topics,
            bus,
            health: GroupHealth::new(),
            live: Arc::default(),
            committed: Arc::default(),
        }
    }

    /// Builder: the events the group wants, as a topic-exchange pattern over
    /// `{aggregate_type}.{event_type}` (`Order.*`, `*.OrderPlaced`, `#`). Records of other
    /// events are committed without a span. Without any, the group receives every event.
    /// When every pattern names its aggregate type, the group reads those types' topics
    /// only; otherwise every topic of the bus's prefix.
    #[must_use]
    pub fn bind(mut self, pattern: impl Into<String>) -> Self {
        self.patterns.push(pattern.into());
        self
    }

    /// Builder: the waits before each redelivery of a failed record (default
    /// [`DEFAULT_RETRY_DELAYS`]); a record is delivered at most once more than there are
    /// delays, then dead-lettered. No delay: no retry.
    #[must_use]
    pub fn retry_delays(mut self, delays: impl IntoIterator<Item = Duration>) -> Self {
        self.delays = delays.into_iter().collect();
        self.topics = GroupTopics::new(self.bus.topic_prefix(), &self.name, &self.delays);
        self
    }

    /// Builder: hands up to `max` records that are ready at once to the handlers in one
    /// consume span (a new root with a link per record and `messaging.batch.message_count`);
    /// a failed record of a batch is retried alone.
    #[must_use]
    pub fn batch(mut self, max: usize) -> Self {
        self.batch = (max > 1).then_some(max);
        self
    }

    /// Builder: how often the offsets of settled records are committed (default
    /// [`DEFAULT_COMMIT_INTERVAL`]), in one request for every partition, and whenever
    /// partitions are taken away or the group stops. A record in hand at a commit is
    /// committed with the mark `eventsource:started` (a consumer that resumes there counts
    /// it as a redelivery). After a consumer dies, the records it settled since its last
    /// commit are handed over again, as first deliveries: a shorter interval re-handles
    /// fewer, at the cost of more requests to the group coordinator.
    #[must_use]
    pub fn commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Builder: how the group joins its group on the broker (default: the process's
    /// `EVENTSOURCE_KAFKA_GROUP_PROTOCOL`, else [`GroupProtocol::Consumer`], KIP-848; see
    /// [`GroupProtocol`] for what each does). A `group.protocol` given to the bus's
    /// [`with_setting`](KafkaBus::with_setting) wins.
    #[must_use]
    pub fn protocol(mut self, protocol: GroupProtocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Builder, **classic protocol**: how long the broker waits for a consumer's heartbeat
    /// before it hands its partitions to the group's other consumers (`session.timeout.ms`,
    /// default [`DEFAULT_SESSION_TIMEOUT`]; heartbeats are sent every tenth of it, at least
    /// every 3 s). This bounds how long a dead consumer's partitions wait: a consumer that
    /// stops gracefully leaves the group at once. Brokers refuse a timeout outside their
    /// `group.min.session.timeout.ms` (6 s by default) and `group.max.session.timeout.ms`.
    ///
    /// Under the consumer protocol liveness is the broker's: the group leaves this setting
    /// out (librdkafka would refuse the consumer) and says so once in a WARN line; the
    /// bound there is the broker's `group.consumer.session.timeout.ms` (45 s by default,
    /// within `group.consumer.min.session.timeout.ms` and `..max..`), or the group's own
    /// `consumer.session.timeout.ms`, which an operator sets with
    /// `kafka-configs.sh --alter --entity-type groups --entity-name {group_id}
    /// --add-config consumer.session.timeout.ms=...`.
    #[must_use]
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = Some(timeout);
        self
    }

    /// The group's id on the broker: `{prefix}.{group}`.
    #[must_use]
    pub fn group_id(&self) -> &str {
        &self.topics.group_id
    }

    /// The protocol the group joins with now: the one asked for (or set on the bus), or the
    /// classic one once the broker refused the consumer protocol.
    #[must_use]
    pub fn group_protocol(&self) -> GroupProtocol {
        protocol::effective(
            &self.bus.shared.settings,
            self.protocol,
            self.fallen_back.load(Ordering::Relaxed),
        )
    }

    /// The group's dead letters.
    #[must_use]
    pub fn dead_letters(&self) -> super::DeadLetters {
        super::DeadLetters::new(self.bus.clone(), self.topics.clone())
    }

    /// The aggregate types every pattern names, or `None` when some pattern takes any.
    pub(super) fn aggregate_types(&self) -> Option<Vec<String>> {
        if self.patterns.is_empty() {
            return None;
        }
        self.patterns
            .iter()
            .map(|p| {
                let first = p.split('.').next().unwrap_or_default();
                (first != "*" && first != "#").then(|| first.to_owned())
            })
            .collect()
    }

    /// Whether `event` belongs on `topic`, where the group found it: a topic of one
    /// aggregate type carries that type's events only (a retry, requeue or shared topic
    /// carries any).
    pub(super) fn routed_here(&self, topic: &str, event: &EventEnvelope) -> bool {
        let Topics::PerAggregateType = &self.bus.shared.topics else {
            return true;
        };
        let own = topic
            .strip_prefix(self.topics.group_id.as_str())
            .is_some_and(|rest| rest.starts_with('.'));
        if own {
            return true;
        }
        let shared = &self.bus.shared;
        shared
            .topics
            .is_topic_of(topic, &shared.prefix, event.aggregate_type())
    }

    /// Whether the group wants `event`.
    pub(super) fn wants(&self, event: &EventEnvelope) -> bool {
        let (aggregate_type, event_type) = (event.aggregate_type(), &*event.event_type);
        self.patterns.is_empty()
            || (self.patterns.iter()).any(|p| matches_event(p, aggregate_type, event_type))
    }

    /// Creates the group's topics and those of the aggregate types its patterns name
    /// (idempotent): from then on what is published is kept for the group, whether it runs
    /// or not (a group that never committed starts at the beginning of its topics).
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the cluster cannot be reached or refuses.
    pub async fn declare(&self) -> Result<(), BusError> {
        let mut topics = self.topics.all();
        match (&self.bus.shared.topics, self.aggregate_types()) {
            (Topics::One(name), _) => topics.push(name.clone()),
            (Topics::PerAggregateType, Some(types)) => {
                topics.extend(types.iter().map(|t| self.bus.topic_of(t)));
            }
            (Topics::PerAggregateType, None) => {}
        }
        self.bus.ensure_topics(topics).await
    }

    /// Consumes until `shutdown` completes: creates the topics, then reads the events'
    /// topics and the group's retry topics, each in a loop of its own. When the cluster
    /// cannot be reached it logs a warning and tries again, with backoff.
    ///
    /// On shutdown it stops taking records, lets the record being handled finish and be
    /// settled, commits, and leaves the group: records it had fetched but not started are
    /// handed to the next consumer as first deliveries. It returns within
    /// [`stop_timeout`](Self::stop_timeout) (default 10 s) of `shutdown` completing, whatever
    /// the handlers and the cluster do: a record not settled by then was never committed
    /// past, and comes again to the partition's next owner; the last commit, if still under
    /// way, goes on in the background.
    ///
    /// # Errors
    /// None so far: every failure is retried; the `Result` leaves room for giving up.
    pub async fn run<F>(&self, shutdown: F) -> Result<(), BusError>
    where
        F: Future + Send,
    {
        let (stop, stopped) = watch::channel(false);
        let mut loops = vec![self.keep_consuming(Source::Live, stopped.clone())];
        for (delay, topic) in self.topics.delayed() {
            let source = Source::Delayed { topic, delay };
            loops.push(self.keep_consuming(source, stopped.clone()));
        }
        let consume = async {
            futures_util::future::join_all(loops).await;
        };
        let consume = stop_within(
            &self.name,
            self.health.stop_timeout,
            shutdown,
            stop,
            consume,
        );
        let system = self.bus.telemetry().system;
        self.health
            .running(
                system,
                &self.name,
                consume,
                || self.lag(),
                || self.broker_view(),
            )
            .await;
        Ok(())
    }
}
