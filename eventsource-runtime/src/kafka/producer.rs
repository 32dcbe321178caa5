//! The bus's producer: made on first use, forgotten after a delivery that failed (so that
//! the next publish asks the broker for a fresh producer id and epoch), and the send of one
//! record with the wait for its delivery report.

use std::sync::{Arc, PoisonError};

use rdkafka::ClientConfig;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tokio::time::{Duration, Instant};
use uuid::Uuid;

use super::KafkaBus;
use super::codec;
use super::context::LastError;
use super::error::{unavailable, undelivered};
use crate::bus::wire::DeliveryState;
use crate::bus::{BusError, BusMessage};

/// The bus's producer, if made yet, and how many were made before it.
#[derive(Default)]
pub(super) struct ProducerSlot {
    generation: u64,
    current: Option<Arc<Client>>,
}

/// A producer handed out by [`KafkaBus::producer`]: the client and which one it was, so
/// that a failure forgets that producer only (not one made since by another publish).
#[derive(Clone)]
pub(super) struct Producer {
    generation: u64,
    client: Arc<Client>,
}

impl std::ops::Deref for Producer {
    type Target = FutureProducer<LastError>;

    fn deref(&self) -> &FutureProducer<LastError> {
        self.client
            .0
            .as_ref()
            .expect("a client holds its producer until dropped")
    }
}

/// The one handle on a librdkafka producer. Dropping a producer blocks (it purges, flushes
/// for up to half a second and waits for librdkafka's threads): the last clone's drop
/// hands that to a thread of its own rather than holding up an async task's thread.
pub(super) struct Client(Option<FutureProducer<LastError>>);

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(producer) = self.0.take() {
            // No thread to be had: the failed spawn dropped it here, the blocking way.
            let _ = std::thread::Builder::new()
                .name("eventsource-kafka-drop".to_owned())
                .spawn(move || drop(producer));
        }
    }
}

impl KafkaBus {
    /// The producer, created if it was not (librdkafka connects in the background).
    pub(super) fn producer(&self) -> Result<Producer, BusError> {
        let mut slot = self
            .shared
            .producer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = slot.current.as_ref() {
            return Ok(Producer {
                generation: slot.generation,
                client: Arc::clone(client),
            });
        }
        let timeout = self.shared.delivery_timeout.as_millis().to_string();
        let mut config = ClientConfig::new();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", &timeout)
            .set("linger.ms", "1");
        self.apply_settings(&mut config);
        // Its polling thread serves the main queue, where librdkafka reports why it cannot
        // connect: the bus's `LastError` keeps that.
        let created: FutureProducer<LastError> = config
            .create_with_context(self.shared.last_error.clone())
            .map_err(|e| self.creation_failed(e))?;
        let client = Arc::new(Client(Some(created)));
        slot.generation += 1;
        slot.current = Some(Arc::clone(&client));
        Ok(Producer {
            generation: slot.generation,
            client,
        })
    }

    /// Forgets `producer` if it is still the bus's, so that the next publish creates
    /// another (with a producer id of its own); the last handle's drop purges what it still
    /// held.
    ///
    /// After a record timed out, librdkafka's idempotent producer bumps its epoch by itself
    /// (legal in Kafka, KIP-360) and goes on with that epoch. Some Kafka-API brokers never
    /// issued it and fail on it (tansu 0.6, the broker CI ran before Apache Kafka, panicked,
    /// and its storage stopped answering anything until it was restarted): a new producer
    /// asks the broker for a fresh id and epoch instead, which costs one request. So a producer is forgotten after any delivery that failed or was not
    /// confirmed in time, never reused.
    pub(super) fn reset(&self, producer: &Producer) {
        let forgotten = {
            let mut slot = self
                .shared
                .producer
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if slot.generation == producer.generation {
                slot.current.take()
            } else {
                None
            }
        };
        drop(forgotten);
    }

    /// Sends `message` to `topic` with `state`; the delivery report is awaited by
    /// [`delivered`].
    pub(super) fn send(
        &self,
        producer: &Producer,
        topic: &str,
        message: &BusMessage,
        state: &DeliveryState,
    ) -> Result<DeliveryFuture, BusError> {
        let body = codec::body(message)?;
        let record = FutureRecord::to(topic)
            .key(message.event.aggregate_id())
            .payload(&body)
            .headers(codec::headers(message, state));
        producer
            .send_result(record)
            .map_err(|(error, _)| unavailable(error))
    }

    /// Waits until `deadline` for the delivery report of a record `producer` sent; a
    /// producer whose record was not delivered (or not confirmed) is [reset](Self::reset).
    pub(super) async fn delivered(
        &self,
        producer: &Producer,
        delivery: DeliveryFuture,
        message_id: Uuid,
        deadline: Instant,
    ) -> Result<(), BusError> {
        let outcome = match tokio::time::timeout_at(deadline, delivery).await {
            Err(_) => Err(BusError::Unconfirmed {
                message_id,
                waited: self.shared.delivery_timeout,
            }),
            Ok(Err(_canceled)) => Err(BusError::unavailable("the producer was closed")),
            Ok(Ok(Err((error, _)))) => Err(undelivered(error, message_id)),
            Ok(Ok(Ok(_))) => Ok(()),
        };
        if let Err(BusError::Unavailable(_) | BusError::Unconfirmed { .. }) = &outcome {
            self.reset(producer);
        }
        outcome
    }

    /// When a report is overdue: the delivery timeout and a second.
    pub(super) fn deadline(&self) -> Instant {
        Instant::now() + self.shared.delivery_timeout + Duration::from_secs(1)
    }

    /// Sends a copy of `message` with `state` to `topic` and waits for its delivery.
    pub(super) async fn forward(
        &self,
        topic: &str,
        message: &BusMessage,
        state: &DeliveryState,
    ) -> Result<(), BusError> {
        let producer = self.producer()?;
        let delivery = self.send(&producer, topic, message, state)?;
        self.delivered(&producer, delivery, message.message_id, self.deadline())
            .await
    }
}
