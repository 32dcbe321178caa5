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
use std::hash::BuildHasher as _;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use rdkafka::consumer::{CommitMode, Consumer as _};
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::topic_partition_list::TopicPartitionListElem;
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::{Instant, Sleep};

use super::group_context::GroupConsumer;
use crate::telemetry::otel::log::log_warn;
use crate::telemetry::values::Chain;

/// The commit metadata of a record handed to the handlers and not settled yet.
pub(super) const STARTED: &str = "eventsource:started";

/// How long a blocking broker call (committed offsets, a final commit) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A partition: its topic and number.
pub(super) type Partition = (String, i32);

/// A partition named by borrowed parts: looks a [`Partition`] up without making one (every
/// record a session receives is looked up, few of them add a partition).
#[derive(Debug, Clone, Copy)]
pub(super) struct PartitionOf<'a>(pub(super) &'a str, pub(super) i32);

impl PartitionOf<'_> {
    /// The partition of `record`.
    pub(super) fn record<'a>(record: &'a BorrowedMessage<'_>) -> PartitionOf<'a> {
        PartitionOf(record.topic(), record.partition())
    }

    fn owned(self) -> Partition {
        (self.0.to_owned(), self.1)
    }

    fn is(self, partition: &Partition) -> bool {
        self.0 == partition.0 && self.1 == partition.1
    }
}

/// Something kept per partition, looked up by [`PartitionOf`].
pub(super) struct Partitions<V> {
    table: HashTable<(Partition, V)>,
    hasher: foldhash::fast::RandomState,
}

impl<V> Default for Partitions<V> {
    fn default() -> Self {
        Self {
            table: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

impl<V> Partitions<V> {
    fn hash(&self, PartitionOf(topic, number): PartitionOf<'_>) -> u64 {
        self.hasher.hash_one((topic, number))
    }

    pub(super) fn get(&self, partition: PartitionOf<'_>) -> Option<&V> {
        let hash = self.hash(partition);
        self.table
            .find(hash, |(key, _)| partition.is(key))
            .map(|(_, value)| value)
    }

    pub(super) fn contains(&self, partition: PartitionOf<'_>) -> bool {
        self.get(partition).is_some()
    }

    /// The value of `partition`, made with `V::default()` the first time.
    pub(super) fn slot(&mut self, partition: PartitionOf<'_>) -> &mut V
    where
        V: Default,
    {
        let hash = self.hash(partition);
        let hasher = &self.hasher;
        let rehash = |(key, _): &(Partition, V)| hasher.hash_one((key.0.as_str(), key.1));
        match self.table.entry(hash, |(key, _)| partition.is(key), rehash) {
            Entry::Occupied(found) => &mut found.into_mut().1,
            Entry::Vacant(free) => &mut free.insert((partition.owned(), V::default())).into_mut().1,
        }
    }

    pub(super) fn insert(&mut self, partition: Partition, value: V)
    where
        V: Default,
    {
        *self.slot(PartitionOf(&partition.0, partition.1)) = value;
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (&Partition, &mut V)> {
        self.table.iter_mut().map(|(key, value)| (&*key, value))
    }
}

/// What a session settled and has not committed yet, and the records in hand; committed
/// together, at most once per interval, in one asynchronous request.
pub(super) struct Commits {
    interval: Duration,
    /// Whether the record in hand is committed with the [`STARTED`] mark (live records
    /// only: a retry is a redelivery whatever the mark says).
    mark: bool,
    /// Each partition this session started or settled records of.
    partitions: Partitions<Progress>,
    /// How many partitions have settled records not committed yet.
    uncommitted: usize,
    /// How many records in hand were not committed with the mark yet.
    unmarked: usize,
    last: Instant,
    /// The consumer's revocation count that what is recorded here was recorded under.
    revocations: u64,
    /// Fires when the next commit is due; reset only when that moves (one timer for the
    /// session, not one per record).
    timer: Pin<Box<Sleep>>,
}

/// One partition's part of [`Commits`].
#[derive(Debug, Default)]
struct Progress {
    /// The next offset, once records were settled since the last commit.
    settled: Option<i64>,
    /// The record being handled (the first of the partition in hand: a batch may hold
    /// several), and whether its mark was committed already.
    in_hand: Option<(i64, bool)>,
}

impl Commits {
    /// Commits at most once per `interval`; `mark`: the record in hand is marked.
    pub(super) fn new(interval: Duration, mark: bool) -> Self {
        let now = Instant::now();
        Self {
            interval: interval.max(Duration::from_millis(1)),
            mark,
            partitions: Partitions::default(),
            uncommitted: 0,
            unmarked: 0,
            last: now,
            revocations: 0,
            timer: Box::pin(tokio::time::sleep_until(now)),
        }
    }

    /// Runs `work`, the handling of `records`, as [`during`](Self::during) does, the
    /// records in hand meanwhile; once it succeeded, their partitions move past them, unless
    /// partitions were taken from the consumer meanwhile: then nothing is stored or
    /// committed for them, and whoever owns their partitions now starts from the group's
    /// committed offset (at least once).
    pub(super) async fn settle<T>(
        &mut self,
        consumer: &GroupConsumer,
        records: &[BorrowedMessage<'_>],
        work: impl Future<Output = Result<(), T>>,
    ) -> Result<(), T> {
        let started_under = self.assignment(consumer);
        for record in records {
            self.start(record);
        }
        self.during(consumer, work).await?;
        if self.assignment(consumer) == started_under {
            for record in records {
                self.settled(consumer, record);
            }
        }
        Ok(())
    }

    /// The consumer's revocation count ([`GroupContext::revocations`]) now. When it moved
    /// since this session last looked, what the session recorded is forgotten: a revoke
    /// committed it already, and after a loss (the group handed the partitions on while the
    /// consumer could not reach it) a commit would move the group's offsets back over the
    /// next owner's work, even once the partition comes back to this consumer.
    ///
    /// [`GroupContext::revocations`]: super::group_context::GroupContext::revocations
    fn assignment(&mut self, consumer: &GroupConsumer) -> u64 {
        let revocations = consumer.context().revocations();
        if revocations != self.revocations {
            self.revocations = revocations;
            for (_, progress) in self.partitions.iter_mut() {
                *progress = Progress::default();
            }
            self.uncommitted = 0;
            self.unmarked = 0;
        }
        revocations
    }

    /// `record` goes to the handlers now (the first of its partition in hand is the one
    /// marked).
    fn start(&mut self, record: &BorrowedMessage<'_>) {
        let progress = self.partitions.slot(PartitionOf::record(record));
        if progress.in_hand.is_none() {
            progress.in_hand = Some((record.offset(), false));
            self.unmarked += 1;
        }
    }

    /// `record` is settled: its partition's position moves past it (stored for the
    /// session's last, synchronous commit too).
    fn settled(&mut self, consumer: &GroupConsumer, record: &BorrowedMessage<'_>) {
        let progress = self.partitions.slot(PartitionOf::record(record));
        if let Some((_, false)) = progress.in_hand.take() {
            self.unmarked -= 1;
        }
        let next = record.offset() + 1;
        match &mut progress.settled {
            Some(position) => *position = (*position).max(next),
            None => {
                progress.settled = Some(next);
                self.uncommitted += 1;
            }
        }
        // Fails only when the partition was revoked meanwhile: its next owner starts from
        // what was committed.
        let _ = consumer.store_offset_from_message(record);
    }

    /// When the next commit is due: an interval after the last one, while anything waits
    /// to be committed (settled records, or a record in hand not marked yet).
    fn due(&self) -> Option<Instant> {
        let unmarked = self.mark && self.unmarked > 0;
        (self.uncommitted > 0 || unmarked).then(|| self.last + self.interval)
    }

    /// Completes when a commit is due (never while nothing waits to be committed).
    pub(super) async fn commit_due(&mut self) {
        let Some(due) = self.due() else {
            return std::future::pending().await;
        };
        if self.timer.deadline() != due {
            self.timer.as_mut().reset(due);
        }
        self.timer.as_mut().await;
    }

    /// Commits every settled position and the records in hand (marked), in one request.
    pub(super) fn commit(&mut self, consumer: &GroupConsumer) {
        self.last = Instant::now();
        self.assignment(consumer);
        let mark = self.mark;
        let mut list = TopicPartitionList::new();
        for ((topic, partition), progress) in self.partitions.iter_mut() {
            // A record in hand is its partition's first unsettled one: the mark goes at its
            // own offset, over the position the records before it settled.
            let position = match (&mut progress.in_hand, progress.settled.take()) {
                (Some((offset, marked)), _) if mark => {
                    *marked = true;
                    Some((*offset, STARTED))
                }
                (_, Some(next)) => Some((next, "")),
                _ => None,
            };
            if let Some((offset, metadata)) = position
                && list
                    .add_partition_offset(topic, *partition, Offset::Offset(offset))
                    .is_ok()
                && let Some(mut entry) = list.find_partition(topic, *partition)
            {
                entry.set_metadata(metadata);
            }
        }
        self.uncommitted = 0;
        if mark {
            self.unmarked = 0;
        }
        if list.count() == 0 {
            return;
        }
        let doubts = consumer.context().doubts();
        doubts.commit_sent();
        if let Err(error) = consumer.commit(&list, CommitMode::Async) {
            doubts.commit_not_sent();
            log_warn!(error = %Chain(&error), "kafka commit failed; records may come again");
        }
    }

    /// Runs `work` (a record's handling), committing whenever a commit falls due
    /// meanwhile: a slow handler's record is marked as started, and what was settled
    /// before it is committed on time.
    async fn during<F: Future>(&mut self, consumer: &GroupConsumer, work: F) -> F::Output {
        let mut work = pin!(work);
        loop {
            tokio::select! {
                biased;
                output = &mut work => return output,
                () = self.commit_due() => self.commit(consumer),
            }
        }
    }
}

/// What the group's committed offsets said of each partition when this consumer first read
/// from it: the offset a consumer had started and not finished.
#[derive(Default)]
pub(super) struct ResumePoints {
    checked: Partitions<Option<i64>>,
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
        partition: PartitionOf<'_>,
        offset: i64,
    ) -> bool {
        if !self.checked.contains(partition) {
            let mut wanted = assigned(consumer.as_ref());
            wanted.push(partition.owned());
            wanted.retain(|(topic, number)| !self.checked.contains(PartitionOf(topic, *number)));
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
            let marked = metadata_of(&entry).is_some_and(|metadata| metadata == STARTED);
            if let (true, Offset::Offset(offset)) = (marked, entry.offset()) {
                started.insert((entry.topic().to_owned(), entry.partition()), offset);
            }
        }
        started
    })
    .await
    .unwrap_or_default()
}

/// A committed offset's metadata, `None` when it is not UTF-8: librdkafka's accessor panics
/// on such text, and another client may have committed anything.
pub(super) fn metadata_of(entry: &TopicPartitionListElem<'_>) -> Option<String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| entry.metadata().to_owned())).ok()
}
