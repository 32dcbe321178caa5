//! A consumer group's lag on Kafka: over the partitions of the topics it reads, the high
//! watermark minus the group's committed offset.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{Offset, TopicPartitionList};

use super::error::unavailable;
use super::offsets::assigned;
use super::topology::Topics;
use super::{ConsumerGroup, GroupProtocol};
use crate::broker::group_health::group_health;
use crate::bus::BusError;
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
        let (behind, committed) = tokio::task::spawn_blocking(move || group.records_behind())
            .await
            .map_err(BusError::unavailable)??;
        // Where the whole group is: a commit by any of its consumers is progress.
        if self.committed.swap(committed, Ordering::Relaxed) != committed {
            self.health.progressed();
        }
        Ok(self.health.lag_with(behind))
    }

    /// What the broker and this process's consumer say of the group, for a stall report:
    /// the group's state and members with the partitions assigned to each (as the broker
    /// describes it), the partitions the consumer holds now, and its join state and
    /// rebalances (from its statistics).
    ///
    /// A group of the consumer protocol is described by `ConsumerGroupDescribe`, which
    /// rdkafka does not send (its `DescribeGroups` answer for such a group is "Dead, no
    /// members"): the report then says so and gives the consumer's own view.
    pub(super) async fn broker_view(&self) -> String {
        let consumer = self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .upgrade();
        let speaking = consumer.as_ref().map(|c| c.context().protocol());
        let described = if speaking == Some(GroupProtocol::Consumer) {
            "the broker's description of a consumer-protocol group (ConsumerGroupDescribe) \
             is not available through this client"
                .to_owned()
        } else {
            let group = self.clone();
            tokio::task::spawn_blocking(move || group.describe())
                .await
                .unwrap_or_else(|error| format!("the group could not be described: {error}"))
        };
        let Some(consumer) = consumer else {
            return format!("{described}; this process has no consumer in the group now");
        };
        let held: Vec<String> = assigned(&consumer)
            .iter()
            .map(|(topic, partition)| format!("{topic}[{partition}]"))
            .collect();
        let statistics = consumer
            .context()
            .membership()
            .unwrap_or_else(|| "no statistics from librdkafka yet".to_owned());
        format!(
            "{described}; this consumer ({} protocol) holds {} partitions ({}), {statistics}",
            consumer.context().protocol(),
            held.len(),
            held.join(", ")
        )
    }

    /// The broker's description of the group (blocking).
    fn describe(&self) -> String {
        let consumer: Result<BaseConsumer, _> = self.bus.client_config().create();
        let described = consumer.map_err(|e| e.to_string()).and_then(|consumer| {
            consumer
                .fetch_group_list(Some(&self.topics.group_id), REQUEST_TIMEOUT)
                .map_err(|e| e.to_string())
        });
        let list = match described {
            Ok(list) => list,
            Err(error) => return format!("the broker did not describe the group: {error}"),
        };
        let Some(group) = list.groups().first() else {
            return "the broker does not know the group".to_owned();
        };
        let members: Vec<String> = group
            .members()
            .iter()
            .map(|member| {
                let partitions = member
                    .assignment()
                    .and_then(assigned_partitions)
                    .map_or_else(|| "?".to_owned(), |n| n.to_string());
                format!("{} ({partitions} partitions)", member.id())
            })
            .collect();
        format!(
            "group state {}, protocol {}, {} members: {}",
            group.state(),
            group.protocol(),
            members.len(),
            members.join(", ")
        )
    }

    /// The records after the group's committed offsets, and the sum of those offsets
    /// (blocking).
    fn records_behind(&self) -> Result<(u64, u64), BusError> {
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
            return Ok((0, 0));
        }
        let committed = consumer
            .committed_offsets(partitions, REQUEST_TIMEOUT)
            .map_err(unavailable)?;
        let mut behind = 0u64;
        let mut position = 0u64;
        for partition in committed.elements() {
            if let Offset::Offset(committed) = partition.offset() {
                position = position.wrapping_add(u64::try_from(committed).unwrap_or(0));
            }
            let (low, high) = consumer
                .fetch_watermarks(partition.topic(), partition.partition(), REQUEST_TIMEOUT)
                .map_err(unavailable)?;
            let from = match partition.offset() {
                Offset::Offset(committed) => committed.max(low),
                _ => low,
            };
            behind += u64::try_from(high - from).unwrap_or(0);
        }
        Ok((behind, position))
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

/// How many partitions a member's assignment (Kafka's consumer protocol: a version, then
/// each topic's name and partitions) names; `None` when it cannot be read.
fn assigned_partitions(assignment: &[u8]) -> Option<usize> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (bytes.get(..n)?, bytes.get(n..)?);
        *bytes = rest;
        Some(head)
    }
    fn int(bytes: &mut &[u8]) -> Option<usize> {
        let raw = take(bytes, 4)?;
        usize::try_from(i32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]])).ok()
    }
    let mut bytes = assignment;
    if bytes.is_empty() {
        return Some(0);
    }
    take(&mut bytes, 2)?;
    let mut partitions = 0usize;
    for _ in 0..int(&mut bytes)? {
        let raw = take(&mut bytes, 2)?;
        let name = usize::try_from(i16::from_be_bytes([raw[0], raw[1]])).ok()?;
        take(&mut bytes, name)?;
        let count = int(&mut bytes)?;
        take(&mut bytes, count.checked_mul(4)?)?;
        partitions = partitions.checked_add(count)?;
    }
    Some(partitions)
}

#[cfg(test)]
mod tests {
    use super::assigned_partitions;

    #[test]
    fn a_members_assignment_is_read_without_trusting_its_lengths() {
        // Version 0, one topic `ab` with partitions 0 and 2, no user data.
        let assignment = [
            0, 0, 0, 0, 0, 1, 0, 2, b'a', b'b', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2,
        ];
        assert_eq!(assigned_partitions(&assignment), Some(2));
        assert_eq!(assigned_partitions(&[]), Some(0));
        assert_eq!(assigned_partitions(&assignment[..9]), None);
        assert_eq!(assigned_partitions(&[0, 0, 0x7f, 0xff, 0xff, 0xff]), None);
    }
}
