//! How a consumer group settles what it received: each message (or batch) handed to the
//! handlers, then acknowledged, after a copy went to the retry subject or the dead letters
//! when a handler failed.

use std::time::Duration;

use async_nats::jetstream::{AckKind, Context, Message};

use super::codec;
use super::consumer::{ConsumerGroup, Source};
use super::error::unavailable;
use super::inbox::{Inbox, KeepAlive};
use super::{publish_copy, subject};
use crate::broker::BrokerGroup;
use crate::bus::instrument::{Skipped, skipped};
use crate::bus::wire::{self, DeliveryState, Settle};
use crate::bus::{BusError, BusMessage, HandlerFailure};
use crate::telemetry::otel::log::log_warn;
use crate::telemetry::values::Chain;

impl ConsumerGroup {
    /// Hands one delivery to the handlers, then acknowledges it, or sends a copy to the
    /// retry subject or the dead letters (acknowledged by JetStream first, so nothing is
    /// lost in between).
    pub(super) async fn settle(
        &self,
        context: &Context,
        source: Source,
        delivery: Message,
    ) -> Result<(), BusError> {
        let Some((delivery, message, state)) = self.prepare(context, source, delivery).await?
        else {
            return Ok(());
        };
        let dispatcher = match source {
            Source::Live => &self.dispatcher,
            Source::Retry => &self.retry_dispatcher,
        };
        let failures = {
            let _in_hand = (source == Source::Live).then(|| self.health.handling(&message.event));
            dispatcher.receive(&message, &state).await
        };
        if let Some(failure) = failures.first() {
            self.health.status().error(failure);
        }
        self.finish(context, &delivery, &message, &state, &failures)
            .await
    }

    /// Hands several live deliveries to the handlers in one consume span
    /// ([`Dispatcher::deliver_batch`]), then settles each as [`settle`](Self::settle) does,
    /// by its own failures.
    pub(super) async fn settle_batch(
        &self,
        context: &Context,
        deliveries: Vec<Message>,
    ) -> Result<(), BusError> {
        let mut prepared = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            if let Some(ready) = self.prepare(context, Source::Live, delivery).await? {
                prepared.push(ready);
            }
        }
        let messages: Vec<BusMessage> = prepared.iter().map(|(_, m, _)| m.clone()).collect();
        let mut failures = {
            let _in_hand = messages.first().map(|m| self.health.handling(&m.event));
            self.dispatcher.deliver_batch(&messages).await
        };
        if let Some(failure) = failures.first() {
            self.health.status().error(failure);
        }
        for (delivery, message, state) in &prepared {
            let (own, others): (Vec<_>, Vec<_>) = failures
                .into_iter()
                .partition(|f| f.message_id == message.message_id);
            failures = others;
            self.finish(context, delivery, message, state, &own).await?;
        }
        Ok(())
    }

    /// A delivery ready for the handlers: its message and delivery state. `None` when it
    /// was settled already: not one of the group's subjects (acknowledged), a retry copy
    /// not due yet (given back until it is), an undecodable body (dead-lettered).
    pub(super) async fn prepare(
        &self,
        context: &Context,
        source: Source,
        delivery: Message,
    ) -> Result<Option<(Message, BusMessage, DeliveryState)>, BusError> {
        let (trace, mut state) = codec::read_headers(delivery.headers.as_ref());
        let (delivered, published) = match delivery.info() {
            Ok(info) => (info.delivered, info.published.unix_timestamp_nanos()),
            Err(_) => (1, 0),
        };
        match source {
            Source::Live => {
                if !self.wants(delivery.subject.as_str()) {
                    self.skip(&delivery, Skipped::NotBound);
                    return ack(&delivery).await.map(|()| None);
                }
                if delivered > 1 {
                    // Not acknowledged in time (its consumer died or stopped): this is one
                    // more delivery, for every handler.
                    let delivered = u32::try_from(delivered).unwrap_or(u32::MAX);
                    state.attempt = state.attempt.saturating_add(1).max(delivered);
                }
            }
            Source::Retry => {
                // Held back until its delay has passed since it was stored.
                let delay = self.names.delay_before(state.attempt);
                let delay = i128::try_from(delay.as_nanos()).unwrap_or(i128::MAX);
                let due = published.saturating_add(delay);
                let now = chrono::Utc::now()
                    .timestamp_nanos_opt()
                    .map_or(0, i128::from);
                if now < due {
                    let wait = u64::try_from(due - now).unwrap_or(u64::MAX);
                    let wait = Some(Duration::from_nanos(wait));
                    return nak(&delivery, wait).await.map(|()| None);
                }
            }
        }
        let event = match wire::decode(&delivery.payload) {
            Ok(event) => event,
            Err(error) => {
                return self
                    .undecodable(context, &delivery, &error)
                    .await
                    .map(|()| None);
            }
        };
        if matches!(source, Source::Live)
            && subject(self.bus.subject_prefix(), &event) != delivery.subject.as_str()
        {
            // Published on another event's subject: skipped, as Kafka skips a record on
            // another aggregate type's topic.
            skipped(
                super::SYSTEM,
                &self.name,
                delivery.subject.as_str(),
                event.aggregate_type(),
                &event.event_type,
                Skipped::Misrouted,
            );
            return ack(&delivery).await.map(|()| None);
        }
        // Named by the subject it arrived on (a retry copy's is the group's retry subject),
        // not by its body.
        let message = BusMessage::new(delivery.subject.as_str(), event).with_headers(trace);
        Ok(Some((delivery, message, state)))
    }

    /// Counts and logs a live delivery settled without its handlers (its body unread: the
    /// subject names its event).
    fn skip(&self, delivery: &Message, why: Skipped) {
        let subject = delivery.subject.as_str();
        let mut names = subject
            .strip_prefix(self.bus.subject_prefix())
            .unwrap_or(subject)
            .trim_start_matches('.')
            .splitn(2, '.');
        let aggregate_type = names.next().unwrap_or_default();
        let event_type = names.next().unwrap_or_default();
        skipped(
            super::SYSTEM,
            &self.name,
            subject,
            aggregate_type,
            event_type,
            why,
        );
    }

    /// Settles a delivery its handlers ended with `failures`: acknowledged, or a copy to the
    /// retry subject or the dead letters first.
    pub(super) async fn finish(
        &self,
        context: &Context,
        delivery: &Message,
        message: &BusMessage,
        state: &DeliveryState,
        failures: &[HandlerFailure],
    ) -> Result<(), BusError> {
        match state.after(failures, self.max_deliveries()) {
            Settle::Ack => {}
            Settle::Retry(next) if !self.names.delays.is_empty() => {
                let subject = &self.names.retry_subject;
                self.forward(context, subject, message, &next).await?;
            }
            Settle::Retry(next) | Settle::DeadLetter(next) => {
                let subject = &self.names.dead_subject;
                self.forward(context, subject, message, &next).await?;
                crate::bus::dead_lettered(super::SYSTEM, &self.name, message, &next);
            }
        }
        ack(delivery).await
    }

    /// Sends a copy of `message` with `state` to `subject`, acknowledged by JetStream.
    pub(super) async fn forward(
        &self,
        context: &Context,
        subject: &str,
        message: &BusMessage,
        state: &DeliveryState,
    ) -> Result<(), BusError> {
        publish_copy(&self.bus, context, subject, message, state).await
    }

    /// A message whose body is not a stored event: straight to the dead letters, as it
    /// came, with the reason.
    pub(super) async fn undecodable(
        &self,
        context: &Context,
        delivery: &Message,
        error: &wire::Undecodable,
    ) -> Result<(), BusError> {
        log_warn!(
            group = &*self.name,
            subject = delivery.subject.as_str(),
            error = %Chain(error),
            "undecodable message dead-lettered"
        );
        let mut headers = delivery.headers.clone().unwrap_or_default();
        headers.insert(wire::HEADER_ERROR, Chain(error).to_string().as_str());
        // With the original's `Nats-Msg-Id`, if any: the same message dead-lettered twice
        // within the duplicate window (its acknowledgement was lost) is kept once.
        let timeout = self.bus.shared.ack_timeout;
        let ack_future = context
            .publish_with_headers(
                self.names.dead_subject.clone(),
                headers,
                delivery.payload.clone(),
            )
            .await
            .map_err(unavailable)?;
        tokio::time::timeout(timeout, ack_future.into_future())
            .await
            .map_err(|_| {
                BusError::unavailable("the dead-letter copy was not acknowledged in time")
            })?
            .map_err(unavailable)?;
        ack(delivery).await
    }

    /// After a shutdown: handles the live messages waiting in `live` and those its open
    /// pull request brings in, while the drain window lasts, then gives back the rest.
    pub(super) async fn drain(&self, context: &Context, keep_alive: &KeepAlive, mut live: Inbox) {
        let until = tokio::time::Instant::now() + self.drain;
        while tokio::time::Instant::now() < until {
            let message = match tokio::time::timeout_at(until, live.next()).await {
                Ok(Some(Ok(message))) => message,
                // The window is over: give back what is still coming.
                Err(_) => break,
                // The pull request ended (or failed): nothing more comes.
                Ok(_) => return,
            };
            let settled = self
                .settle_live(context, keep_alive, message, &mut [&mut live])
                .await;
            if let Err(error) = settled {
                // JetStream delivers what was not acknowledged again after its ack wait.
                log_warn!(
                    group = &*self.name,
                    error = %Chain(&error),
                    "a message could not be settled while stopping; JetStream delivers it again"
                );
                return;
            }
        }
        live.give_back().await;
    }
}

/// Acknowledges `delivery` and waits for JetStream to confirm it.
pub(super) async fn ack(delivery: &Message) -> Result<(), BusError> {
    delivery.double_ack().await.map_err(BusError::Unavailable)
}

/// Gives `delivery` back to JetStream, to be delivered again after `delay` (at once
/// without one).
pub(super) async fn nak(delivery: &Message, delay: Option<Duration>) -> Result<(), BusError> {
    delivery
        .ack_with(AckKind::Nak(delay))
        .await
        .map_err(BusError::Unavailable)
}
