//! How a consumer group settles what it received: each record (or batch) handed to the
//! handlers as a first delivery or a redelivery, then committed, after a copy went to a
//! retry topic or the dead letters when a handler failed.

use std::sync::Arc;

use rdkafka::message::{BorrowedMessage, Message as _};

use super::codec;
use super::consumer::ConsumerGroup;
use super::error::unavailable;
use super::group_context::GroupConsumer;
use super::offsets::{PartitionOf, Partitions, ResumePoints};
use crate::broker::BrokerGroup;
use crate::bus::instrument::{Skipped, skipped as skipped_message};
use crate::bus::wire::{self, DeliveryState, Settle};
use crate::bus::{BusError, BusMessage, Dispatcher, HandlerError, HandlerFailure};
use crate::telemetry::attributes::{
    MESSAGING_DESTINATION_PARTITION_ID, MESSAGING_KAFKA_MESSAGE_KEY, MESSAGING_KAFKA_OFFSET,
};
use crate::telemetry::otel::log::log_warn;
use crate::telemetry::values::Chain;

impl ConsumerGroup {
    /// Whether a live record is a redelivery: this process handled its offset before, or
    /// the group's commit says a consumer started it and never finished. Asked before the
    /// record is started, so that the mark read back is never this consumer's own.
    pub(super) async fn redelivered(
        consumer: &Arc<GroupConsumer>,
        record: &BorrowedMessage<'_>,
        handled: &mut Partitions<Option<i64>>,
        resumed: &mut ResumePoints,
    ) -> bool {
        let partition = PartitionOf::record(record);
        let offset = record.offset();
        let last = handled.slot(partition);
        let seen = last.is_some_and(|last| offset <= last);
        *last = Some(offset);
        let started = resumed.started_at(consumer, partition, offset).await;
        seen || started
    }

    /// Reads `record`, hands it to the handlers through `dispatcher` (the group's, or that
    /// of the retry or requeue topic's own consumer group) as a redelivery if
    /// `redelivered`, and forwards it if they failed. The caller commits past it.
    pub(super) async fn settle(
        &self,
        dispatcher: &Dispatcher,
        record: &BorrowedMessage<'_>,
        redelivered: bool,
    ) -> Result<(), BusError> {
        let Some((message, mut state)) = self.message(dispatcher, record).await? else {
            return Ok(());
        };
        if redelivered {
            state = state.redelivered();
        }
        let failures = {
            let _in_hand = self.health.handling(&message.event);
            dispatcher.receive(&message, &state).await
        };
        if let Some(failure) = failures.first() {
            self.health.status().error(failure);
        }
        self.after(&message, &state, &failures).await
    }

    /// Several live records in one consume span (`redelivered`: which of them are
    /// redeliveries, each handled alone with its own span); each failed one settled alone.
    /// The caller commits past them.
    pub(super) async fn settle_batch(
        &self,
        records: &[BorrowedMessage<'_>],
        redelivered: &[bool],
    ) -> Result<(), BusError> {
        let mut messages = Vec::with_capacity(records.len());
        for (record, redelivered) in records.iter().zip(redelivered) {
            if *redelivered {
                // A redelivery keeps its own span: linked, with its attempt.
                self.settle(&self.dispatcher, record, true).await?;
            } else if let Some((message, _)) = self.message(&self.dispatcher, record).await? {
                messages.push(message);
            }
        }
        let failures = {
            let _in_hand = messages.first().map(|m| self.health.handling(&m.event));
            self.dispatcher.deliver_batch(&messages).await
        };
        if let Some(failure) = failures.first() {
            self.health.status().error(failure);
        }
        for message in &messages {
            let own: Vec<HandlerFailure> = failures
                .iter()
                .filter(|f| f.message_id == message.message_id)
                .map(copy_failure)
                .collect();
            self.after(message, &DeliveryState::first(), &own).await?;
        }
        Ok(())
    }

    /// The message a record carries and its delivery state, or `None` when there is nothing
    /// to hand over: an event the group does not bind, or whose aggregate type is not its
    /// topic's (skipped, counted and logged), or not a stored event at all (dead-lettered
    /// with the reason). The transport's attributes are made only when `dispatcher` would
    /// record the message's consume span.
    pub(super) async fn message(
        &self,
        dispatcher: &Dispatcher,
        record: &BorrowedMessage<'_>,
    ) -> Result<Option<(BusMessage, DeliveryState)>, BusError> {
        let body = record.payload().unwrap_or_default();
        let event = match wire::decode(body) {
            Ok(event) => event,
            Err(error) => {
                self.undecodable(record, &error).await?;
                return Ok(None);
            }
        };
        // Read once: each read of a record's topic measures and checks its C string.
        let topic = record.topic();
        let skipped = if !self.routed_here(topic, &event) {
            Some(Skipped::Misrouted)
        } else if !self.wants(&event) {
            Some(Skipped::NotBound)
        } else {
            None
        };
        if let Some(why) = skipped {
            let aggregate_type = event.aggregate_type();
            skipped_message(
                super::SYSTEM,
                &self.name,
                topic,
                aggregate_type,
                &event.event_type,
                why,
            );
            return Ok(None);
        }
        let (trace, state) = codec::read(record);
        let mut message = BusMessage::new(topic, event).with_headers(trace);
        if dispatcher.records_consume() {
            message = message
                .with_attribute(
                    MESSAGING_DESTINATION_PARTITION_ID,
                    record.partition().to_string(),
                )
                .with_attribute(MESSAGING_KAFKA_OFFSET, record.offset());
            if let Some(key) = record.key().and_then(|k| std::str::from_utf8(k).ok()) {
                message = message.with_attribute(MESSAGING_KAFKA_MESSAGE_KEY, key);
            }
        }
        Ok(Some((message, state)))
    }

    /// Forwards a message whose handlers failed, as [`DeliveryState::after`] says.
    pub(super) async fn after(
        &self,
        message: &BusMessage,
        state: &DeliveryState,
        failures: &[HandlerFailure],
    ) -> Result<(), BusError> {
        match state.after(failures, self.max_deliveries()) {
            Settle::Ack => Ok(()),
            Settle::Retry(next) => match self.topics.retry_after(state.attempt) {
                Some(topic) => self.bus.forward(topic, message, &next).await,
                // No retry topic (no delay configured) means no retry: the dead letters.
                None => self.dead_letter(message, &next).await,
            },
            Settle::DeadLetter(next) => self.dead_letter(message, &next).await,
        }
    }

    /// Moves `message` to the dead letters with `state`, then warns and counts it.
    async fn dead_letter(
        &self,
        message: &BusMessage,
        state: &DeliveryState,
    ) -> Result<(), BusError> {
        self.bus.forward(&self.topics.dead, message, state).await?;
        crate::bus::dead_lettered(super::SYSTEM, &self.name, message, state);
        Ok(())
    }

    /// A record whose value is not a stored event: to the dead letters as it came, with the
    /// reason.
    pub(super) async fn undecodable(
        &self,
        record: &BorrowedMessage<'_>,
        error: &wire::Undecodable,
    ) -> Result<(), BusError> {
        let reason = Chain(error).to_string();
        log_warn!(
            group = &*self.name,
            topic = record.topic(),
            partition = record.partition(),
            offset = record.offset(),
            error = reason.as_str(),
            "undecodable record dead-lettered"
        );
        let mut headers: Vec<(&str, &[u8])> = codec::header_pairs(record);
        headers.retain(|(key, _)| *key != wire::HEADER_ERROR);
        headers.push((wire::HEADER_ERROR, reason.as_bytes()));
        let headers = codec::owned_headers(headers);
        let producer = self.bus.producer()?;
        let mut copy = rdkafka::producer::FutureRecord::to(&self.topics.dead)
            .payload(record.payload().unwrap_or_default())
            .headers(headers);
        if let Some(key) = record.key() {
            copy = copy.key(key);
        }
        let delivery = producer
            .send_result(copy)
            .map_err(|(error, _)| unavailable(error))?;
        let id = wire::read_message_id(codec::header_pairs(record)).unwrap_or_default();
        let deadline = self.bus.deadline();
        self.bus.delivered(&producer, delivery, id, deadline).await
    }
}

/// A failure's copy (the error as its text), for settling one message of a batch.
pub(super) fn copy_failure(failure: &HandlerFailure) -> HandlerFailure {
    HandlerFailure {
        handler: failure.handler.clone(),
        message_id: failure.message_id,
        event_type: failure.event_type.clone(),
        error: if failure.is_unknown_handler() {
            HandlerError::new(crate::bus::UnknownHandler::new(failure.handler.as_str()))
        } else {
            HandlerError::new(Chain(&failure.error).to_string())
        },
    }
}
