//! [`StreamReader`]: one stream read a page at a time, for a reader going through all of it
//! (a repository replaying a long stream).

use async_trait::async_trait;

use super::{EventStore, StoreError};
use crate::event::{EventEnvelope, StreamId};

/// Reads one stream a page at a time, as [`EventStore::load_pages`] returns it.
///
/// Each [`next_page`](Self::next_page) returns what [`load_page`](EventStore::load_page)
/// would, asked for `page_size` events from the version after the last page's last event
/// (from the first version asked for, for the first page): the same events in the same
/// order, in the same `load` span. A page shorter than `page_size` is the stream's end, and
/// so is a longer one (the whole rest, from a store that does not read by pages); the pages
/// after the end are empty. After an error, the next page starts where that one did.
///
/// A store may read ahead (the PostgreSQL store streams the pages from one query), so a
/// reader may keep a database connection while it lives: drop it once read.
#[async_trait]
pub trait StreamReader: Send {
    /// The next page.
    ///
    /// # Errors
    /// As [`load_page`](EventStore::load_page).
    async fn next_page(&mut self) -> Result<Vec<EventEnvelope>, StoreError>;
}

/// The [`StreamReader`] of [`EventStore::load_pages`]'s provided method: one
/// [`load_page`](EventStore::load_page) per page.
///
/// ```
/// use eventsource_runtime::event::{NewEvent, StreamId};
/// use eventsource_runtime::store::{
///     EventStore, ExpectedVersion, InMemoryEventStore, LoadStreamReader, StreamReader,
/// };
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = InMemoryEventStore::new();
/// let events = (0..5).map(|n| NewEvent::new("Counted", 1, serde_json::json!({ "n": n })));
/// let stream = StreamId::new("Counter", "c-1");
/// store.append(&stream, ExpectedVersion::NoStream, events.collect()).await?;
///
/// let mut reader = LoadStreamReader::new(&store, &stream, 2, 2);
/// let versions = |page: Vec<eventsource_runtime::event::EventEnvelope>| {
///     page.iter().map(|event| event.version).collect::<Vec<_>>()
/// };
/// assert_eq!(versions(reader.next_page().await?), [2, 3]);
/// assert_eq!(versions(reader.next_page().await?), [4, 5]);
/// assert!(reader.next_page().await?.is_empty());
/// # Ok::<(), eventsource_runtime::store::StoreError>(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct LoadStreamReader<'a, S: ?Sized> {
    store: &'a S,
    stream: StreamId,
    /// The version the next page starts at; `None` once the stream's end was read.
    next: Option<u64>,
    page_size: usize,
}

impl<'a, S: EventStore + ?Sized> LoadStreamReader<'a, S> {
    /// Reads `stream` of `store` from `from_version` on, `page_size` events at a time (at
    /// least 1).
    #[must_use]
    pub fn new(store: &'a S, stream: &StreamId, from_version: u64, page_size: usize) -> Self {
        Self {
            store,
            stream: stream.clone(),
            next: Some(from_version),
            page_size: page_size.max(1),
        }
    }
}

#[async_trait]
impl<S: EventStore + ?Sized> StreamReader for LoadStreamReader<'_, S> {
    async fn next_page(&mut self) -> Result<Vec<EventEnvelope>, StoreError> {
        let Some(from) = self.next else {
            return Ok(Vec::new());
        };
        let page = self
            .store
            .load_page(&self.stream, from, self.page_size)
            .await?;
        self.next = page_after(&page, self.page_size);
        Ok(page)
    }
}

/// The version the page after `page` starts at, when `page` is full (`page_size` events);
/// `None` when it is the stream's end: shorter, or longer (the whole rest, from a store that
/// does not read by pages).
pub(crate) fn page_after(page: &[EventEnvelope], page_size: usize) -> Option<u64> {
    match page.last() {
        Some(last) if page.len() == page_size => Some(last.version + 1),
        _ => None,
    }
}
