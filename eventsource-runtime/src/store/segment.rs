//! Segments: one part of the global log, by a hash of each event's stream, so that a
//! projection can be split over several workers while each stream's events stay in version
//! order within one part.

use std::fmt;

use super::{BatchEnd, EventStore, ReadBatch, StoreError};
use crate::event::StreamId;

/// One of `count` parts of the global log: the events of the streams whose hash, taken
/// modulo `count`, is `index`. Every event of a stream is in the same segment, so a
/// segment's events come in each stream's version order. [`Segment::WHOLE`] (one segment
/// of one) is the whole log.
///
/// Which streams a segment holds is the store's choice, stable for that store: the
/// in-memory and SQLite stores hash the stream in Rust, the PostgreSQL store in SQL
/// (`hashtextextended`, stable across PostgreSQL versions on one platform), so an index
/// serves each segment's reads. Ask the store which segment holds a stream:
/// [`EventStore::segment_of`](super::EventStore::segment_of).
///
/// ```
/// use eventsource_runtime::event::{NewEvent, StreamId};
/// use eventsource_runtime::prelude::*;
/// use eventsource_runtime::store::Segment;
///
/// let third = Segment::new(2, 4).expect("index below count");
/// assert_eq!(third.to_string(), "2/4");
/// assert!(Segment::new(4, 4).is_none());
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = InMemoryEventStore::new();
/// let stream = StreamId::new("Order", "o-1");
/// let placed = NewEvent::new("OrderPlaced", 1, serde_json::json!({}));
/// store.append(&stream, ExpectedVersion::NoStream, vec![placed]).await?;
/// let segment = store.segment_of(&stream, 4).await?;
/// assert_eq!(store.read_segment(segment, 1, 10).await?.len(), 1);
/// # Ok::<(), eventsource_runtime::store::StoreError>(()) }).unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Segment {
    index: u32,
    count: u32,
}

impl Segment {
    /// The whole log: one segment of one.
    pub const WHOLE: Self = Self { index: 0, count: 1 };

    /// The most segments a log is split into.
    pub const MAX_COUNT: u32 = 1024;

    /// Segment `index` of `count`; `None` unless `index < count <= MAX_COUNT`.
    #[must_use]
    pub fn new(index: u32, count: u32) -> Option<Self> {
        (index < count && count <= Self::MAX_COUNT).then_some(Self { index, count })
    }

    /// The `count` segments of a log split in `count` (one at least, at most
    /// [`MAX_COUNT`](Self::MAX_COUNT)).
    #[must_use]
    pub fn all(count: u32) -> Vec<Self> {
        let count = count.clamp(1, Self::MAX_COUNT);
        (0..count).map(|index| Self { index, count }).collect()
    }

    /// Its number, from 0.
    #[must_use]
    pub fn index(self) -> u32 {
        self.index
    }

    /// How many segments the log is split into.
    #[must_use]
    pub fn count(self) -> u32 {
        self.count
    }

    /// Whether this is the whole log.
    #[must_use]
    pub fn is_whole(self) -> bool {
        self.count == 1
    }

    /// The segment of `count` that holds `stream` in the stores that hash in Rust (the
    /// in-memory and SQLite stores): 64-bit FNV-1a of the stream's type and id.
    #[must_use]
    #[deprecated(
        since = "0.1.0",
        note = "the PostgreSQL store assigns streams otherwise: ask the store, \
                `EventStore::segment_of`"
    )]
    pub fn of(stream: &StreamId, count: u32) -> Self {
        Self::hashed(stream, count)
    }

    /// Whether `stream`'s events are in this segment in the stores that hash in Rust (as
    /// [`of`](Self::of) says).
    #[must_use]
    #[deprecated(
        since = "0.1.0",
        note = "the PostgreSQL store assigns streams otherwise: compare with the store's \
                `EventStore::segment_of`"
    )]
    pub fn holds(self, stream: &StreamId) -> bool {
        self.holds_hashed(stream)
    }

    /// The segment of `count` holding `stream` by the hash in Rust: 64-bit FNV-1a of the
    /// stream's type and id (the in-memory and SQLite stores', and the default
    /// [`EventStore::segment_of`](super::EventStore::segment_of)'s).
    pub(crate) fn hashed(stream: &StreamId, count: u32) -> Self {
        let count = count.clamp(1, Self::MAX_COUNT);
        let hash = fnv1a(&[stream.aggregate_type(), stream.aggregate_id()]);
        let index = u32::try_from(hash % u64::from(count)).unwrap_or(0);
        Self { index, count }
    }

    /// Whether `stream`'s events are in this segment by the hash in Rust.
    pub(crate) fn holds_hashed(self, stream: &StreamId) -> bool {
        self.is_whole() || Self::hashed(stream, self.count) == self
    }

    /// The name a projection's checkpoint has for this segment: the projection's own for
    /// the whole log, `{projection}[{index}/{count}]` for a segment.
    #[must_use]
    pub fn checkpoint_name(self, projection: &str) -> String {
        if self.is_whole() {
            projection.to_owned()
        } else {
            format!("{projection}[{self}]")
        }
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// [`EventStore::read_segment`]'s default: the log read a batch of `limit` at a time, the
/// segment's events kept.
pub(crate) async fn filtered<S: EventStore + ?Sized>(
    store: &S,
    segment: Segment,
    from_position: u64,
    limit: usize,
) -> Result<ReadBatch, StoreError> {
    if segment.is_whole() {
        return store.read_all(from_position, limit).await;
    }
    let limit = limit.max(1);
    let mut found = Vec::new();
    let mut from = from_position;
    loop {
        let page = store.read_all(from, limit).await?;
        let next = page.next_position(from);
        let (events, end) = page.into_parts();
        found.extend(
            events
                .into_iter()
                .filter(|e| segment.holds_hashed(&e.stream)),
        );
        match end {
            BatchEnd::Unreadable(error) => return Ok(ReadBatch::unreadable(found, error)),
            // A store whose positions went back would loop forever: stop there.
            BatchEnd::Limit if found.len() < limit && next > from => from = next,
            _ => {
                found.truncate(limit);
                return Ok(ReadBatch::new(found, limit));
            }
        }
    }
}

/// 64-bit FNV-1a of `parts`, a 0 byte between them.
fn fnv1a(parts: &[&str]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hash = hash.wrapping_mul(PRIME);
        }
        for byte in part.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stream_is_in_exactly_one_segment_and_they_spread() {
        let mut sizes = [0_u32; 8];
        for n in 0..800 {
            let stream = StreamId::new("Order", format!("o-{n}"));
            let holding: Vec<_> = Segment::all(8)
                .into_iter()
                .filter(|segment| segment.holds_hashed(&stream))
                .collect();
            assert_eq!(holding.len(), 1);
            sizes[holding[0].index() as usize] += 1;
        }
        assert!(
            sizes.iter().all(|&size| (60..=140).contains(&size)),
            "{sizes:?}"
        );
    }

    #[test]
    fn checkpoint_names_keep_the_whole_logs_name() {
        assert_eq!(Segment::WHOLE.checkpoint_name("orders"), "orders");
        let segment = Segment::new(3, 16).unwrap();
        assert_eq!(segment.checkpoint_name("orders"), "orders[3/16]");
    }
}
