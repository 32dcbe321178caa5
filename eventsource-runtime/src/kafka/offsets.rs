//! The group's offsets: commits past settled records, the `started` mark on the record in
//! hand, and reading that mark back when a consumer resumes a partition.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::{Offset, TopicPartitionList};

use crate::telemetry::otel::log::log_warn;
use crate::telemetry::values::Chain;

/// The commit metadata of a record handed to the handlers and not settled yet.
pub(super) const STARTED: &str = "eventsource:started";

/// How long a blocking broker call (committed offsets, a final commit) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Commits past `record` (asynchronously: commits are sent in order) and stores that
/// offset for the session's last, synchronous commit.
pub(super) fn commit(consumer: &StreamConsumer, record: &BorrowedMessage<'_>) {
    mark(consumer, record, Offset::Offset(record.offset() + 1), "");
    // Fails only when the partition was revoked meanwhile: its next owner starts from
    // what was committed.
    let _ = consumer.store_offset_from_message(record);
}

/// Commits `offset` of `record`'s partition with `metadata`.
pub(super) fn mark(
    consumer: &StreamConsumer,
    record: &BorrowedMessage<'_>,
    offset: Offset,
    metadata: &str,
) {
    let mut list = TopicPartitionList::new();
    if list
        .add_partition_offset(record.topic(), record.partition(), offset)
        .is_err()
    {
        return;
    }
    if let Some(mut entry) = list.find_partition(record.topic(), record.partition()) {
        entry.set_metadata(metadata);
    }
    if let Err(error) = consumer.commit(&list, CommitMode::Async) {
        log_warn!(error = %Chain(&error), "kafka commit failed; the record may come again");
    }
}

/// What the group's committed offsets said of each partition when this consumer first read
/// from it: the offset a consumer had started and not finished.
#[derive(Default)]
pub(super) struct ResumePoints {
    checked: HashMap<(String, i32), Option<i64>>,
}

impl ResumePoints {
    /// Whether `offset` of `partition` was started by a consumer that never settled it.
    ///
    /// The first time, it asks for every partition assigned then, in one call: the broker
    /// answers a committed-offsets request only after the commits this consumer sent
    /// before it on the same connection (two per record), so asking once per partition,
    /// as each one's first record came, waited behind every commit of the partitions read
    /// before it (0.6 s per partition for 700 records on tansu).
    pub(super) async fn started_at(
        &mut self,
        consumer: &Arc<StreamConsumer>,
        partition: &(String, i32),
        offset: i64,
    ) -> bool {
        if !self.checked.contains_key(partition) {
            let mut wanted = assigned(consumer);
            wanted.push(partition.clone());
            wanted.retain(|p| !self.checked.contains_key(p));
            wanted.sort();
            wanted.dedup();
            let mut started = started_offsets(consumer, wanted.clone()).await;
            for partition in wanted {
                let offset = started.remove(&partition);
                self.checked.insert(partition, offset);
            }
        }
        self.checked.get(partition).copied().flatten() == Some(offset)
    }
}

/// The partitions assigned to `consumer` now (none when it cannot say).
pub(super) fn assigned(consumer: &StreamConsumer) -> Vec<(String, i32)> {
    consumer
        .assignment()
        .map(|list| {
            list.elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect()
        })
        .unwrap_or_default()
}

/// The offsets committed for `partitions` with the [`STARTED`] mark, by partition (those
/// without the mark, or that could not be read, left out).
pub(super) async fn started_offsets(
    consumer: &Arc<StreamConsumer>,
    partitions: Vec<(String, i32)>,
) -> HashMap<(String, i32), i64> {
    let consumer = Arc::clone(consumer);
    tokio::task::spawn_blocking(move || {
        let mut list = TopicPartitionList::new();
        for (topic, number) in &partitions {
            list.add_partition(topic, *number);
        }
        let Ok(committed) = consumer.committed_offsets(list, CALL_TIMEOUT) else {
            return HashMap::new();
        };
        let mut started = HashMap::new();
        for entry in committed.elements() {
            // librdkafka's metadata accessor panics on text that is not UTF-8: another
            // client may have committed anything.
            let marked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                entry.metadata() == STARTED
            }))
            .unwrap_or(false);
            if let (true, Offset::Offset(offset)) = (marked, entry.offset()) {
                started.insert((entry.topic().to_owned(), entry.partition()), offset);
            }
        }
        started
    })
    .await
    .unwrap_or_default()
}
