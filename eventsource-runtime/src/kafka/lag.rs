//! A consumer group's lag on Kafka: over the partitions of the topics it reads, the high
//! watermark minus the group's committed offset.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{Offset, TopicPartitionList};

use super::ConsumerGroup;
use super::error::unavailable;
use super::topology::Topics;
use crate::bus::BusError;
use crate::bus::group_health::group_health;
use crate::health::Lag;

group_health!(ConsumerGroup);

/// How long one broker request of a lag measurement may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

impl ConsumerGroup {
    /// How far behind the group is: over every partition of the topics it reads, the
    /// records after its committed offset (from the start of the partition while it has
    /// committed none), and the age of the record being handled (0 when none is: reading
    /// the record at the committed offset would mean joining the partition). Records
    /// waiting in the retry topics are not lag. A metadata request, then one request for
    /// the committed offsets and one per partition for its watermarks, on a client of
    /// its own.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the brokers cannot be reached in time.
    pub async fn lag(&self) -> Result<Lag, BusError> {
        let group = self.clone();
        let behind = tokio::task::spawn_blocking(move || group.records_behind())
            .await
            .map_err(BusError::unavailable)??;
        Ok(self.health.lag_with(behind))
    }

    /// The records after the group's committed offsets (blocking).
    fn records_behind(&self) -> Result<u64, BusError> {
        let mut config = self.bus.client_config();
        config
            .set("group.id", &self.topics.group_id)
            .set("enable.auto.commit", "false");
        let consumer: BaseConsumer = config.create().map_err(|e| self.bus.creation_failed(e))?;
        let metadata = consumer
            .fetch_metadata(None, REQUEST_TIMEOUT)
            .map_err(unavailable)?;
        let mut partitions = TopicPartitionList::new();
        for topic in metadata.topics().iter().filter(|t| self.reads(t.name())) {
            for partition in topic.partitions() {
                partitions.add_partition(topic.name(), partition.id());
            }
        }
        if partitions.count() == 0 {
            return Ok(0);
        }
        let committed = consumer
            .committed_offsets(partitions, REQUEST_TIMEOUT)
            .map_err(unavailable)?;
        let mut behind = 0u64;
        for partition in committed.elements() {
            let (low, high) = consumer
                .fetch_watermarks(partition.topic(), partition.partition(), REQUEST_TIMEOUT)
                .map_err(unavailable)?;
            let from = match partition.offset() {
                Offset::Offset(committed) => committed.max(low),
                _ => low,
            };
            behind += u64::try_from(high - from).unwrap_or(0);
        }
        Ok(behind)
    }

    /// Whether the group's live consumer reads `topic`.
    fn reads(&self, topic: &str) -> bool {
        match (&self.bus.shared.topics, self.aggregate_types()) {
            (Topics::One(name), _) => topic == name,
            (Topics::PerAggregateType, Some(types)) => {
                types.iter().any(|t| self.bus.topic_of(t) == topic)
            }
            // As the subscription's pattern: one name after the prefix.
            (Topics::PerAggregateType, None) => topic
                .strip_prefix(self.bus.topic_prefix())
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|name| {
                    !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                }),
        }
    }
}
