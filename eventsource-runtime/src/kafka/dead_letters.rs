//! A consumer group's dead letters, from Rust: count, list, move back, purge.
//!
//! Kafka keeps a topic's records until retention removes them, so the dead-letter topic is
//! read through a cursor: the committed offsets of the group `{group_id}.dead-letters`. The
//! dead letters are the records after the cursor; moving them back or purging them moves
//! the cursor past them.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::{Offset, TopicPartitionList};

use super::KafkaBus;
use super::codec;
use super::error::unavailable;
use super::topology::GroupTopics;
use crate::bus::wire::{self, DeliveryState};
use crate::bus::{BusError, BusMessage, DeadLetter, DeadLetterEntry, UndecodableLetter};
use crate::telemetry::values::Chain;

/// A record kept as it came: its value and its headers.
type RawRecord = (Option<Vec<u8>>, Vec<(String, Vec<u8>)>);

/// How long a broker call (metadata, offsets, a read) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The dead letters of one [`ConsumerGroup`](super::ConsumerGroup): records a handler failed
/// on at every allowed delivery, each with the handlers that failed and the last error, and
/// records that are not stored events, with the reason.
///
/// ```no_run
/// # async fn run(group: eventsource_runtime::kafka::ConsumerGroup) -> Result<(), eventsource_runtime::bus::BusError> {
/// let dead = group.dead_letters();
/// for entry in dead.list(10).await? {
///     if let Some(letter) = entry.as_failed() {
///         println!("{} failed {} times: {}", letter.handler, letter.attempts, letter.error);
///     }
/// }
/// // The bug is fixed: back to the group, for the handlers that failed.
/// let moved = dead.requeue().await?;
/// assert_eq!(dead.count().await?, 0);
/// # let _ = moved; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DeadLetters {
    bus: KafkaBus,
    topics: GroupTopics,
}

/// The part of each partition of the dead-letter topic that holds dead letters: from the
/// cursor to the end.
struct Window {
    consumer: Arc<StreamConsumer>,
    /// (partition, cursor, end).
    ranges: Vec<(i32, i64, i64)>,
}

impl Window {
    fn count(&self) -> u64 {
        self.ranges
            .iter()
            .map(|(_, from, to)| u64::try_from(to - from).unwrap_or(0))
            .sum()
    }
}

impl DeadLetters {
    pub(super) fn new(bus: KafkaBus, topics: GroupTopics) -> Self {
        Self { bus, topics }
    }

    /// The dead-letter topic's name.
    #[must_use]
    pub fn topic(&self) -> &str {
        &self.topics.dead
    }

    /// How many records are dead-lettered.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the cluster cannot be reached.
    pub async fn count(&self) -> Result<u64, BusError> {
        Ok(self.window().await?.count())
    }

    /// The first `max` dead letters, oldest first (partition by partition), left in place:
    /// the records a handler failed on, and those that are not stored events, with the
    /// reason.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the cluster cannot be reached.
    pub async fn list(&self, max: usize) -> Result<Vec<DeadLetterEntry>, BusError> {
        let window = self.window().await?;
        let mut entries = Vec::new();
        self.read(&window, max, |record| {
            entries.push(self.entry(record));
            async { Ok(()) }
        })
        .await?;
        Ok(entries)
    }

    /// Moves every dead letter back to the group, for the handlers that failed on it, with a
    /// fresh budget of deliveries; returns how many moved. Each is delivered to the group's
    /// requeue topic before the cursor moves past it. A record that is not a stored event
    /// stays a dead letter (copied to the end of the topic).
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the cluster cannot be reached; the records moved
    /// before the failure stay moved.
    pub async fn requeue(&self) -> Result<usize, BusError> {
        let window = self.window().await?;
        let limit = usize::try_from(window.count()).unwrap_or(usize::MAX);
        let mut moved = 0;
        let consumer = Arc::clone(&window.consumer);
        self.read(&window, limit, |record| {
            let (trace, state) = codec::read(record);
            let decoded = wire::decode(record.payload().unwrap_or_default());
            let topic = record.topic().to_owned();
            let (partition, offset) = (record.partition(), record.offset());
            let consumer = Arc::clone(&consumer);
            let copy = (
                record.payload().map(<[u8]>::to_vec),
                codec::header_pairs(record)
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_vec()))
                    .collect::<Vec<_>>(),
            );
            if decoded.is_ok() {
                moved += 1;
            }
            async move {
                match decoded {
                    Ok(event) => {
                        let message = BusMessage::new(self.topics.requeue.as_str(), event)
                            .with_headers(trace);
                        let mut fresh = DeliveryState::first();
                        fresh.handlers = state.handlers;
                        self.bus
                            .forward(&self.topics.requeue, &message, &fresh)
                            .await?;
                    }
                    Err(_) => self.recopy(copy).await?,
                }
                move_cursor(&consumer, &topic, partition, offset + 1).await
            }
        })
        .await?;
        Ok(moved)
    }

    /// Deletes every dead letter (moves the cursor to the end); returns how many there were.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the cluster cannot be reached.
    pub async fn purge(&self) -> Result<u64, BusError> {
        let window = self.window().await?;
        for (partition, _, end) in &window.ranges {
            move_cursor(&window.consumer, &self.topics.dead, *partition, *end).await?;
        }
        Ok(window.count())
    }

    /// The dead letters' extent, through a consumer of the cursor group.
    async fn window(&self) -> Result<Window, BusError> {
        self.bus
            .ensure_topics(vec![self.topics.dead.clone()])
            .await?;
        let mut config = rdkafka::ClientConfig::new();
        config
            .set("group.id", format!("{}.dead-letters", self.topics.group_id))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest");
        self.bus.apply_settings(&mut config);
        let created = config.create().map_err(|e| self.bus.creation_failed(e))?;
        let consumer: Arc<StreamConsumer> = Arc::new(created);
        let topic = self.topics.dead.clone();
        let reading = Arc::clone(&consumer);
        let ranges = tokio::task::spawn_blocking(move || -> Result<_, BusError> {
            let metadata = reading
                .fetch_metadata(Some(&topic), CALL_TIMEOUT)
                .map_err(unavailable)?;
            let partitions: Vec<i32> = metadata
                .topics()
                .iter()
                .filter(|t| t.name() == topic)
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            let mut list = TopicPartitionList::new();
            for partition in &partitions {
                list.add_partition(&topic, *partition);
            }
            let committed = reading
                .committed_offsets(list, CALL_TIMEOUT)
                .map_err(unavailable)?;
            let mut ranges = Vec::new();
            for partition in partitions {
                let (low, high) = reading
                    .fetch_watermarks(&topic, partition, CALL_TIMEOUT)
                    .map_err(unavailable)?;
                let cursor = match committed
                    .find_partition(&topic, partition)
                    .map(|e| e.offset())
                {
                    Some(Offset::Offset(offset)) => offset.max(low),
                    _ => low,
                };
                ranges.push((partition, cursor, high));
            }
            Ok(ranges)
        })
        .await
        .map_err(BusError::unavailable)??;
        Ok(Window { consumer, ranges })
    }

    /// Reads up to `max` records of `window`, in order, handing each to `each`.
    async fn read<F, Fut>(&self, window: &Window, max: usize, mut each: F) -> Result<(), BusError>
    where
        F: FnMut(&BorrowedMessage<'_>) -> Fut,
        Fut: std::future::Future<Output = Result<(), BusError>>,
    {
        let mut left = max;
        for (partition, from, to) in &window.ranges {
            if left == 0 {
                break;
            }
            if from >= to {
                continue;
            }
            let mut list = TopicPartitionList::new();
            list.add_partition_offset(&self.topics.dead, *partition, Offset::Offset(*from))
                .map_err(unavailable)?;
            window.consumer.assign(&list).map_err(unavailable)?;
            let mut next = *from;
            while next < *to && left > 0 {
                let record = tokio::time::timeout(CALL_TIMEOUT, window.consumer.recv())
                    .await
                    .map_err(|_| BusError::unavailable("no dead letter came within 10 s"))?
                    .map_err(unavailable)?;
                next = record.offset() + 1;
                each(&record).await?;
                left -= 1;
            }
        }
        Ok(())
    }

    /// A dead-lettered record as an entry of [`list`](Self::list).
    fn entry(&self, record: &BorrowedMessage<'_>) -> DeadLetterEntry {
        let (trace, state) = codec::read(record);
        let body = record.payload().unwrap_or_default();
        match wire::decode(body) {
            Ok(event) => DeadLetterEntry::Failed(DeadLetter {
                message: BusMessage::new(self.topics.group_id.as_str(), event).with_headers(trace),
                handler: state.handlers.join(", "),
                attempts: state.attempt,
                error: state.error.unwrap_or_default(),
            }),
            Err(error) => DeadLetterEntry::Undecodable(UndecodableLetter::new(
                wire::read_message_id(codec::header_pairs(record)).map(|id| id.to_string()),
                body.to_vec(),
                state.error.unwrap_or_else(|| Chain(&error).to_string()),
            )),
        }
    }

    /// Appends a copy of an undecodable dead letter to the dead-letter topic.
    async fn recopy(&self, (payload, headers): RawRecord) -> Result<(), BusError> {
        let pairs = headers
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_slice()));
        let headers = codec::owned_headers(pairs);
        let producer = self.bus.producer()?;
        let mut record =
            rdkafka::producer::FutureRecord::<(), [u8]>::to(&self.topics.dead).headers(headers);
        if let Some(payload) = &payload {
            record = record.payload(payload);
        }
        let delivery = producer
            .send_result(record)
            .map_err(|(error, _)| unavailable(error))?;
        let deadline = self.bus.deadline();
        self.bus
            .delivered(&producer, delivery, uuid::Uuid::nil(), deadline)
            .await
    }
}

/// Commits the cursor group's `offset` for `partition` of `topic`, synchronously.
async fn move_cursor(
    consumer: &Arc<StreamConsumer>,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<(), BusError> {
    let consumer = Arc::clone(consumer);
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(&topic, partition, Offset::Offset(offset))
            .map_err(unavailable)?;
        consumer
            .commit(&list, CommitMode::Sync)
            .map_err(unavailable)
    })
    .await
    .map_err(BusError::unavailable)?
}

#[async_trait::async_trait]
impl crate::bus::DeadLetterQueue for DeadLetters {
    fn system(&self) -> &'static str {
        super::SYSTEM
    }

    fn location(&self) -> String {
        format!("topic {}", self.topics.dead)
    }

    /// Whether the group's dead-letter topic exists (created by the group's `declare` or
    /// first run), from the cluster's metadata: nothing is created.
    async fn group_exists(&self) -> Result<bool, BusError> {
        if let Some(refused) = refused_everywhere(&self.bus.shared.bootstrap).await {
            return Err(BusError::unavailable(refused));
        }
        let mut config = rdkafka::ClientConfig::new();
        self.bus.apply_settings(&mut config);
        let client: rdkafka::consumer::BaseConsumer =
            config.create().map_err(|e| self.bus.creation_failed(e))?;
        let dead = self.topics.dead.clone();
        tokio::task::spawn_blocking(move || {
            let metadata = client
                .fetch_metadata(None, CALL_TIMEOUT)
                .map_err(unavailable)?;
            Ok(metadata.topics().iter().any(|topic| topic.name() == dead))
        })
        .await
        .map_err(BusError::unavailable)?
    }

    async fn count(&self) -> Result<u64, BusError> {
        DeadLetters::count(self).await
    }

    async fn list(&self, max: usize) -> Result<Vec<DeadLetterEntry>, BusError> {
        DeadLetters::list(self, max).await
    }

    async fn requeue(&self) -> Result<u64, BusError> {
        DeadLetters::requeue(self).await.map(|moved| moved as u64)
    }

    async fn purge(&self) -> Result<u64, BusError> {
        DeadLetters::purge(self).await
    }
}
/// Why none of the bootstrap servers (`host:port,host:port`) can be used, when every one
/// refuses a TCP connection (nothing listens there): then the operator's tools say so at
/// once, naming the server, as RabbitMQ's and NATS's clients do; librdkafka would retry
/// for its whole timeout and then report a transport failure naming no server. `None`
/// when one accepts, or one cannot be told (a timeout, a name that does not resolve):
/// librdkafka has its say then.
async fn refused_everywhere(bootstrap: &str) -> Option<crate::bus::BrokerUnreachable> {
    let mut refused = None;
    for server in bootstrap
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let connect = tokio::net::TcpStream::connect(server);
        match tokio::time::timeout(Duration::from_secs(2), connect).await {
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                refused.get_or_insert((server.to_owned(), error));
            }
            _ => return None,
        }
    }
    let (server, error) = refused?;
    Some(crate::bus::BrokerUnreachable::new(
        crate::bus::UnavailableReason::ConnectionRefused,
        server,
        Some(Box::new(error)),
    ))
}
