//! A consumer group's dead letters: list, count, move back, purge, from Rust (no `nats`
//! command line needed).

use async_nats::jetstream::consumer::pull::Config as PullConfig;
use async_nats::jetstream::consumer::{AckPolicy, Consumer, DeliverPolicy};
use async_nats::jetstream::stream::Stream;
use async_nats::jetstream::{Context, Message};
use futures_util::StreamExt as _;

use super::codec;
use super::error::unavailable;
use super::topology::GroupNames;
use super::{NatsBus, publish_copy, subject};
use crate::bus::wire::{self, DeliveryState};
use crate::bus::{BusError, BusMessage, DeadLetter, DeadLetterEntry, UndecodableLetter};
use crate::telemetry::values::Chain;

/// How many dead letters one read brings in when moving them back.
const PAGE: usize = 64;

/// The dead letters of one [`ConsumerGroup`](super::ConsumerGroup): messages a handler
/// failed on at every allowed delivery, each with the handlers that failed and the last
/// error, and messages that are not stored events, with the reason. They are kept on the
/// group's subject of the dead-letter stream (`{prefix}-dead.{group}` on `{stream}_DEAD`).
///
/// ```no_run
/// # async fn run(group: eventsource_runtime::nats::ConsumerGroup) -> Result<(), eventsource_runtime::bus::BusError> {
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
    bus: NatsBus,
    names: GroupNames,
}

impl DeadLetters {
    pub(super) fn new(bus: NatsBus, names: GroupNames) -> Self {
        Self { bus, names }
    }

    /// The subject the group's dead letters are kept on.
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.names.dead_subject
    }

    /// The dead-letter stream, declared.
    async fn stream(&self) -> Result<(Context, Stream), BusError> {
        let context = self.bus.context().await?;
        let streams = &self.bus.shared.streams;
        streams.declare(&context).await?;
        let stream = context
            .get_stream(&streams.dead)
            .await
            .map_err(unavailable)?;
        Ok((context, stream))
    }

    /// A reader of the group's dead letters, oldest first (an ephemeral consumer that
    /// acknowledges nothing: the letters stay).
    async fn reader(&self, stream: &Stream) -> Result<Consumer<PullConfig>, BusError> {
        let config = PullConfig {
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            filter_subject: self.names.dead_subject.clone(),
            inactive_threshold: std::time::Duration::from_secs(30),
            ..PullConfig::default()
        };
        stream.create_consumer(config).await.map_err(unavailable)
    }

    /// Deletes the reader (it would go by itself after a while).
    async fn drop_reader(stream: &Stream, reader: &Consumer<PullConfig>) {
        let _ = stream.delete_consumer(&reader.cached_info().name).await;
    }

    /// Up to `max` dead letters after those `reader` read.
    async fn read(reader: &Consumer<PullConfig>, max: usize) -> Result<Vec<Message>, BusError> {
        let mut batch = reader
            .fetch()
            .max_messages(max)
            .messages()
            .await
            .map_err(unavailable)?;
        let mut messages = Vec::new();
        while let Some(message) = batch.next().await {
            messages.push(message.map_err(BusError::Unavailable)?);
        }
        Ok(messages)
    }

    /// How many messages are dead-lettered.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the server cannot be reached.
    pub async fn count(&self) -> Result<u32, BusError> {
        let (_, stream) = self.stream().await?;
        let mut reader = self.reader(&stream).await?;
        let pending = reader.info().await.map(|info| info.num_pending);
        Self::drop_reader(&stream, &reader).await;
        let pending = pending.map_err(unavailable)?;
        Ok(u32::try_from(pending).unwrap_or(u32::MAX))
    }

    /// The first `max` dead letters, oldest first, left in place: the messages a handler
    /// failed on, and those whose body is not a stored event, with the reason.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the server cannot be reached.
    pub async fn list(&self, max: usize) -> Result<Vec<DeadLetterEntry>, BusError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let (_, stream) = self.stream().await?;
        let reader = self.reader(&stream).await?;
        let read = Self::read(&reader, max).await;
        Self::drop_reader(&stream, &reader).await;
        Ok(read?.iter().map(|message| self.entry(message)).collect())
    }

    /// A dead letter as an entry of [`list`](Self::list).
    fn entry(&self, message: &Message) -> DeadLetterEntry {
        let (trace, state) = codec::read_headers(message.headers.as_ref());
        match wire::decode(&message.payload) {
            Ok(event) => DeadLetterEntry::Failed(DeadLetter {
                message: BusMessage::new(subject(self.bus.subject_prefix(), &event), event)
                    .with_headers(trace),
                handler: state.handlers.join(", "),
                attempts: state.attempt,
                error: state.error.unwrap_or_default(),
            }),
            Err(error) => {
                let pairs = codec::pairs(message.headers.as_ref());
                let id = wire::read_message_id(pairs.iter().copied())
                    .map(|id| id.to_string())
                    .or_else(|| {
                        let headers = message.headers.as_ref()?;
                        let id = headers.get(async_nats::header::NATS_MESSAGE_ID)?;
                        Some(id.as_str().to_owned())
                    });
                DeadLetterEntry::Undecodable(UndecodableLetter::new(
                    id,
                    message.payload.to_vec(),
                    state.error.unwrap_or_else(|| Chain(&error).to_string()),
                ))
            }
        }
    }

    /// Moves every dead letter back to the group, for the handlers that failed on it, with
    /// a fresh budget of deliveries; returns how many moved. Each copy is acknowledged by
    /// JetStream on the group's retry subject before the dead letter is deleted. Messages
    /// that are not stored events stay.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the server cannot be reached; the messages moved
    /// before the failure stay moved.
    pub async fn requeue(&self) -> Result<usize, BusError> {
        let (context, stream) = self.stream().await?;
        let reader = self.reader(&stream).await?;
        let moved = self.move_back(&context, &stream, &reader).await;
        Self::drop_reader(&stream, &reader).await;
        moved
    }

    async fn move_back(
        &self,
        context: &Context,
        stream: &Stream,
        reader: &Consumer<PullConfig>,
    ) -> Result<usize, BusError> {
        let mut moved = 0;
        loop {
            let page = Self::read(reader, PAGE).await?;
            if page.is_empty() {
                return Ok(moved);
            }
            for letter in page {
                let Ok(event) = wire::decode(&letter.payload) else {
                    // Not a stored event: it stays a dead letter.
                    continue;
                };
                let sequence = letter
                    .info()
                    .map_err(BusError::Unavailable)?
                    .stream_sequence;
                let (trace, state) = codec::read_headers(letter.headers.as_ref());
                let message = BusMessage::new(subject(self.bus.subject_prefix(), &event), event)
                    .with_headers(trace);
                let fresh = DeliveryState {
                    attempt: 1,
                    handlers: state.handlers,
                    error: None,
                };
                let retry = &self.names.retry_subject;
                publish_copy(&self.bus, context, retry, &message, &fresh).await?;
                stream.delete_message(sequence).await.map_err(unavailable)?;
                moved += 1;
            }
        }
    }

    /// Deletes every dead letter; returns how many there were.
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when the server cannot be reached.
    pub async fn purge(&self) -> Result<u32, BusError> {
        let (_, stream) = self.stream().await?;
        let purged = stream
            .purge()
            .filter(self.names.dead_subject.as_str())
            .await
            .map_err(unavailable)?;
        Ok(u32::try_from(purged.purged).unwrap_or(u32::MAX))
    }
}

#[async_trait::async_trait]
impl crate::bus::DeadLetterQueue for DeadLetters {
    fn system(&self) -> &'static str {
        super::SYSTEM
    }

    fn location(&self) -> String {
        format!(
            "subject {} of stream {}",
            self.names.dead_subject, self.bus.shared.streams.dead
        )
    }

    /// Whether the group's durable consumer exists on the live stream: nothing is created.
    async fn group_exists(&self) -> Result<bool, BusError> {
        use async_nats::jetstream::ErrorCode;
        use async_nats::jetstream::context::{ConsumerInfoErrorKind, GetStreamErrorKind};

        let context = self.bus.context().await?;
        let stream = match context.get_stream(&self.bus.shared.streams.live).await {
            Ok(stream) => stream,
            Err(error) => {
                return match error.kind() {
                    GetStreamErrorKind::JetStream(inner)
                        if inner.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                    {
                        Ok(false)
                    }
                    _ => Err(unavailable(error)),
                };
            }
        };
        match stream.consumer_info(&self.names.durable).await {
            Ok(_) => Ok(true),
            Err(error)
                if matches!(
                    error.kind(),
                    ConsumerInfoErrorKind::NotFound | ConsumerInfoErrorKind::StreamNotFound
                ) =>
            {
                Ok(false)
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn count(&self) -> Result<u64, BusError> {
        DeadLetters::count(self).await.map(u64::from)
    }

    async fn list(&self, max: usize) -> Result<Vec<DeadLetterEntry>, BusError> {
        DeadLetters::list(self, max).await
    }

    async fn requeue(&self) -> Result<u64, BusError> {
        DeadLetters::requeue(self).await.map(|moved| moved as u64)
    }

    async fn purge(&self) -> Result<u64, BusError> {
        DeadLetters::purge(self).await.map(u64::from)
    }
}
