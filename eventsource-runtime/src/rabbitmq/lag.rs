//! A consumer group's lag on RabbitMQ: the messages ready in its queue (a passive declare),
//! plus the one being handled, whose age is the group's oldest.

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;

use super::ConsumerGroup;
use super::error::unavailable;
use crate::broker::group_health::group_health;
use crate::bus::BusError;
use crate::health::Lag;

group_health!(ConsumerGroup);

impl ConsumerGroup {
    /// How far behind the group is: the messages ready in its queue plus the one being
    /// handled, and the age of that one (0 when none is: RabbitMQ cannot show a queued
    /// message without handing it over). The up to [`prefetch`](Self::prefetch) messages
    /// the broker already handed to a running consumer, not started yet, are not counted:
    /// RabbitMQ counts them apart and does not report them on a declare. Messages waiting
    /// in the retry queues are not lag. One connection and one passive declare.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the broker cannot be reached or the group's queue is
    /// not declared yet.
    pub async fn lag(&self) -> Result<Lag, BusError> {
        let declared = self.declared_queue().await?;
        let ready = u64::from(declared.message_count());
        let in_hand = u64::from(self.health.status().in_hand().recorded_at().is_some());
        Ok(self.health.lag_with(ready + in_hand))
    }

    /// What the broker says of the group's queue, for a stall report: its ready messages
    /// and its consumers.
    pub(super) async fn broker_view(&self) -> String {
        match self.declared_queue().await {
            Ok(queue) => format!(
                "queue {}: {} messages ready, {} consumers",
                self.queues.live,
                queue.message_count(),
                queue.consumer_count()
            ),
            Err(error) => format!(
                "the broker did not describe queue {}: {}",
                self.queues.live,
                crate::telemetry::values::Chain(&error)
            ),
        }
    }

    /// The group's queue, declared passively on a connection of its own.
    async fn declared_queue(&self) -> Result<lapin::Queue, BusError> {
        let connection = self.bus.connect().await?;
        let declared = async {
            let channel = connection.create_channel().await.map_err(unavailable)?;
            channel
                .queue_declare(
                    self.queues.live.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(unavailable)
        }
        .await;
        let _ = connection.close(200, "lag measured".into()).await;
        declared
    }
}
