//! [`LogReader`]: the global log read a batch at a time, for a reader going through much
//! of it (a projection catching up).

use async_trait::async_trait;

use super::{EventStore, ReadBatch, StoreError};

/// Reads the global log a batch at a time, from a position on, as
/// [`EventStore::read_all_batches`] returns it.
///
/// Each [`next_batch`](Self::next_batch) returns what
/// [`read_all`](EventStore::read_all) would, asked for `batch_size` events from the
/// position after the last batch's last event (from the first position for the first
/// batch): the same events in the same order, ended for the same reason ([`BatchEnd`]), in
/// the same `read_all` span. After an error, or a batch ended by an unreadable event, the
/// next batch starts where that one did not get past (the unreadable event's read fails
/// again); after a batch that reached the head, it reads from the head again.
///
/// A store may read the batches ahead of time (the PostgreSQL store streams them from one
/// query), so a reader keeps a database connection while it lives: drop it once caught up.
///
/// [`BatchEnd`]: super::BatchEnd
#[async_trait]
pub trait LogReader: Send {
    /// The next batch.
    ///
    /// # Errors
    /// As [`read_all`](EventStore::read_all).
    async fn next_batch(&mut self) -> Result<ReadBatch, StoreError>;
}

/// The [`LogReader`] of [`EventStore::read_all_batches`]'s provided method: one
/// [`read_all`](EventStore::read_all) per batch.
///
/// ```
/// use eventsource_runtime::event::{NewEvent, StreamId};
/// use eventsource_runtime::store::{
///     EventStore, ExpectedVersion, InMemoryEventStore, LogReader, ReadAllLogReader,
/// };
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = InMemoryEventStore::new();
/// let events = (0..5).map(|n| NewEvent::new("Counted", 1, serde_json::json!({ "n": n })));
/// let stream = StreamId::new("Counter", "c-1");
/// store.append(&stream, ExpectedVersion::NoStream, events.collect()).await?;
///
/// let mut reader = ReadAllLogReader::new(&store, 2, 2);
/// let positions = |batch: eventsource_runtime::store::ReadBatch| {
///     batch.iter().map(|event| event.position).collect::<Vec<_>>()
/// };
/// assert_eq!(positions(reader.next_batch().await?), [2, 3]);
/// assert_eq!(positions(reader.next_batch().await?), [4, 5]);
/// assert!(reader.next_batch().await?.reached_head());
/// # Ok::<(), eventsource_runtime::store::StoreError>(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct ReadAllLogReader<'a, S: ?Sized> {
    store: &'a S,
    next: u64,
    batch_size: usize,
}

impl<'a, S: EventStore + ?Sized> ReadAllLogReader<'a, S> {
    /// Reads `store` from `from_position` on, `batch_size` events at a time (at least 1).
    #[must_use]
    pub fn new(store: &'a S, from_position: u64, batch_size: usize) -> Self {
        Self {
            store,
            next: from_position,
            batch_size: batch_size.max(1),
        }
    }
}

#[async_trait]
impl<S: EventStore + ?Sized> LogReader for ReadAllLogReader<'_, S> {
    async fn next_batch(&mut self) -> Result<ReadBatch, StoreError> {
        let batch = self.store.read_all(self.next, self.batch_size).await?;
        self.next = batch.next_position(self.next);
        Ok(batch)
    }
}
