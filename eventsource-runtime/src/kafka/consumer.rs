//! A consumer group: the topics it reads, its handlers, and how each record is settled
//! (committed after every handler succeeded; a failure handed to a retry topic, then to the
//! dead letters).

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer as _};
use rdkafka::error::KafkaError;
use tokio::sync::watch;

use super::KafkaBus;
use super::error::unavailable;
use super::group_context::{GroupConsumer, GroupContext, STATISTICS_INTERVAL_MS};
use super::offsets::{Commits, Partitions, ResumePoints};
use super::protocol::{self, GroupProtocol};
use super::topology::{GroupTopics, Topics, matches_event, regex_escape};
use super::waiting::{gather, wait_until_due};
use super::{doubts, membership};
use crate::broker::group_health::GroupHealth;
use crate::broker::reconnect::{Sessions, reconnecting, stop_asked, stop_within};
use crate::broker::settings as broker;
use crate::broker::{BrokerGroup, GroupParts};
use crate::bus::{BusError, Dispatcher};
use crate::event::EventEnvelope;
use crate::telemetry::otel::log::{log_info, log_warn};
use crate::telemetry::values::Chain;

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
enum Source {
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

    /// One source's loop: sessions, again after each failure, until stopped.
    async fn keep_consuming(&self, source: Source, stopped: watch::Receiver<bool>) {
        let shutdown = pin!(stop_asked(stopped.clone()));
        let sessions = SourceSessions {
            group: self,
            source,
            stopped,
            handled: Partitions::default(),
        };
        reconnecting(&self.name, &self.health, shutdown, sessions).await;
    }

    /// A consumer for `source`, subscribed, joining with `protocol`.
    fn consumer(
        &self,
        source: &Source,
        protocol: GroupProtocol,
    ) -> Result<Arc<GroupConsumer>, BusError> {
        let mut config = rdkafka::ClientConfig::new();
        let group_id = match source {
            Source::Live => self.topics.group_id.clone(),
            Source::Delayed { topic, .. } => topic.clone(),
        };
        config
            .set("group.id", &group_id)
            .set("enable.auto.commit", "false")
            // Only settled records are stored (`commit`): the session's last commit must
            // not pass a record received and not settled (a retry waiting out its delay
            // when the group stops, a record whose retry could not be written).
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // The consumer's view of its group, for the group's health.
            .set("statistics.interval.ms", STATISTICS_INTERVAL_MS)
            .set("topic.metadata.refresh.interval.ms", "5000");
        if let Source::Delayed { delay, .. } = source {
            // A record waiting out its delay is not a stuck consumer.
            let interval = delay.saturating_add(Duration::from_secs(300)).as_millis();
            config.set("max.poll.interval.ms", interval.to_string());
        }
        self.bus.apply_settings(&mut config);
        let session_timeout = self.session_timeout.unwrap_or(DEFAULT_SESSION_TIMEOUT);
        let left_out = protocol::configure(&mut config, protocol, session_timeout);
        self.tell_left_out(protocol, &left_out);
        let context = GroupContext::new(
            &self.name,
            &group_id,
            protocol,
            self.bus.shared.last_error.clone(),
        );
        let consumer: GroupConsumer = config
            .create_with_context(context)
            .map_err(|e| self.bus.creation_failed(e))?;
        let prefix = regex_escape(self.bus.topic_prefix());
        let subscription: Vec<String> = match (source, &self.bus.shared.topics) {
            (Source::Delayed { topic, .. }, _) => vec![topic.clone()],
            (Source::Live, Topics::One(name)) => vec![name.clone()],
            (Source::Live, Topics::PerAggregateType) => match self.aggregate_types() {
                Some(types) => types.iter().map(|t| self.bus.topic_of(t)).collect(),
                // Every aggregate type's topic: one name after the prefix.
                None => vec![format!("^{prefix}\\.[A-Za-z0-9_-]+$")],
            },
        };
        let names: Vec<&str> = subscription.iter().map(String::as_str).collect();
        consumer.subscribe(&names).map_err(unavailable)?;
        log_info!(
            group = &*self.name,
            group_id = group_id.as_str(),
            "consuming"
        );
        let consumer = Arc::new(consumer);
        if matches!(source, Source::Live) {
            *self
                .live
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::downgrade(&consumer);
        }
        Ok(consumer)
    }

    /// One consumer's worth of consuming: `Ok` once stopped, the error that ended it
    /// otherwise.
    async fn session(
        &self,
        source: &Source,
        mut shutdown: Pin<&mut (impl Future<Output = ()> + Send)>,
        handled: &mut Partitions<Option<i64>>,
    ) -> Result<(), BusError> {
        self.declare().await?;
        let protocol = self.group_protocol();
        let mut closing = ClosedOffThread(Some(self.consumer(source, protocol)?));
        let consumer = closing.consumer();
        // A delayed source's consumer is a group of its own on the broker (`group.id` = its
        // topic): its consume spans name it.
        let delayed = match source {
            Source::Live => None,
            Source::Delayed { topic, .. } => Some(self.dispatcher.for_consumer_group(topic)),
        };
        let dispatcher = delayed.as_ref().unwrap_or(&self.dispatcher);
        if matches!(source, Source::Live) {
            self.health.connected();
        }
        let mut resumed = ResumePoints::default();
        let mut commits = Commits::new(self.commit_interval, matches!(source, Source::Live));
        // Made once: a restart asked for at any time after this is seen.
        let mut restart = pin!(self.health.restart_requested());
        // How many times in a row the group refused to count this consumer a member.
        let mut refused = 0_u32;
        let outcome = loop {
            let record = tokio::select! {
                biased;
                () = shutdown.as_mut() => break Ok(()),
                () = restart.as_mut(), if matches!(source, Source::Live) => {
                    break Err(self.health.restart_error());
                }
                // Polled before the next record: a commit due is sent before more work.
                () = commits.commit_due() => {
                    commits.commit(consumer.as_ref());
                    continue;
                }
                record = consumer.recv() => record,
            };
            let record = match record {
                Ok(record) => record,
                Err(error @ KafkaError::MessageConsumptionFatal(_)) => {
                    let fatal = consumer.client().fatal_error();
                    break Err(self.failed_for_good(fatal, protocol, error));
                }
                Err(error) => {
                    if doubts::loses_touch(&error) {
                        consumer.context().doubts().lost_touch();
                    }
                    log_warn!(group = &*self.name, error = %Chain(&error), "kafka consumer error");
                    continue;
                }
            };
            if let Err(error) = membership::confirm(consumer, &record).await {
                drop(record);
                if !self
                    .unconfirmed(&mut refused, &error, shutdown.as_mut())
                    .await
                {
                    break Ok(());
                }
                continue;
            }
            if refused > 0 {
                refused = 0;
                log_info!(
                    group = &*self.name,
                    "kafka consumer confirmed as a member of its group again"
                );
            }
            let settled = match source {
                Source::Live => match self.batch {
                    Some(max) => {
                        let batch = gather(consumer, record, max).await;
                        let mut redelivered = Vec::with_capacity(batch.len());
                        for record in &batch {
                            redelivered.push(
                                Self::redelivered(consumer, record, handled, &mut resumed).await,
                            );
                        }
                        let work = self.settle_batch(&batch, &redelivered);
                        commits.settle(consumer.as_ref(), &batch, work).await
                    }
                    None => {
                        let redelivered =
                            Self::redelivered(consumer, &record, handled, &mut resumed).await;
                        let work = self.settle(dispatcher, &record, redelivered);
                        let records = std::slice::from_ref(&record);
                        commits.settle(consumer.as_ref(), records, work).await
                    }
                },
                Source::Delayed { delay, .. } => {
                    if !wait_until_due(&record, *delay, shutdown.as_mut()).await {
                        break Ok(());
                    }
                    let work = self.settle(dispatcher, &record, false);
                    let records = std::slice::from_ref(&record);
                    commits.settle(consumer.as_ref(), records, work).await
                }
            };
            if let Err(error) = settled {
                break Err(error);
            }
        };
        // Whatever was settled is committed before the group is left; the consumer is
        // closed there too, off the runtime's threads.
        let last = closing.0.take();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(consumer) = last {
                let _ = consumer.commit_consumer_state(CommitMode::Sync);
                consumer.unsubscribe();
            }
        })
        .await;
        outcome
    }
}

impl ConsumerGroup {
    /// The group did not confirm this consumer as a member (see [`membership`]): said
    /// once, then waits before the next record, longer each time in a row (0.1 s up to
    /// 2 s); `false` when `shutdown` completed first.
    async fn unconfirmed(
        &self,
        refused: &mut u32,
        error: &KafkaError,
        shutdown: Pin<&mut (impl Future<Output = ()> + Send)>,
    ) -> bool {
        if *refused == 0 {
            log_warn!(
                group = &*self.name,
                error = %Chain(error),
                "kafka consumer lost touch with its group and is not confirmed as a member; \
                 it hands nothing over until it is (the group may have given its partitions \
                 to another member)"
            );
        }
        let wait = Duration::from_millis(100).saturating_mul(1 << (*refused).min(4));
        *refused = refused.saturating_add(1);
        tokio::select! {
            biased;
            () = shutdown => false,
            () = tokio::time::sleep(wait.min(Duration::from_secs(2))) => true,
        }
    }
}

/// A session's consumer, closed on a blocking thread when the session is dropped before
/// its end (its stop cut short by the stop timeout): librdkafka's close, in the drop of its
/// last handle, leaves the group and waits for the cluster, which must hold neither a thread
/// of the runtime nor the group's stop.
struct ClosedOffThread(Option<Arc<GroupConsumer>>);

impl ClosedOffThread {
    fn consumer(&self) -> &Arc<GroupConsumer> {
        self.0.as_ref().expect("taken only when dropped")
    }
}

impl Drop for ClosedOffThread {
    fn drop(&mut self) {
        let consumer = self.0.take();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            drop(runtime.spawn_blocking(move || drop(consumer)));
        }
    }
}

/// The sessions of one source's loop, and the offsets they handled: a record received again
/// after a reconnection is a redelivery.
struct SourceSessions<'g> {
    group: &'g ConsumerGroup,
    source: Source,
    stopped: watch::Receiver<bool>,
    handled: Partitions<Option<i64>>,
}

impl Sessions for SourceSessions<'_> {
    async fn session<S: Future<Output = ()> + Send>(
        &mut self,
        shutdown: Pin<&mut S>,
    ) -> Result<(), BusError> {
        // Stopped before it connects: no session.
        if *self.stopped.borrow() {
            return Ok(());
        }
        self.group
            .session(&self.source, shutdown, &mut self.handled)
            .await
    }
}
