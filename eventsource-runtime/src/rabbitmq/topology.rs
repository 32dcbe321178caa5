//! The broker's topology, declared idempotently: one durable topic exchange per bus; per
//! consumer group a durable queue bound by patterns, one retry queue per delay (messages
//! wait there for their delay, then go back to the group's queue) and a dead-letter queue.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};

use super::error::unavailable;
use crate::bus::BusError;

/// A consumer group's queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GroupQueues {
    /// The queue the group consumes: `{exchange}.{group}`.
    pub(super) live: String,
    /// One per retry delay: `{exchange}.{group}.retry.{delay}ms`, the delay as a name so
    /// that another configuration declares other queues instead of clashing.
    pub(super) retries: Vec<(Duration, String)>,
    /// The dead letters: `{exchange}.{group}.dead`.
    pub(super) dead: String,
}

impl GroupQueues {
    pub(super) fn new(exchange: &str, group: &str, delays: &[Duration]) -> Self {
        let live = format!("{exchange}.{group}");
        Self {
            retries: delays
                .iter()
                .map(|delay| (*delay, format!("{live}.retry.{}ms", delay.as_millis())))
                .collect(),
            dead: format!("{live}.dead"),
            live,
        }
    }

    /// The retry queue of the redelivery after `attempt` (1-based): the first delay after
    /// the first failure, the last one for every later failure.
    pub(super) fn retry_after(&self, attempt: u32) -> Option<&str> {
        let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        self.retries
            .get(index)
            .or(self.retries.last())
            .map(|(_, queue)| queue.as_str())
    }
}

/// Declares the bus's exchange: durable, topic.
pub(super) async fn declare_exchange(channel: &Channel, exchange: &str) -> Result<(), BusError> {
    let options = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            options,
            FieldTable::default(),
        )
        .await
        .map_err(unavailable)
}

/// Declares a group's queues and binds its live queue to `exchange` with `patterns`.
pub(super) async fn declare_group(
    channel: &Channel,
    exchange: &str,
    queues: &GroupQueues,
    patterns: &[String],
) -> Result<(), BusError> {
    declare_exchange(channel, exchange).await?;
    declare_queue(channel, &queues.live, FieldTable::default()).await?;
    for pattern in patterns {
        channel
            .queue_bind(
                queues.live.as_str().into(),
                exchange.into(),
                pattern.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
    }
    for (delay, queue) in &queues.retries {
        // A message waits out its delay here, then the broker dead-letters it through the
        // default exchange back to the live queue.
        let mut arguments = FieldTable::default();
        let ttl = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        arguments.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(LongString::from("")),
        );
        arguments.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(LongString::from(queues.live.as_str())),
        );
        declare_queue(channel, queue, arguments).await?;
    }
    declare_queue(channel, &queues.dead, FieldTable::default()).await
}

/// Declares a durable queue (nothing changes if it exists with these arguments).
pub(super) async fn declare_queue(
    channel: &Channel,
    queue: &str,
    arguments: FieldTable,
) -> Result<(), BusError> {
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(queue.into(), options, arguments)
        .await
        .map(drop)
        .map_err(unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_longer_then_stay_at_the_last_delay() {
        let delays = [Duration::from_millis(100), Duration::from_secs(2)];
        let queues = GroupQueues::new("shop", "mailer", &delays);
        assert_eq!(queues.live, "shop.mailer");
        assert_eq!(queues.dead, "shop.mailer.dead");
        assert_eq!(queues.retry_after(1), Some("shop.mailer.retry.100ms"));
        assert_eq!(queues.retry_after(2), Some("shop.mailer.retry.2000ms"));
        assert_eq!(queues.retry_after(9), Some("shop.mailer.retry.2000ms"));
        assert_eq!(GroupQueues::new("shop", "g", &[]).retry_after(1), None);
    }
}
