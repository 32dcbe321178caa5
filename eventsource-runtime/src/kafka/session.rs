//! A consumer group's sessions: one librdkafka consumer per source (the events' topics, each
//! retry topic), made, subscribed and read until stopped or failed, each record settled,
//! then committed and closed off the runtime's threads; again after each failure.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer as _};
use rdkafka::error::KafkaError;
use tokio::sync::watch;

use super::consumer::{ConsumerGroup, DEFAULT_SESSION_TIMEOUT, Source};
use super::doubts::{self, Doubts};
use super::error::unavailable;
use super::group_context::{GroupConsumer, GroupContext, STATISTICS_INTERVAL_MS};
use super::membership;
use super::offsets::{Commits, Partitions, ResumePoints};
use super::protocol::{self, GroupProtocol};
use super::topology::{Topics, regex_escape};
use super::waiting::{gather, wait_until_due};
use crate::broker::reconnect::{Backoff, Sessions, reconnecting, stop_asked};
use crate::bus::BusError;
use crate::telemetry::otel::log::{log_info, log_warn};
use crate::telemetry::values::Chain;

impl ConsumerGroup {
    /// One source's loop: sessions, again after each failure, until stopped.
    pub(super) async fn keep_consuming(&self, source: Source, stopped: watch::Receiver<bool>) {
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
            Doubts::quiet_limit(self.commit_interval, session_timeout),
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
        // While the group refuses to count this consumer a member: the wait before it asks
        // again (0.1 s, doubling up to 2 s).
        let mut refused: Option<Backoff> = None;
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
                let backoff = refused.get_or_insert_with(|| {
                    log_warn!(
                        group = &*self.name,
                        error = %Chain(&error),
                        "kafka consumer lost touch with its group and is not confirmed as a \
                         member; it hands nothing over until it is (the group may have given \
                         its partitions to another member)"
                    );
                    Backoff::new(Duration::from_millis(100), Duration::from_secs(2))
                });
                if !backoff.sleep(shutdown.as_mut()).await {
                    break Ok(());
                }
                continue;
            }
            if refused.take().is_some() {
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
                        let work = pin!(self.settle_batch(&batch, &redelivered));
                        commits.settle(consumer.as_ref(), &batch, work).await
                    }
                    None => {
                        let redelivered =
                            Self::redelivered(consumer, &record, handled, &mut resumed).await;
                        // Pinned where it is made: handed on by reference, not moved.
                        let work = pin!(self.settle(dispatcher, &record, redelivered));
                        let records = std::slice::from_ref(&record);
                        commits.settle(consumer.as_ref(), records, work).await
                    }
                },
                Source::Delayed { delay, .. } => {
                    if !wait_until_due(&record, *delay, shutdown.as_mut()).await {
                        break Ok(());
                    }
                    let work = pin!(self.settle(dispatcher, &record, false));
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
