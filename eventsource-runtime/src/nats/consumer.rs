//! A consumer group: its durable consumers, its handlers, and how each delivery is settled
//! (ack after every handler succeeded; a failure retried after a delay, then
//! dead-lettered).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::Consumer;
use async_nats::jetstream::consumer::pull::{Batch, Config as PullConfig};
use async_nats::jetstream::{Context, Message};

use super::NatsBus;
use super::error::unavailable;
use super::inbox::{Inbox, KeepAlive, PULL_EXPIRES, reply};
use super::topology::{self, GroupNames};
use crate::broker::group_health::GroupHealth;
use crate::broker::reconnect::{Sessions, keep_running};
use crate::broker::settings as broker;
use crate::broker::{BrokerGroup, GroupParts, runnable_through_its_own_methods};
use crate::bus::{BusError, Dispatcher};
use crate::telemetry::otel::log::log_info;

/// How many unacknowledged messages JetStream hands a group's consumer at once, by default
/// (`max_ack_pending`, and the size of each pull).
pub const DEFAULT_PREFETCH: u16 = 16;

/// The waits before the redeliveries of a failed message, by default: 1 s, 5 s, 30 s
/// (four deliveries in all, then the dead letters).
pub const DEFAULT_RETRY_DELAYS: [Duration; 3] = broker::DEFAULT_RETRY_DELAYS;

/// How long JetStream waits without a word from a group's consumer, by default, before it
/// delivers the consumer's unacknowledged messages to another (the consumer is presumed
/// dead): see [`ConsumerGroup::ack_wait`].
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(5);

/// How long a graceful stop keeps handling the messages its open pull request brings in
/// (after the message in hand), by default: see [`ConsumerGroup::drain_on_stop`].
pub const DEFAULT_DRAIN_ON_STOP: Duration = Duration::from_secs(5);

/// A consumer group on a [`NatsBus`]: one durable pull consumer of the events, one of its
/// retry copies, the handlers that consume them, and its dead letters (see the
/// [module](super) for the topology).
///
/// Every message is handed to each interested handler in turn (a [`Dispatcher`]: consume
/// and handle spans, bus metrics) and acknowledged only when every one succeeded. When one
/// fails (or panics), a copy naming the failed handlers goes to the group's retry subject
/// (stored and acknowledged by JetStream before the original is acknowledged), is held
/// back until its delay has passed since it was stored, and is handed to those handlers
/// only; after the last allowed delivery it goes to the [dead letters](Self::dead_letters)
/// with the error. A message JetStream delivers again because its consumer did not
/// acknowledge it in time (it died, or stopped) counts as a redelivery. Handlers should be
/// idempotent: delivery is at least once.
///
/// The builder methods configure the group before it is shared; clones share the handlers.
#[derive(Clone)]
pub struct ConsumerGroup {
    pub(super) bus: NatsBus,
    pub(super) name: Arc<str>,
    pub(super) patterns: Vec<String>,
    pub(super) prefetch: u16,
    pub(super) ack_wait: Duration,
    pub(super) drain: Duration,
    pub(super) batch: Option<u16>,
    pub(super) names: GroupNames,
    pub(super) dispatcher: Dispatcher,
    /// The dispatcher's handlers, for the retry copies: their consume spans name the retry
    /// consumer, which delivers them.
    pub(super) retry_dispatcher: Dispatcher,
    pub(super) health: GroupHealth,
}

impl std::fmt::Debug for ConsumerGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerGroup")
            .field("name", &self.name)
            .field("consumer", &self.names.durable)
            .field("patterns", &self.patterns)
            .field("prefetch", &self.prefetch)
            .field("ack_wait", &self.ack_wait)
            .field("drain_on_stop", &self.drain)
            .field("batch", &self.batch)
            .field("retry_delays", &self.names.delays)
            .field("handlers", &self.dispatcher.handler_names())
            .finish()
    }
}

/// Where a delivery comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// The live stream: a first delivery, or JetStream's redelivery of it.
    Live,
    /// The group's retry copies: the state is in the headers.
    Retry,
}

impl BrokerGroup for ConsumerGroup {
    fn parts(&self) -> GroupParts<'_> {
        GroupParts {
            name: &self.name,
            delays: &self.names.delays,
            dispatcher: &self.dispatcher,
        }
    }
}

runnable_through_its_own_methods!();

impl ConsumerGroup {
    pub(super) fn new(bus: NatsBus, name: &str) -> Self {
        let names = GroupNames::new(bus.subject_prefix(), name, &DEFAULT_RETRY_DELAYS);
        let telemetry = broker::group_telemetry(bus.telemetry(), &names.durable);
        let destination = format!("{}.>", bus.subject_prefix());
        let dispatcher = Dispatcher::new(destination, telemetry);
        Self {
            retry_dispatcher: dispatcher.for_consumer_group(&names.retry_durable),
            dispatcher,
            name: name.into(),
            patterns: Vec::new(),
            prefetch: DEFAULT_PREFETCH,
            ack_wait: DEFAULT_ACK_WAIT,
            drain: DEFAULT_DRAIN_ON_STOP,
            batch: None,
            names,
            bus,
            health: GroupHealth::new(),
        }
    }

    /// Builder: the group consumes the events whose `{aggregate_type}.{event_type}` match
    /// this NATS subject pattern (`Order.*`, `*.OrderPlaced`, `>`); the consumer's filter is
    /// `{prefix}.{pattern}`. Without any, the group receives every event. JetStream 2.9
    /// filters a consumer by one subject: with several patterns the consumer takes every
    /// event and the group acknowledges, unhandled and without spans, those no pattern
    /// matches.
    #[must_use]
    pub fn bind(mut self, pattern: impl Into<String>) -> Self {
        self.patterns.push(pattern.into());
        self
    }

    /// Builder: how many unacknowledged messages JetStream hands over at once
    /// (`max_ack_pending`; default [`DEFAULT_PREFETCH`], at least 1). Messages are handled
    /// one at a time, in order.
    #[must_use]
    pub fn prefetch(mut self, messages: u16) -> Self {
        self.prefetch = messages.max(1);
        self
    }

    /// Builder: how long JetStream waits without a word from this group's consumer
    /// before it delivers the consumer's unacknowledged messages to another (default
    /// [`DEFAULT_ACK_WAIT`]).
    ///
    /// It bounds recovery: the messages a consumer that died had pulled (up to the
    /// [`prefetch`](Self::prefetch)) go to the others this long after it stopped
    /// answering; until then the group's other consumers get nothing, as JetStream hands
    /// out no more than `max_ack_pending` at once. It does not bound the handlers: while a
    /// message is handled, or waits its turn in this process, the group tells JetStream
    /// every third of this that it is still at work on it (`+WPI`), so a handler may take
    /// longer. Raise it when the connection to the server may be lost for longer without
    /// the consumer being gone (a message is then handled twice).
    #[must_use]
    pub fn ack_wait(mut self, wait: Duration) -> Self {
        self.ack_wait = wait;
        self
    }

    /// Builder: how long a graceful stop keeps handling the messages its open pull request
    /// brings in (default [`DEFAULT_DRAIN_ON_STOP`]), counted from the end of the message in
    /// hand. Those are then first deliveries, as they are for any consumer; what is not
    /// started by then is given back (`-NAK`), and JetStream hands it to the next consumer
    /// with `delivered` = 2 (a linked root, attempt 2, in the trace). `Duration::ZERO` gives
    /// every one back at once. The whole stop is bounded by
    /// [`stop_timeout`](Self::stop_timeout), which cuts the window short.
    #[must_use]
    pub fn drain_on_stop(mut self, window: Duration) -> Self {
        self.drain = window;
        self
    }

    /// Builder: batch mode. Up to `max_messages` live messages that arrive together
    /// (pulled at once, or within a few milliseconds of the first) are handed to the
    /// handlers in one consume span, [`Dispatcher::deliver_batch`]: a new root with a link
    /// per message and `messaging.batch.message_count`. Each message is still settled by
    /// its own failures (retried or dead-lettered alone); retries are delivered one by one.
    /// The prefetch is raised to `max_messages` if it is lower.
    #[must_use]
    pub fn batch(mut self, max_messages: u16) -> Self {
        let max_messages = max_messages.max(1);
        self.batch = Some(max_messages);
        self.prefetch = self.prefetch.max(max_messages);
        self
    }

    /// Builder: the waits before each redelivery of a failed message (default
    /// [`DEFAULT_RETRY_DELAYS`]); a message is delivered at most once more than there are
    /// delays, then dead-lettered. No delay: no retry.
    #[must_use]
    pub fn retry_delays(mut self, delays: impl IntoIterator<Item = Duration>) -> Self {
        let delays: Vec<Duration> = delays.into_iter().collect();
        self.names = GroupNames::new(self.bus.subject_prefix(), &self.name, &delays);
        self
    }

    /// The name of the group's durable consumer on the bus's stream (`{prefix}-{group}`).
    #[must_use]
    pub fn consumer_name(&self) -> &str {
        &self.names.durable
    }

    /// The subject of the group's retry copies (`{prefix}-retry.{group}`, on the bus's
    /// `{stream}_RETRY` stream).
    #[must_use]
    pub fn retry_subject(&self) -> &str {
        &self.names.retry_subject
    }

    /// The group's dead letters.
    #[must_use]
    pub fn dead_letters(&self) -> super::DeadLetters {
        super::DeadLetters::new(self.bus.clone(), self.names.clone())
    }

    /// The live consumer's filter: `{prefix}.{pattern}` for one pattern, every event
    /// otherwise.
    pub(super) fn filter(&self) -> String {
        let prefix = self.bus.subject_prefix();
        match self.patterns.as_slice() {
            [pattern] => format!("{prefix}.{pattern}"),
            _ => format!("{prefix}.>"),
        }
    }

    /// Whether `subject` is one of the group's (always, with fewer than two patterns: the
    /// server filtered).
    pub(super) fn wants(&self, subject: &str) -> bool {
        if self.patterns.len() < 2 {
            return true;
        }
        let prefix = self.bus.subject_prefix();
        let Some(rest) = subject
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('.'))
        else {
            return false;
        };
        self.patterns.iter().any(|pattern| matches(pattern, rest))
    }

    /// Declares the streams and the group's two durable consumers (created, or updated to
    /// this configuration): from then on JetStream keeps every matching message for the
    /// group, whether it runs or not.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the server cannot be reached or refuses.
    pub async fn declare(&self) -> Result<(), BusError> {
        let context = self.bus.context().await?;
        self.consumers(&context).await.map(drop)
    }

    /// The streams and the group's consumers, declared: (live, retry).
    async fn consumers(
        &self,
        context: &Context,
    ) -> Result<(Consumer<PullConfig>, Consumer<PullConfig>), BusError> {
        let streams = &self.bus.shared.streams;
        streams.declare(context).await?;
        let live_stream = context
            .get_stream(&streams.live)
            .await
            .map_err(unavailable)?;
        let live = topology::consumer_config(
            &self.names.durable,
            self.filter(),
            self.ack_wait,
            self.prefetch,
        );
        let live = topology::declare_consumer(&live_stream, live).await?;
        let retry_stream = context
            .get_stream(&streams.retry)
            .await
            .map_err(unavailable)?;
        let retry = topology::consumer_config(
            &self.names.retry_durable,
            self.names.retry_subject.clone(),
            self.ack_wait,
            self.prefetch,
        );
        let retry = topology::declare_consumer(&retry_stream, retry).await?;
        Ok((live, retry))
    }

    /// Consumes until `shutdown` completes: declares the topology, then handles each
    /// delivery. When the connection or a consumer is lost it logs a warning and starts
    /// again, with backoff.
    ///
    /// On shutdown it stops pulling, lets the message being handled finish and be settled,
    /// then handles the messages its open pull request still brings in (it ends within two
    /// seconds of being sent), for up to [`drain_on_stop`](Self::drain_on_stop); it gives
    /// back (`-NAK`, two seconds' delay) what it did not start by then, and the retry
    /// copies pulled meanwhile (they carry their own attempt). It returns within
    /// [`stop_timeout`](Self::stop_timeout) (default 10 s) of `shutdown` completing, whatever
    /// the handlers and the server do: a message not settled by then is left
    /// unacknowledged, and JetStream delivers it again once its ack wait is over.
    ///
    /// Why it does not give those back at once: JetStream counts every delivery of a
    /// message (`delivered`), and a message given back is delivered again, whether it was
    /// naked (with or without a delay) or its ack wait expired (with or without
    /// `+WPI` before): the next consumer would see `delivered` = 2, as for a message whose
    /// handler died, and its trace would read as a retry (seen on server 2.9).
    ///
    /// # Errors
    /// None so far: every failure is retried; the `Result` leaves room for giving up.
    pub async fn run<F>(&self, shutdown: F) -> Result<(), BusError>
    where
        F: Future + Send,
    {
        let system = self.bus.telemetry().system;
        let lag = || self.lag();
        let describe = || self.broker_view();
        keep_running(
            system,
            &self.name,
            &self.health,
            shutdown,
            self,
            lag,
            describe,
        )
        .await;
        Ok(())
    }

    /// A pull request for up to a prefetch of messages, open for [`PULL_EXPIRES`].
    async fn pull(&self, consumer: &Consumer<PullConfig>) -> Result<Batch, BusError> {
        consumer
            .batch()
            .max_messages(usize::from(self.prefetch))
            .expires(PULL_EXPIRES)
            .messages()
            .await
            .map_err(unavailable)
    }
}

/// How long batch mode waits for more messages after the first of a batch.
const BATCH_LINGER: Duration = Duration::from_millis(20);

/// `first` and the messages of `inbox` that follow it within [`BATCH_LINGER`] of each
/// other, up to `max` in all. A message that arrives with an error ends the batch (the pull
/// reports it next).
async fn gather(inbox: &mut Inbox, first: Message, max: usize) -> Vec<Message> {
    let mut messages = vec![first];
    while messages.len() < max {
        match tokio::time::timeout(BATCH_LINGER, inbox.next()).await {
            Ok(Some(Ok(message))) => messages.push(message),
            _ => break,
        }
    }
    messages
}

impl Sessions for &ConsumerGroup {
    /// One session's worth of consuming: `Ok` on shutdown, the error that ended it
    /// otherwise.
    async fn session<S: Future<Output = ()> + Send>(
        &mut self,
        mut shutdown: Pin<&mut S>,
    ) -> Result<(), BusError> {
        // What happens once a session, or once a pull, is boxed: the client's futures are
        // large, and a debug build's frame holds each one awaited in place (the group must
        // run in `testing::conformance::broker::footprint::GROUP_STACK`).
        let context = Box::pin(self.bus.context()).await?;
        let (live_consumer, retry_consumer) = Box::pin(self.consumers(&context)).await?;
        let mut live = Inbox::new(Box::pin(self.pull(&live_consumer)).await?);
        let mut retry = Inbox::new(Box::pin(self.pull(&retry_consumer)).await?);
        let keep_alive = KeepAlive::new(context.client(), self.ack_wait);
        log_info!(
            group = &*self.name,
            consumer = self.names.durable.as_str(),
            "consuming"
        );
        self.health.connected();
        loop {
            tokio::select! {
                biased;
                () = shutdown.as_mut() => {
                    Box::pin(async {
                        tokio::join!(self.drain(&context, &keep_alive, live), retry.give_back())
                    })
                    .await;
                    return Ok(());
                }
                () = self.health.restart_requested() => {
                    tokio::join!(live.give_back(), retry.give_back());
                    return Err(self.health.restart_error());
                }
                next = live.next() => match next {
                    Some(Ok(message)) => {
                        self.settle_live(&context, &keep_alive, message, &mut [&mut live, &mut retry])
                            .await?;
                    }
                    Some(Err(error)) => return Err(BusError::Unavailable(error)),
                    None => live = Inbox::new(Box::pin(self.pull(&live_consumer)).await?),
                },
                next = retry.next() => match next {
                    Some(Ok(message)) => {
                        let in_hand = [reply(&message)];
                        let settling = self.settle(&context, Source::Retry, message);
                        Box::pin(keep_alive.during(settling, &in_hand, &mut [&mut live, &mut retry]))
                            .await?;
                    }
                    Some(Err(error)) => return Err(BusError::Unavailable(error)),
                    None => retry = Inbox::new(Box::pin(self.pull(&retry_consumer)).await?),
                },
            }
        }
    }
}

impl ConsumerGroup {
    /// Settles a live message, with those that follow it in batch mode, kept alive
    /// meanwhile with everything waiting in `inboxes` (the first of which it comes from).
    pub(super) async fn settle_live(
        &self,
        context: &Context,
        keep_alive: &KeepAlive,
        first: Message,
        inboxes: &mut [&mut Inbox],
    ) -> Result<(), BusError> {
        match (self.batch, inboxes.first_mut()) {
            (Some(max), Some(live)) => {
                let messages = gather(live, first, usize::from(max)).await;
                let in_hand: Vec<_> = messages.iter().map(reply).collect();
                let settling = self.settle_batch(context, messages);
                keep_alive.during(settling, &in_hand, inboxes).await
            }
            _ => {
                let in_hand = [reply(&first)];
                let settling = self.settle(context, Source::Live, first);
                keep_alive.during(settling, &in_hand, inboxes).await
            }
        }
    }
}

/// Whether a NATS subject pattern (`*`: one token, `>`: one or more trailing tokens)
/// matches `subject`.
fn matches(pattern: &str, subject: &str) -> bool {
    let mut tokens = subject.split('.');
    for expected in pattern.split('.') {
        match (expected, tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (expected, Some(token)) if expected == token => {}
            _ => return false,
        }
    }
    tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn patterns_match_as_nats_subjects_do() {
        assert!(matches("Order.*", "Order.OrderPlaced"));
        assert!(matches("*.OrderPlaced", "Order.OrderPlaced"));
        assert!(matches(">", "Order.OrderPlaced"));
        assert!(matches("Order.>", "Order.OrderPlaced"));
        assert!(!matches("Order.*", "Cart.OrderPlaced"));
        assert!(!matches("Order", "Order.OrderPlaced"));
        assert!(!matches("Order.OrderPlaced.x", "Order.OrderPlaced"));
    }
}
