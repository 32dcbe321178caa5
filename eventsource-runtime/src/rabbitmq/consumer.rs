//! A consumer group: its queue, its handlers, and how each delivery is settled (ack after
//! every handler succeeded; a failure retried after a delay, then dead-lettered).

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection};

use super::codec;
use super::error::unavailable;
use super::topology::{self, GroupQueues};
use super::{RabbitMqBus, confirming_channel, publish_confirmed, routing_key};
use crate::broker::group_health::GroupHealth;
use crate::broker::reconnect::{Sessions, keep_running};
use crate::broker::settings as broker;
use crate::broker::{BrokerGroup, GroupParts, runnable_through_its_own_methods};
use crate::bus::wire::{self, DeliveryState, Settle};
use crate::bus::{BusError, BusMessage, Dispatcher};
use crate::telemetry::attributes::{
    MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY, MESSAGING_RABBITMQ_MESSAGE_DELIVERY_TAG,
};
use crate::telemetry::otel::log::{log_info, log_warn};
use crate::telemetry::values::Chain;

/// How many unacknowledged messages the broker hands a group's consumer at once, by
/// default.
pub const DEFAULT_PREFETCH: u16 = 16;

/// How long a graceful stop keeps handling the messages the broker had already handed over
/// (after the message in hand), by default: see [`ConsumerGroup::drain_on_stop`].
pub const DEFAULT_DRAIN_ON_STOP: Duration = Duration::from_secs(5);

/// The waits before the redeliveries of a failed message, by default: 1 s, 5 s, 30 s
/// (four deliveries in all, then the dead letters).
pub const DEFAULT_RETRY_DELAYS: [Duration; 3] = broker::DEFAULT_RETRY_DELAYS;

/// A consumer group on a [`RabbitMqBus`]: one durable queue, the handlers that consume it,
/// and its retry and dead-letter queues (see the [module](super) for the topology).
///
/// Every message is handed to each interested handler in turn (a
/// [`Dispatcher`]: consume and handle spans, bus metrics) and acknowledged only when every
/// one succeeded. When one fails (or panics), the message goes to the retry queue of its
/// attempt with the failed handlers' names, comes back after the delay, and is handed to
/// those handlers only; after the last allowed delivery it goes to the
/// [dead letters](Self::dead_letters) with the error. A message the broker hands over again
/// because its consumer died unacknowledged counts as a redelivery. Handlers should be
/// idempotent: delivery is at least once.
///
/// The builder methods configure the group before it is shared; clones share the handlers.
#[derive(Clone)]
pub struct ConsumerGroup {
    pub(super) bus: RabbitMqBus,
    pub(super) name: Arc<str>,
    patterns: Vec<String>,
    prefetch: u16,
    drain: Duration,
    delays: Vec<Duration>,
    pub(super) queues: GroupQueues,
    dispatcher: Dispatcher,
    pub(super) health: GroupHealth,
}

impl std::fmt::Debug for ConsumerGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerGroup")
            .field("name", &self.name)
            .field("queue", &self.queues.live)
            .field("patterns", &self.patterns)
            .field("prefetch", &self.prefetch)
            .field("drain_on_stop", &self.drain)
            .field("retry_delays", &self.delays)
            .field("handlers", &self.dispatcher.handler_names())
            .finish()
    }
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
    pub(super) fn new(bus: RabbitMqBus, name: &str) -> Self {
        let delays = DEFAULT_RETRY_DELAYS.to_vec();
        let queues = GroupQueues::new(bus.exchange(), name, &delays);
        // RabbitMQ has no consumer groups; the conventions say nothing of
        // `messaging.consumer.group.name` for it: the queue the group consumes stands in.
        let telemetry = broker::group_telemetry(bus.telemetry(), &queues.live);
        Self {
            dispatcher: Dispatcher::new(queues.live.as_str(), telemetry),
            name: name.into(),
            patterns: Vec::new(),
            prefetch: DEFAULT_PREFETCH,
            drain: DEFAULT_DRAIN_ON_STOP,
            delays,
            queues,
            bus,
            health: GroupHealth::new(),
        }
    }

    /// Builder: binds the group's queue with a topic pattern over the routing keys
    /// `{aggregate_type}.{event_type}` (`Order.*`, `*.OrderPlaced`, `#`). Without any,
    /// the group receives every event (`#`).
    #[must_use]
    pub fn bind(mut self, pattern: impl Into<String>) -> Self {
        self.patterns.push(pattern.into());
        self
    }

    /// Builder: how many unacknowledged messages the broker hands over at once (default
    /// [`DEFAULT_PREFETCH`], at least 1). Messages are handled one at a time, in order.
    #[must_use]
    pub fn prefetch(mut self, messages: u16) -> Self {
        self.prefetch = messages.max(1);
        self
    }

    /// Builder: how long a graceful stop keeps handling the messages the broker had already
    /// handed over when it was asked to stop (default [`DEFAULT_DRAIN_ON_STOP`]), counted
    /// from the end of the message in hand. Those are then first deliveries, as they are for
    /// any consumer; what is not started by then goes back to the queue, and RabbitMQ hands
    /// it to the next consumer as `redelivered` (a linked root, attempt 2, in the trace).
    /// `Duration::ZERO` hands every one back at once. The whole stop is bounded by
    /// [`stop_timeout`](Self::stop_timeout), which cuts the window short.
    #[must_use]
    pub fn drain_on_stop(mut self, window: Duration) -> Self {
        self.drain = window;
        self
    }

    /// Builder: the waits before each redelivery of a failed message (default
    /// [`DEFAULT_RETRY_DELAYS`]); a message is delivered at most once more than there are
    /// delays, then dead-lettered. No delay: no retry.
    #[must_use]
    pub fn retry_delays(mut self, delays: impl IntoIterator<Item = Duration>) -> Self {
        self.delays = delays.into_iter().collect();
        self.queues = GroupQueues::new(self.bus.exchange(), &self.name, &self.delays);
        self
    }

    /// The queue the group consumes.
    #[must_use]
    pub fn queue(&self) -> &str {
        &self.queues.live
    }

    /// The group's dead letters.
    #[must_use]
    pub fn dead_letters(&self) -> super::DeadLetters {
        super::DeadLetters::new(self.bus.clone(), self.queues.clone())
    }

    /// The patterns the queue is bound with.
    fn patterns(&self) -> Vec<String> {
        if self.patterns.is_empty() {
            vec!["#".to_owned()]
        } else {
            self.patterns.clone()
        }
    }

    /// Declares the group's queues and bindings (idempotent): from then on the broker keeps
    /// every matching message for the group, whether it runs or not.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the broker cannot be reached or refuses (a queue
    /// declared before with other arguments, say).
    pub async fn declare(&self) -> Result<(), BusError> {
        let connection = self.bus.connect().await?;
        let channel = connection.create_channel().await.map_err(unavailable)?;
        let declared = topology::declare_group(
            &channel,
            self.bus.exchange(),
            &self.queues,
            &self.patterns(),
        )
        .await;
        let _ = connection.close(200, "declared".into()).await;
        declared
    }

    /// Consumes until `shutdown` completes: declares the topology, then handles each
    /// delivery. When the connection is lost it logs a warning and connects again, with
    /// backoff.
    ///
    /// On shutdown it cancels its consumer at once (the broker hands over nothing more), lets
    /// the message being handled finish and be settled, then handles the messages the broker
    /// had already handed over, for up to [`drain_on_stop`](Self::drain_on_stop), and
    /// closes its connection: what was not started by then goes back to the queue. It
    /// returns within [`stop_timeout`](Self::stop_timeout) (default 10 s) of `shutdown`
    /// completing, whatever the handlers and the broker do: a message not settled by then
    /// is left unacknowledged, and RabbitMQ delivers it again once the connection is gone.
    /// Asked to stop while it connects, it stops at once.
    ///
    /// Why it does not hand those back at once: RabbitMQ (3.10, classic and quorum queues)
    /// marks every message it takes back `redelivered`, whether the consumer cancelled,
    /// closed its channel or nacked it (a quorum queue also counts it in
    /// `x-delivery-count`), so the next consumer could not tell it from a message whose
    /// handler died, and its trace would read as a retry.
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

    /// A connection, its channel and the consumer of the group's queue tagged `tag`, the
    /// topology declared.
    async fn start(
        &self,
        tag: &ShortString,
    ) -> Result<(Connection, Channel, lapin::Consumer), BusError> {
        let connection = self.bus.connect().await?;
        let channel = confirming_channel(&connection).await?;
        topology::declare_group(
            &channel,
            self.bus.exchange(),
            &self.queues,
            &self.patterns(),
        )
        .await?;
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await
            .map_err(unavailable)?;
        let consumer = channel
            .basic_consume(
                self.queues.live.as_str().into(),
                tag.clone(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        Ok((connection, channel, consumer))
    }

    /// After a shutdown, once the consumer is cancelled: handles the deliveries the broker
    /// had already handed over (the cancelled consumer's stream ends after them), while
    /// the drain window lasts.
    async fn drain(&self, channel: &Channel, consumer: &mut lapin::Consumer) {
        let until = tokio::time::Instant::now() + self.drain;
        while tokio::time::Instant::now() < until {
            let delivery = match tokio::time::timeout_at(until, consumer.next()).await {
                Ok(Some(Ok(delivery))) => delivery,
                // The stream ended (cancelled), failed, or the window is over.
                _ => return,
            };
            if let Err(error) = self.settle(channel, delivery).await {
                self.stop_failed(&error);
                return;
            }
        }
    }

    /// A message could not be settled while stopping: the connection is closed anyway, and
    /// the broker hands what was not acknowledged to the next consumer.
    fn stop_failed(&self, error: &BusError) {
        log_warn!(
            group = &*self.name,
            error = %Chain(error),
            "a message could not be settled while stopping; the broker delivers it again"
        );
    }

    /// Hands one delivery to the handlers, then acknowledges it, or sends it to its retry
    /// queue or the dead letters (confirmed first, so nothing is lost in between).
    async fn settle(&self, channel: &Channel, delivery: Delivery) -> Result<(), BusError> {
        let (trace, mut state) = codec::read_headers(delivery.properties.headers().as_ref());
        if delivery.redelivered {
            // Its consumer died before settling it: this is one more delivery.
            state = state.redelivered();
        }
        let event = match wire::decode(&delivery.data) {
            Ok(event) => event,
            Err(error) => return self.undecodable(channel, &delivery, &error).await,
        };
        let key = routing_key(&event);
        let destination = format!("{}:{key}:{}", self.bus.exchange(), self.queues.live);
        let mut message = BusMessage::new(destination, event).with_headers(trace);
        if self.dispatcher.records_consume() {
            message = message
                .with_attribute(MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY, key)
                .with_attribute(
                    MESSAGING_RABBITMQ_MESSAGE_DELIVERY_TAG,
                    delivery.delivery_tag,
                );
        }
        let failures = {
            let _in_hand = self.health.handling(&message.event);
            self.dispatcher.receive(&message, &state).await
        };
        if let Some(failure) = failures.first() {
            self.health.status().error(failure);
        }
        match state.after(&failures, self.max_deliveries()) {
            Settle::Ack => {}
            Settle::Retry(next) => match self.queues.retry_after(state.attempt) {
                Some(queue) => self.forward(channel, queue, &message, &next).await?,
                // No retry queue (no delay configured) means no retry: the dead letters.
                None => self.dead_letter(channel, &message, &next).await?,
            },
            Settle::DeadLetter(next) => self.dead_letter(channel, &message, &next).await?,
        }
        delivery
            .ack(BasicAckOptions::default())
            .await
            .map(drop)
            .map_err(unavailable)
    }

    /// Moves `message` to the dead letters with `state`, then warns and counts it.
    async fn dead_letter(
        &self,
        channel: &Channel,
        message: &BusMessage,
        state: &DeliveryState,
    ) -> Result<(), BusError> {
        self.forward(channel, &self.queues.dead, message, state)
            .await?;
        crate::bus::dead_lettered(super::SYSTEM, &self.name, message, state);
        Ok(())
    }

    /// Sends a copy of `message` with `state` to `queue` (through the default exchange),
    /// confirmed.
    async fn forward(
        &self,
        channel: &Channel,
        queue: &str,
        message: &BusMessage,
        state: &DeliveryState,
    ) -> Result<(), BusError> {
        let timeout = self.bus.shared.confirm_timeout;
        let key = codec::short(message, "the queue name", queue.to_owned())?;
        publish_confirmed(channel, "", key, message, state, timeout).await
    }

    /// A message whose body is not a stored event: straight to the dead letters, as it
    /// came, with the reason.
    async fn undecodable(
        &self,
        channel: &Channel,
        delivery: &Delivery,
        error: &wire::Undecodable,
    ) -> Result<(), BusError> {
        log_warn!(
            group = &*self.name,
            delivery_tag = delivery.delivery_tag,
            error = %Chain(error),
            "undecodable message dead-lettered"
        );
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(
            wire::HEADER_ERROR.into(),
            lapin::types::AMQPValue::LongString(Chain(error).to_string().into()),
        );
        let properties = delivery.properties.clone().with_headers(headers);
        let confirm = channel
            .basic_publish(
                "".into(),
                self.queues.dead.as_str().into(),
                lapin::options::BasicPublishOptions::default(),
                &delivery.data,
                properties,
            )
            .await
            .map_err(unavailable)?;
        confirm.await.map_err(unavailable)?;
        delivery
            .ack(BasicAckOptions::default())
            .await
            .map(drop)
            .map_err(unavailable)
    }
}

impl Sessions for &ConsumerGroup {
    /// One connection's worth of consuming: `Ok` on shutdown, the error that ended it
    /// otherwise.
    async fn session<S: Future<Output = ()> + Send>(
        &mut self,
        mut shutdown: Pin<&mut S>,
    ) -> Result<(), BusError> {
        let tag: ShortString = format!("{}-{}", self.name, uuid::Uuid::now_v7()).into();
        // Asked to stop while connecting (a broker slow to answer): nothing was handed
        // over yet, nothing to settle, no reason to wait for the connection.
        let (connection, channel, mut consumer) = tokio::select! {
            biased;
            () = shutdown.as_mut() => return Ok(()),
            started = self.start(&tag) => started?,
        };
        log_info!(
            group = &*self.name,
            queue = self.queues.live.as_str(),
            "consuming"
        );
        self.health.connected();
        loop {
            let delivery = tokio::select! {
                biased;
                () = shutdown.as_mut() => {
                    cancel(&channel, tag).await;
                    self.drain(&channel, &mut consumer).await;
                    close(&connection, &channel).await;
                    return Ok(());
                }
                () = self.health.restart_requested() => {
                    cancel(&channel, tag).await;
                    close(&connection, &channel).await;
                    return Err(self.health.restart_error());
                }
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => delivery,
                    Some(Err(error)) => return Err(unavailable(error)),
                    None => return Err(BusError::unavailable("the broker cancelled the consumer")),
                },
            };
            let mut in_hand = pin!(self.settle(&channel, delivery));
            tokio::select! {
                biased;
                settled = in_hand.as_mut() => settled?,
                () = shutdown.as_mut() => {
                    // Cancelled while the message is in its handler, before its ack frees a
                    // place in the prefetch: the broker hands over nothing more.
                    let ((), settled) = tokio::join!(cancel(&channel, tag), in_hand);
                    if let Err(error) = settled {
                        self.stop_failed(&error);
                    } else {
                        self.drain(&channel, &mut consumer).await;
                    }
                    close(&connection, &channel).await;
                    return Ok(());
                }
            }
        }
    }
}

/// Cancels the consumer: the broker hands it nothing more (the consumer's stream ends after
/// the deliveries already sent).
async fn cancel(channel: &Channel, tag: ShortString) {
    let _ = channel
        .basic_cancel(tag, BasicCancelOptions::default())
        .await;
}

/// Closes the channel (what the broker had handed over and nobody started goes back to the
/// queue, marked `redelivered`) and the connection.
async fn close(connection: &Connection, channel: &Channel) {
    let _ = channel.close(200, "shutdown".into()).await;
    let _ = connection.close(200, "shutdown".into()).await;
}
