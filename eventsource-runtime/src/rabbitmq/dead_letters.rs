//! A consumer group's dead letters, from Rust: list, count, move back, purge.

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, QueuePurgeOptions};
use lapin::types::FieldTable;

use super::codec;
use super::error::unavailable;
use super::topology::{GroupQueues, declare_queue};
use super::{RabbitMqBus, confirming_channel, publish_confirmed};
use crate::bus::wire::{self, DeliveryState};
use crate::bus::{BusError, BusMessage, DeadLetter, DeadLetterEntry, UndecodableLetter};

/// The dead letters of one [`ConsumerGroup`](super::ConsumerGroup): messages a handler
/// failed on at every allowed delivery, each with the handlers that failed and the last
/// error.
///
/// ```no_run
/// # async fn run(group: eventsource_runtime::rabbitmq::ConsumerGroup) -> Result<(), eventsource_runtime::bus::BusError> {
/// let dead = group.dead_letters();
/// for entry in dead.list(10).await? {
///     if let Some(letter) = entry.as_failed() {
///         println!("{} failed {} times: {}", letter.handler, letter.attempts, letter.error);
///     }
/// }
/// // The bug is fixed: back to the group's queue, for the handlers that failed.
/// let moved = dead.requeue().await?;
/// assert_eq!(dead.count().await?, 0);
/// # let _ = moved; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DeadLetters {
    bus: RabbitMqBus,
    queues: GroupQueues,
}

impl DeadLetters {
    pub(super) fn new(bus: RabbitMqBus, queues: GroupQueues) -> Self {
        Self { bus, queues }
    }

    /// The dead-letter queue's name.
    #[must_use]
    pub fn queue(&self) -> &str {
        &self.queues.dead
    }

    /// How many messages are dead-lettered.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the broker cannot be reached.
    pub async fn count(&self) -> Result<u32, BusError> {
        let connection = self.bus.connect().await?;
        let channel = connection.create_channel().await.map_err(unavailable)?;
        declare_queue(&channel, &self.queues.dead, FieldTable::default()).await?;
        let queue = channel
            .queue_declare(
                self.queues.dead.as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..lapin::options::QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        let _ = connection.close(200, "counted".into()).await;
        Ok(queue.message_count())
    }

    /// The first `max` dead letters, oldest first, left in the queue: the messages a handler
    /// failed on, and those whose body is not a stored event, with the reason.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the broker cannot be reached.
    pub async fn list(&self, max: usize) -> Result<Vec<DeadLetterEntry>, BusError> {
        let connection = self.bus.connect().await?;
        let channel = connection.create_channel().await.map_err(unavailable)?;
        declare_queue(&channel, &self.queues.dead, FieldTable::default()).await?;
        let mut letters = Vec::new();
        let mut last_tag = None;
        while letters.len() < max {
            let Some(got) = channel
                .basic_get(self.queues.dead.as_str().into(), BasicGetOptions::default())
                .await
                .map_err(unavailable)?
            else {
                break;
            };
            let delivery = got.delivery;
            last_tag = Some(delivery.delivery_tag);
            let (trace, state) = codec::read_headers(delivery.properties.headers().as_ref());
            let entry = match wire::decode(&delivery.data) {
                Ok(event) => DeadLetterEntry::Failed(DeadLetter {
                    message: BusMessage::new(self.queues.live.as_str(), event).with_headers(trace),
                    handler: state.handlers.join(", "),
                    attempts: state.attempt,
                    error: state.error.unwrap_or_default(),
                }),
                Err(error) => DeadLetterEntry::Undecodable(UndecodableLetter::new(
                    delivery
                        .properties
                        .message_id()
                        .as_ref()
                        .map(|id| id.to_string()),
                    delivery.data,
                    state
                        .error
                        .unwrap_or_else(|| crate::telemetry::values::Chain(&error).to_string()),
                )),
            };
            letters.push(entry);
        }
        if let Some(tag) = last_tag {
            // Back where they were, in order.
            let options = BasicNackOptions {
                multiple: true,
                requeue: true,
            };
            channel
                .basic_nack(tag, options)
                .await
                .map_err(unavailable)?;
        }
        let _ = connection.close(200, "listed".into()).await;
        Ok(letters)
    }

    /// Moves every dead letter back to the group's queue, for the handlers that failed on
    /// it, with a fresh budget of deliveries; returns how many moved. Each is confirmed in
    /// the group's queue before it leaves the dead letters.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the broker cannot be reached; the messages moved
    /// before the failure stay moved.
    pub async fn requeue(&self) -> Result<usize, BusError> {
        let connection = self.bus.connect().await?;
        let channel = confirming_channel(&connection).await?;
        declare_queue(&channel, &self.queues.dead, FieldTable::default()).await?;
        let timeout = self.bus.shared.confirm_timeout;
        let mut moved = 0;
        while let Some(got) = channel
            .basic_get(self.queues.dead.as_str().into(), BasicGetOptions::default())
            .await
            .map_err(unavailable)?
        {
            let delivery = got.delivery;
            let (trace, state) = codec::read_headers(delivery.properties.headers().as_ref());
            let Ok(event) = wire::decode(&delivery.data) else {
                // Not a stored event: it stays a dead letter.
                let options = BasicNackOptions {
                    multiple: false,
                    requeue: true,
                };
                channel
                    .basic_nack(delivery.delivery_tag, options)
                    .await
                    .map_err(unavailable)?;
                break;
            };
            let message = BusMessage::new(self.queues.live.as_str(), event).with_headers(trace);
            let fresh = DeliveryState {
                attempt: 1,
                handlers: state.handlers,
                error: None,
            };
            let key = codec::short(&message, "the queue name", self.queues.live.clone())?;
            publish_confirmed(&channel, "", key, &message, &fresh, timeout).await?;
            delivery
                .ack(BasicAckOptions::default())
                .await
                .map_err(unavailable)?;
            moved += 1;
        }
        let _ = connection.close(200, "requeued".into()).await;
        Ok(moved)
    }

    /// Deletes every dead letter; returns how many there were.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the broker cannot be reached.
    pub async fn purge(&self) -> Result<u32, BusError> {
        let connection = self.bus.connect().await?;
        let channel = connection.create_channel().await.map_err(unavailable)?;
        declare_queue(&channel, &self.queues.dead, FieldTable::default()).await?;
        let purged = channel
            .queue_purge(
                self.queues.dead.as_str().into(),
                QueuePurgeOptions::default(),
            )
            .await
            .map_err(unavailable)?;
        let _ = connection.close(200, "purged".into()).await;
        Ok(purged)
    }
}

/// AMQP's `NOT_FOUND` reply code: a passive declare of a queue that does not exist.
const NOT_FOUND: u16 = 404;

#[async_trait::async_trait]
impl crate::bus::DeadLetterQueue for DeadLetters {
    fn system(&self) -> &'static str {
        super::SYSTEM
    }

    fn location(&self) -> String {
        format!("queue {}", self.queues.dead)
    }

    /// Whether the group's queue exists (a passive declare: nothing is created).
    async fn group_exists(&self) -> Result<bool, BusError> {
        let connection = self.bus.connect().await?;
        let channel = connection.create_channel().await.map_err(unavailable)?;
        let options = lapin::options::QueueDeclareOptions {
            passive: true,
            ..lapin::options::QueueDeclareOptions::default()
        };
        let declared = channel
            .queue_declare(
                self.queues.live.as_str().into(),
                options,
                FieldTable::default(),
            )
            .await;
        let _ = connection.close(200, "asked".into()).await;
        match declared {
            Ok(_) => Ok(true),
            Err(error)
                if matches!(error.kind(), lapin::ErrorKind::ProtocolError(amqp)
                    if amqp.get_id() == NOT_FOUND) =>
            {
                Ok(false)
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn count(&self) -> Result<u64, BusError> {
        DeadLetters::count(self).await.map(u64::from)
    }

    async fn list(&self, max: usize) -> Result<Vec<DeadLetterEntry>, BusError> {
        DeadLetters::list(self, max).await
    }

    async fn requeue(&self) -> Result<u64, BusError> {
        DeadLetters::requeue(self).await.map(|moved| moved as u64)
    }

    async fn purge(&self) -> Result<u64, BusError> {
        DeadLetters::purge(self).await.map(u64::from)
    }
}
