//! The group's offsets: what a session settled, committed on a cadence (never once per
//! record), the `started` mark on the record in hand at a commit, and reading that mark back
//! when a consumer resumes a partition.
//!
//! Why a cadence: every commit is a request on the connection to the group coordinator,
//! which also carries the group's heartbeats (and, under the classic protocol, its joins and
//! syncs). Two commits per record (the mark, then the settle) put hundreds of requests a
//! second per group ahead of them, and a commit a second re-handles at most a second's work
//! after a kill (`docs/brokers.md`). (On tansu 0.6, the broker CI ran before, whose
//! coordinator answered one request of a connection at a time, commits per record made
//! heartbeats late and groups never formed again.)

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer as _};
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::Instant;

use super::group_context::GroupConsumer;
use crate::telemetry::otel::log::log_warn;
use crate::telemetry::values::Chain;

/// The commit metadata of a record handed to the handlers and not settled yet.
pub(super) const STARTED: &str = "eventsource:started";

/// How long a blocking broker call (committed offsets, a final commit) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A partition: its topic and number.
pub(super) type Partition = (String, i32);

/// What a session settled and has not committed yet, and the record in hand; committed
/// together, at most once per interval, in one asynchronous request.
pub(super) struct Commits {
    interval: Duration,
    /// Whether the record in hand is committed with the [`STARTED`] mark (live records
    /// only: a retry is a redelivery whatever the mark says).
    mark: bool,
    /// The next offset of each partition with settled records not committed yet.
    settled: HashMap<Partition, i64>,
    /// The records being handled (one per partition at most: a batch may hold several),
    /// and whether each one's mark was committed already.
    in_hand: Vec<(Partition, i64, bool)>,
    last: Instant,
}

impl Commits {
    /// Commits at most once per `interval`; `mark`: the record in hand is marked.
    pub(super) fn new(interval: Duration, mark: bool) -> Self {
        Self {
            interval: interval.max(Duration::from_millis(1)),
            mark,
            settled: HashMap::new(),
            in_hand: Vec::new(),
            last: Instant::now(),
        }
    }

    /// Runs `work`, the handling of `records`, as [`during`](Self::during) does, the
    /// records in hand meanwhile; once it succeeded, their partitions move past them.
    pub(super) async fn settle<T>(
        &mut self,
        consumer: &GroupConsumer,
        records: &[BorrowedMessage<'_>],
        work: impl Future<Output = Result<(), T>>,
    ) -> Result<(), T> {
        for record in records {
            self.start(record);
        }
        self.during(consumer, work).await?;
        for record in records {
            self.settled(consumer, record);
        }
        Ok(())
    }

    /// `record` goes to the handlers now (the first of its partition in hand is the one
    /// marked).
    fn start(&mut self, record: &BorrowedMessage<'_>) {
        let partition = (record.topic().to_owned(), record.partition());
        if !self.in_hand.iter().any(|(p, _, _)| *p == partition) {
            self.in_hand.push((partition, record.offset(), false));
        }
    }

    /// `record` is settled: its partition's position moves past it (stored for the
    /// session's last, synchronous commit too).
    fn settled(&mut self, consumer: &GroupConsumer, record: &BorrowedMessage<'_>) {
        let partition = (record.topic().to_owned(), record.partition());
        self.in_hand.retain(|(p, _, _)| *p != partition);
        let next = record.offset() + 1;
        let position = self.settled.entry(partition).or_insert(next);
        *position = (*position).max(next);
        // Fails only when the partition was revoked meanwhile: its next owner starts from
        // what was committed.
        let _ = consumer.store_offset_from_message(record);
    }

    /// When the next commit is due: an interval after the last one, while anything waits
    /// to be committed (settled records, or a record in hand not marked yet).
    pub(super) fn due(&self) -> Option<Instant> {
        let unmarked = self.mark && self.in_hand.iter().any(|(_, _, marked)| !marked);
        (!self.settled.is_empty() || unmarked).then(|| self.last + self.interval)
    }

    /// Commits every settled position and the records in hand (marked), in one request.
    pub(super) fn commit(&mut self, consumer: &GroupConsumer) {
        self.last = Instant::now();
        let mut positions: HashMap<Partition, (i64, &str)> = self
            .settled
            .drain()
            .map(|(partition, next)| (partition, (next, "")))
            .collect();
        if self.mark {
            // A record in hand is its partition's first unsettled one: the mark goes at its
            // own offset, over the position the records before it settled.
            for (partition, offset, marked) in &mut self.in_hand {
                positions.insert(partition.clone(), (*offset, STARTED));
                *marked = true;
            }
        }
        if positions.is_empty() {
            return;
        }
        let mut list = TopicPartitionList::new();
        for ((topic, partition), (offset, metadata)) in positions {
            if list
                .add_partition_offset(&topic, partition, Offset::Offset(offset))
                .is_ok()
                && let Some(mut entry) = list.find_partition(&topic, partition)
            {
                entry.set_metadata(metadata);
            }
        }
        if let Err(error) = consumer.commit(&list, CommitMode::Async) {
            log_warn!(error = %Chain(&error), "kafka commit failed; records may come again");
        }
    }

    /// Runs `work` (a record's handling), committing whenever a commit falls due
    /// meanwhile: a slow handler's record is marked as started, and what was settled
    /// before it is committed on time.
    async fn during<F: Future>(&mut self, consumer: &GroupConsumer, work: F) -> F::Output {
        let mut work = pin!(work);
        loop {
            let Some(due) = self.due() else {
                return work.await;
            };
            tokio::select! {
                biased;
                output = &mut work => return output,
                () = tokio::time::sleep_until(due) => self.commit(consumer),
            }
        }
    }
}

/// What the group's committed offsets said of each partition when this consumer first read
/// from it: the offset a consumer had started and not finished.
#[derive(Default)]
pub(super) struct ResumePoints {
    checked: HashMap<Partition, Option<i64>>,
}

impl ResumePoints {
    /// Whether `offset` of `partition` was started by a consumer that never settled it.
    ///
    /// The first time, it asks for every partition assigned then, in one call: asking once
    /// per partition, as each one's first record came, waited behind the commits of the
    /// partitions read before it on the same connection.
    pub(super) async fn started_at(
        &mut self,
        consumer: &Arc<GroupConsumer>,
        partition: &Partition,
        offset: i64,
    ) -> bool {
        if !self.checked.contains_key(partition) {
            let mut wanted = assigned(consumer.as_ref());
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
pub(super) fn assigned(consumer: &GroupConsumer) -> Vec<Partition> {
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
    consumer: &Arc<GroupConsumer>,
    partitions: Vec<Partition>,
) -> HashMap<Partition, i64> {
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
