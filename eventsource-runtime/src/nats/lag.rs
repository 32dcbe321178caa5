//! A consumer group's lag on NATS JetStream: its durable consumer's pending and
//! acknowledgement-pending messages, and the age of the first message after its
//! acknowledgement floor, read from the stream.

use super::ConsumerGroup;
use super::error::unavailable;
use crate::broker::group_health::group_health;
use crate::bus::{BusError, wire};
use crate::health::Lag;

group_health!(ConsumerGroup);

impl ConsumerGroup {
    /// How far behind the group is: the messages its durable consumer has not delivered
    /// yet plus those delivered and not acknowledged, and the age of the oldest of them
    /// (the first of the group's subjects after the consumer's acknowledgement floor, read
    /// from the stream: when its event was recorded). A group bound with several patterns
    /// counts every message under the bus's prefix, as its consumer sees them. Messages
    /// waiting on the retry subject are not lag. Three requests to the server.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the server cannot be reached or the group's consumer
    /// is not declared yet.
    pub async fn lag(&self) -> Result<Lag, BusError> {
        let context = self.bus.context().await?;
        let stream = context
            .get_stream(&self.bus.shared.streams.live)
            .await
            .map_err(unavailable)?;
        let info = stream
            .consumer_info(&self.names.durable)
            .await
            .map_err(unavailable)?;
        let events = info.num_pending + info.num_ack_pending as u64;
        if events == 0 {
            return Ok(Lag::ZERO);
        }
        let oldest = stream
            .raw_message_builder()
            .sequence(info.ack_floor.stream_sequence + 1)
            .next_by_subject(self.filter())
            .send()
            .await
            .ok()
            .and_then(|message| wire::decode(&message.payload).ok());
        Ok(match oldest {
            Some(event) => Lag::since(events, event.timestamp),
            None => self.health.lag_with(events),
        })
    }

    /// What the server says of the group's durable consumer, for a stall report: its
    /// pending, unacknowledged and redelivered messages, its waiting pull requests, and
    /// its acknowledgement floor.
    pub(super) async fn broker_view(&self) -> String {
        let info = async {
            let context = self.bus.context().await?;
            let stream = context
                .get_stream(&self.bus.shared.streams.live)
                .await
                .map_err(unavailable)?;
            stream
                .consumer_info(&self.names.durable)
                .await
                .map_err(unavailable)
        }
        .await;
        match info {
            Ok(info) => format!(
                "consumer {}: {} pending, {} unacknowledged (max {}), {} redelivered, \
                 {} pull requests waiting, acknowledged up to stream sequence {}",
                self.names.durable,
                info.num_pending,
                info.num_ack_pending,
                info.config.max_ack_pending,
                info.num_redelivered,
                info.num_waiting,
                info.ack_floor.stream_sequence
            ),
            Err(error) => format!(
                "the server did not describe consumer {}: {}",
                self.names.durable,
                crate::telemetry::values::Chain(&error)
            ),
        }
    }
}
