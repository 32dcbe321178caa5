//! [`ReadBatch`]: what one [`read_all`](super::EventStore::read_all) returned, and why it
//! ended where it did.

use std::ops::Deref;

use super::StoreError;
use crate::event::EventEnvelope;

/// The events one [`read_all`](super::EventStore::read_all) returned, in global order, and
/// why the batch ended there.
///
/// A batch shorter than the limit does not mean the log ended: an unreadable stored event
/// ends a batch too. [`end`](Self::end) says which, so a reader looping until the end of the
/// log stops for the right reason:
///
/// ```
/// use eventsource_runtime::event::{NewEvent, StreamId};
/// use eventsource_runtime::store::{BatchEnd, EventStore, ExpectedVersion, InMemoryEventStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = InMemoryEventStore::new();
/// let stream = StreamId::new("Account", "a-1");
/// let events = (0..5).map(|i| NewEvent::new("Deposited", 1, serde_json::json!({ "amount": i })));
/// store.append(&stream, ExpectedVersion::NoStream, events.collect()).await?;
///
/// let mut position = 1;
/// let mut read = 0;
/// loop {
///     let batch = store.read_all(position, 2).await?;
///     read += batch.len();
///     position = batch.next_position(position);
///     match batch.end() {
///         BatchEnd::Limit => continue,
///         BatchEnd::Head => break,
///         BatchEnd::Unreadable(error) => return Err(format!("stopped early: {error}").into()),
///         _ => unreachable!("a future end of batch"),
///     }
/// }
/// assert_eq!(read, 5);
/// # Ok(())
/// # }
/// ```
///
/// It reads as a slice of its events (`batch.len()`, `batch.iter()`, `batch[0]`), and
/// iterates them by value; [`into_events`](Self::into_events) gives the `Vec`.
#[derive(Debug)]
#[non_exhaustive]
pub struct ReadBatch {
    events: Vec<EventEnvelope>,
    end: BatchEnd,
}

/// Why a [`ReadBatch`] ended where it did.
#[derive(Debug)]
#[non_exhaustive]
pub enum BatchEnd {
    /// The batch holds as many events as asked for: more may follow.
    Limit,
    /// The batch holds every event stored, from the position asked for on, when it was
    /// read: the reader has caught up.
    Head,
    /// The event after the batch cannot be read back. Reading from it fails with this
    /// error (a [`StoreError::Corrupt`] naming its position) until it is repaired; a
    /// [projection runner](crate::projection::runner) stops there or parks it.
    Unreadable(StoreError),
}

impl ReadBatch {
    /// A batch of `events` read with `limit`: it ended at the [`Limit`](BatchEnd::Limit)
    /// when it holds `limit` events, else at the [`Head`](BatchEnd::Head) of the log.
    #[must_use]
    pub fn new(events: Vec<EventEnvelope>, limit: usize) -> Self {
        let end = if events.len() >= limit {
            BatchEnd::Limit
        } else {
            BatchEnd::Head
        };
        Self { events, end }
    }

    /// A batch of `events` ended by the unreadable event after them (`error`, a
    /// [`StoreError::Corrupt`]).
    #[must_use]
    pub fn unreadable(events: Vec<EventEnvelope>, error: StoreError) -> Self {
        Self {
            events,
            end: BatchEnd::Unreadable(error),
        }
    }

    /// Why the batch ended.
    #[must_use]
    pub fn end(&self) -> &BatchEnd {
        &self.end
    }

    /// Whether the batch reached the head of the log (a reader has caught up).
    #[must_use]
    pub fn reached_head(&self) -> bool {
        matches!(self.end, BatchEnd::Head)
    }

    /// The events.
    #[must_use]
    pub fn events(&self) -> &[EventEnvelope] {
        &self.events
    }

    /// The events, owned.
    #[must_use]
    pub fn into_events(self) -> Vec<EventEnvelope> {
        self.events
    }

    /// The events and why the batch ended.
    #[must_use]
    pub fn into_parts(self) -> (Vec<EventEnvelope>, BatchEnd) {
        (self.events, self.end)
    }

    /// Where the next read starts: after the batch's last event, or at `from_position`
    /// (the position this batch was read from) when it is empty.
    #[must_use]
    pub fn next_position(&self, from_position: u64) -> u64 {
        self.events
            .last()
            .map_or(from_position, |last| last.position + 1)
    }
}

impl Deref for ReadBatch {
    type Target = [EventEnvelope];

    fn deref(&self) -> &[EventEnvelope] {
        &self.events
    }
}

impl IntoIterator for ReadBatch {
    type Item = EventEnvelope;
    type IntoIter = std::vec::IntoIter<EventEnvelope>;

    fn into_iter(self) -> Self::IntoIter {
        self.events.into_iter()
    }
}

impl<'a> IntoIterator for &'a ReadBatch {
    type Item = &'a EventEnvelope;
    type IntoIter = std::slice::Iter<'a, EventEnvelope>;

    fn into_iter(self) -> Self::IntoIter {
        self.events.iter()
    }
}

impl From<ReadBatch> for Vec<EventEnvelope> {
    fn from(batch: ReadBatch) -> Self {
        batch.events
    }
}

/// A batch equals a list of events when it holds exactly those, whatever ended it.
impl PartialEq<Vec<EventEnvelope>> for ReadBatch {
    fn eq(&self, other: &Vec<EventEnvelope>) -> bool {
        self.events == *other
    }
}

/// A list of events equals a batch that holds exactly those, whatever ended it.
impl PartialEq<ReadBatch> for Vec<EventEnvelope> {
    fn eq(&self, other: &ReadBatch) -> bool {
        *self == other.events
    }
}
