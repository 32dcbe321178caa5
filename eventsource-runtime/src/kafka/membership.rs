//! Whether a group's consumer still belongs to its group after it lost touch with the
//! cluster, asked before it handles more.
//!
//! Under the consumer protocol (KIP-848) librdkafka keeps a member's partitions for as long as
//! its group coordinator cannot be reached: it has no session timer of its own, as it has
//! under the classic protocol. Its fetches go over other connections than its heartbeats, and
//! each connection backs off on its own (up to `reconnect.backoff.max.ms`): after an outage
//! longer than the session, the fetches can come back seconds before the heartbeat that
//! learns the member was fenced, and the member would hand the handlers records of partitions
//! the group gave to another member, who has handled them already. A network that drops
//! packets without a word raises no failure at all before the session runs out, and after
//! it heals the fetches can again come back first. So a connection failure, or a group that
//! accepted none of the member's commits for a while (`Doubts::quiet_limit`), puts the
//! member in doubt, and in doubt it hands nothing over until a commit carrying its
//! member epoch (or generation) was accepted by the coordinator: the offsets the group holds
//! for the record's partition, committed back as they are. A member the group fenced is
//! refused; it puts the record back (a seek to it) and serves its rebalance, which takes the
//! partitions away.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer as _};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::{Offset, TopicPartitionList};

use super::group_context::GroupConsumer;
use super::offsets::metadata_of;

/// How long the offsets read before the confirming commit may take (the commit itself waits
/// for the coordinator as librdkafka defers it).
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Before `record` is handled: `Ok` when the consumer is not in doubt, or a commit showed the
/// coordinator still counts it a member; otherwise the error, the record put back to be
/// fetched again (if its partition is still the consumer's).
pub(super) async fn confirm(
    consumer: &Arc<GroupConsumer>,
    record: &BorrowedMessage<'_>,
) -> KafkaResult<()> {
    let doubts = consumer.context().doubts();
    let Some(doubt) = doubts.doubt() else {
        return Ok(());
    };
    let (topic, partition, offset) = (record.topic(), record.partition(), record.offset());
    let answer = {
        let consumer = Arc::clone(consumer);
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || commit_as_held(&consumer, &topic, partition, offset))
            .await
            .unwrap_or_else(|_| Err(KafkaError::Canceled))
    };
    match answer {
        Ok(()) => {
            doubts.confirmed(doubt);
            Ok(())
        }
        Err(error) => {
            // Fails when the partition is no longer assigned: then nothing is to come again.
            let _ = consumer.seek(topic, partition, Offset::Offset(offset), Duration::ZERO);
            Err(error)
        }
    }
}

/// Commits what the group holds for `partition` as it is (offset and metadata), or `offset`,
/// the next record's, when it holds nothing: a commit that moves nothing, accepted only from
/// a member of the group's current generation.
fn commit_as_held(
    consumer: &GroupConsumer,
    topic: &str,
    partition: i32,
    offset: i64,
) -> KafkaResult<()> {
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition(topic, partition);
    let held = consumer.committed_offsets(wanted, READ_TIMEOUT)?;
    // Metadata that is not UTF-8 is committed back as none.
    let held = held
        .find_partition(topic, partition)
        .and_then(|entry| match entry.offset() {
            Offset::Offset(at) => Some((at, metadata_of(&entry).unwrap_or_default())),
            _ => None,
        });
    let (offset, metadata) = held.unwrap_or((offset, String::new()));
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    if let Some(mut entry) = list.find_partition(topic, partition) {
        entry.set_metadata(metadata);
    }
    consumer.commit(&list, CommitMode::Sync)
}
