//! Event stores: append-only logs of streams with optimistic concurrency.
//!
//! Every store implements [`EventStore`] with the same semantics (checked by the suite
//! `testing::conformance::events`, feature `testing`, which a store of your own can run):
//! - each stream's versions start at 1 and have no gap;
//! - an append states the version it expects the stream to be at and is all-or-nothing;
//! - the global position increases with every appended event, across all streams.
//!
//! The [`InMemoryEventStore`] is here; the SQLite and PostgreSQL stores live in their
//! databases' modules (`eventsource_runtime::sqlite`, `eventsource_runtime::postgres`).
//! [`instrument`] gives any store the contract's spans, [`StoreTelemetry`] holds its
//! telemetry settings, and [`WithStoreTelemetry`] (in the prelude) gives every store,
//! snapshot stores too, the same builders over them.
//!
//! Two readers, one word each: the global *log* is read in *batches* by a [`LogReader`]
//! ([`EventStore::read_all_batches`]), one aggregate's *stream* in *pages* by a
//! [`StreamReader`] ([`EventStore::load_pages`]). A store with faster readers of its own
//! keeps them in `log_reader.rs` and `stream_reader.rs` of its module, as the PostgreSQL
//! and SQLite stores do.

pub(crate) mod at_once;
pub(crate) mod backend;
mod batch;
pub mod instrument;
mod log_reader;
mod mark_holder;
mod memory;
pub(crate) mod outgoing;
mod segment;
pub(crate) mod settings;
pub(crate) mod stream_reader;

use std::fmt;

use async_trait::async_trait;

use crate::event::{EventEnvelope, NewEvent, StreamId};

pub use batch::{BatchEnd, ReadBatch};
pub use log_reader::{LogReader, ReadAllLogReader};
pub use mark_holder::{MARK_HELD_WARN_AFTER, MarkHolder};
pub use memory::InMemoryEventStore;
pub use segment::Segment;
pub use stream_reader::{LoadStreamReader, StreamReader};

/// The `limit` of a [`read_all`](EventStore::read_all) that wants every event from its
/// position on: `store.read_all(1, store::UNBOUNDED)`. Its span records no
/// `eventsource.limit`.
pub const UNBOUNDED: usize = usize::MAX;
pub use settings::{StoreSpanNames, StoreTelemetry, WithStoreTelemetry};

/// The version an append expects the stream to be at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedVersion {
    /// No check: append after whatever is there.
    Any,
    /// The stream must not exist yet (have no event).
    NoStream,
    /// The stream's last event must have exactly this version (0 means no event yet).
    Exact(u64),
}

impl ExpectedVersion {
    /// The expectation that matches a stream at `version` (0 meaning none).
    #[must_use]
    pub fn from_version(version: u64) -> Self {
        if version == 0 {
            Self::NoStream
        } else {
            Self::Exact(version)
        }
    }

    /// Whether a stream currently at `actual` satisfies the expectation.
    #[must_use]
    pub fn matches(self, actual: u64) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => actual == 0,
            Self::Exact(expected) => actual == expected,
        }
    }

    /// Checks a stream of `stream` currently at `actual` against the expectation.
    ///
    /// # Errors
    /// The [`VersionConflict`] to report when the expectation fails.
    pub fn check(self, stream: &StreamId, actual: u64) -> Result<(), VersionConflict> {
        if self.matches(actual) {
            Ok(())
        } else {
            Err(VersionConflict {
                stream: stream.clone(),
                expected: self,
                actual,
            })
        }
    }

    /// The expected version as a number for telemetry: -1 for `Any`, 0 for `NoStream`.
    #[must_use]
    pub fn as_i64(self) -> i64 {
        match self {
            Self::Any => -1,
            Self::NoStream => 0,
            Self::Exact(v) => i64::try_from(v).unwrap_or(i64::MAX),
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any version"),
            Self::NoStream => f.write_str("no stream"),
            Self::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// Another writer got there first: the stream is not at the expected version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("version conflict on {stream}: expected {expected}, stream is at version {actual}")]
pub struct VersionConflict {
    /// The stream appended to.
    pub stream: StreamId,
    /// What the append expected.
    pub expected: ExpectedVersion,
    /// The stream's actual version (0: no event).
    pub actual: u64,
}

/// What a store can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Optimistic concurrency check failed; nothing was appended.
    #[error(transparent)]
    Conflict(#[from] VersionConflict),
    /// A stored event cannot be read back (its stored form is damaged).
    #[error(
        "stored event {stream} version {version} at position {position} is unreadable: {reason}"
    )]
    Corrupt {
        /// The event's stream.
        stream: StreamId,
        /// The event's version.
        version: u64,
        /// The event's global position (0 when even that cannot be read).
        position: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A stream id the stores refuse: its aggregate type or id contains a NUL character,
    /// which PostgreSQL cannot hold, so no store takes it (the same rule everywhere, so
    /// code tested on one store behaves alike on another). Nothing was read or written;
    /// trying again fails the same way, so it is not transient.
    #[error("invalid stream id \"{}\": {reason}", .stream.to_string().escape_debug())]
    InvalidStreamId {
        /// The stream as given.
        stream: StreamId,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A checkpoint was not saved because the projection's lease is lost (its session
    /// ended): another runner may hold the projection now. See
    /// [`CheckpointStore::save_leased`](crate::projection::checkpoint::CheckpointStore::save_leased).
    #[error("the lease on projection `{projection}` is lost")]
    LeaseLost {
        /// The projection's name.
        projection: String,
    },
    /// An event's payload or metadata could not be serialized; nothing was appended.
    #[error("event of type `{event_type}` cannot be serialized")]
    Serialize {
        /// The event's type name.
        event_type: String,
        /// What serde reported.
        #[source]
        source: serde_json::Error,
    },
    /// The store cannot do what was asked (a store of your own that does not implement an
    /// optional operation, such as listing every checkpoint); nothing was read or written.
    #[error("this store cannot {operation}")]
    Unsupported {
        /// What was asked, e.g. `list checkpoints`.
        operation: &'static str,
    },
    /// The backend failed (connection lost, disk full, ...); nothing was appended.
    #[error("event store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What a successful append returns.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendResult {
    /// The stream's version after the append (that of its last event).
    pub version: u64,
    /// The appended events as stored, with version and global position assigned.
    pub events: Vec<EventEnvelope>,
}

/// An append-only event store. Object safe: use it as `Arc<dyn EventStore>`.
#[async_trait]
#[auto_impl::auto_impl(Arc)]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream` if it is at the `expected` version, all or nothing.
    ///
    /// Appending no event checks the expectation and returns the current version.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] with the actual version when the expectation fails;
    /// [`StoreError::InvalidStreamId`] for a stream id no store takes (a NUL character);
    /// [`StoreError::Unavailable`] when the backend does.
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError>;

    /// The events of `stream` whose version is `from_version` or later, in version order
    /// (empty for a stream that does not exist).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for an unreadable stored event, [`StoreError::InvalidStreamId`]
    /// for a stream id no store takes (a NUL character), [`StoreError::Unavailable`].
    async fn load(
        &self,
        stream: &StreamId,
        from_version: u64,
    ) -> Result<Vec<EventEnvelope>, StoreError>;

    /// One page of [`load`](Self::load): up to `limit` events of `stream` whose version is
    /// `from_version` or later, in version order, so that a long stream is read (and
    /// applied) a page at a time instead of whole. The next page starts at the version after
    /// the last event's; the stream ends at a page shorter than `limit`. A page longer than
    /// `limit` holds the rest of the stream: the provided method, for a store that does not
    /// read by pages, returns [`load`](Self::load)'s events, all of them. The crate's stores
    /// read `limit` events at most.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    async fn load_page(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        let _ = limit;
        self.load(stream, from_version).await
    }

    /// Reads `stream` from `from_version` on a page of `page_size` events at a time: each
    /// page what [`load_page`](Self::load_page) returns from the version after the last
    /// page's (see [`StreamReader`]). A repository replays a stream longer than a page this
    /// way.
    ///
    /// The provided method calls [`load_page`](Self::load_page) for each page
    /// ([`LoadStreamReader`]); the PostgreSQL store reads the pages from one query, so
    /// the next page's rows arrive while the last one is applied.
    ///
    /// ```
    /// use eventsource_runtime::event::{NewEvent, StreamId};
    /// use eventsource_runtime::store::{EventStore, ExpectedVersion, InMemoryEventStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = InMemoryEventStore::new();
    /// let events = (0..10).map(|n| NewEvent::new("Counted", 1, serde_json::json!({ "n": n })));
    /// let stream = StreamId::new("Counter", "c-1");
    /// store.append(&stream, ExpectedVersion::NoStream, events.collect()).await?;
    ///
    /// let mut pages = store.load_pages(&stream, 1, 4);
    /// let mut sizes = Vec::new();
    /// loop {
    ///     let page = pages.next_page().await?;
    ///     sizes.push(page.len());
    ///     if page.len() < 4 {
    ///         break; // the stream's end
    ///     }
    /// }
    /// assert_eq!(sizes, [4, 4, 2]);
    /// # Ok(())
    /// # }
    /// ```
    fn load_pages(
        &self,
        stream: &StreamId,
        from_version: u64,
        page_size: usize,
    ) -> Box<dyn StreamReader + '_> {
        Box::new(LoadStreamReader::new(self, stream, from_version, page_size))
    }

    /// Up to `limit` events of all streams whose global position is `from_position` or later,
    /// in global order ([`UNBOUNDED`] for all of them: the read span then records no
    /// limit).
    ///
    /// The batch says why it ended ([`BatchEnd`]): at the limit, at the head of the log,
    /// or before an unreadable stored event. In the last case the events before it are
    /// returned with its [`StoreError::Corrupt`], which names its position, and the next
    /// read (starting at it) fails with that error. A reader thus gets every good event up
    /// to a damaged one, and can then decide what to do with it (a
    /// [projection runner](crate::projection::runner) stops or parks it). Every store of
    /// this crate follows this rule.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when the first event asked for is unreadable,
    /// [`StoreError::Unavailable`].
    async fn read_all(&self, from_position: u64, limit: usize) -> Result<ReadBatch, StoreError>;

    /// Up to `limit` events of `segment` (the streams it holds, see [`Segment`]) whose
    /// global position is `from_position` or later, in global order, as
    /// [`read_all`](Self::read_all) reads the whole log: the same rules for the end of a
    /// batch and for unreadable events, the same span. For a projection split into
    /// segments ([`SegmentedRunner`](crate::projection::segments::SegmentedRunner)).
    ///
    /// [`Segment::WHOLE`] reads [`read_all`](Self::read_all). For other segments this
    /// default, for a store of your own and the SQLite store, reads the log a batch of
    /// `limit` at a time and keeps the segment's events (those of the streams the default
    /// [`segment_of`](Self::segment_of) puts in it: override both or neither); an
    /// unreadable event ends the batch in every segment, since its stream is unknown. The
    /// in-memory store scans its rows without copying the other segments' events; the
    /// PostgreSQL store reads only the segment's rows, through an index
    /// ([`prepare_segments`](Self::prepare_segments)).
    ///
    /// # Errors
    /// As [`read_all`](Self::read_all).
    async fn read_segment(
        &self,
        segment: Segment,
        from_position: u64,
        limit: usize,
    ) -> Result<ReadBatch, StoreError> {
        segment::filtered(self, segment, from_position, limit).await
    }

    /// The segment of a log split into `count` segments (1 to [`Segment::MAX_COUNT`]) that
    /// holds `stream`'s events, as this store assigns streams: the segment whose
    /// [`read_segment`](Self::read_segment) returns them. The PostgreSQL store asks the
    /// database (its `eventsource_segment` function, a hash in SQL); this default, which the
    /// in-memory and SQLite stores use, hashes in Rust (64-bit FNV-1a of the stream's type
    /// and id), as the default `read_segment` filters. The two hashes differ: ask the store
    /// that holds the events.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database cannot be asked.
    async fn segment_of(&self, stream: &StreamId, count: u32) -> Result<Segment, StoreError> {
        Ok(Segment::hashed(stream, count))
    }

    /// Makes [`read_segment`](Self::read_segment) for logs split into `count` segments
    /// fast, where the store can: the PostgreSQL store creates an index for that count
    /// (`events_segments_{count}`, once, on a large table at the cost of building it).
    /// This default does nothing. A [`SegmentedRunner`](crate::projection::segments::SegmentedRunner)
    /// calls it as it starts.
    ///
    /// # Errors
    /// The store's, such as [`StoreError::Unavailable`] for a role without the privilege
    /// (a runner then logs a warning and reads without the index).
    async fn prepare_segments(&self, count: u32) -> Result<(), StoreError> {
        let _ = count;
        Ok(())
    }

    /// The stream's current version (0 when it has no event).
    ///
    /// # Errors
    /// [`StoreError::InvalidStreamId`], [`StoreError::Unavailable`].
    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError>;

    /// The events whose correlation id ([`Metadata::CORRELATION_ID`]) is `correlation_id`,
    /// in global order: everything one request caused that this store holds (see
    /// [`lineage`](crate::lineage), which draws them as a tree).
    ///
    /// The stores of this crate answer from an index (SQLite and PostgreSQL: on the
    /// metadata's `correlation_id`), under the span `eventsource.event_store.events_by_correlation`.
    /// This default, for a store of your own, reads the whole store through
    /// [`read_all`](Self::read_all), a page at a time, and keeps the matching events.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for an unreadable stored event (the default reads every
    /// one), [`StoreError::Unavailable`].
    ///
    /// [`Metadata::CORRELATION_ID`]: crate::event::Metadata::CORRELATION_ID
    async fn events_by_correlation(
        &self,
        correlation_id: &str,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        let mut found = Vec::new();
        let mut from = 1;
        loop {
            let page = self.read_all(from, CORRELATION_SCAN_PAGE).await?;
            let Some(last) = page.last() else {
                return Ok(found);
            };
            // A store whose positions went back would loop forever: stop there instead.
            let next = last.position.saturating_add(1);
            let done = next <= from || page.reached_head();
            from = next;
            let matching = page
                .into_iter()
                .filter(|event| event.metadata.correlation_id() == Some(correlation_id));
            found.extend(matching);
            if done {
                return Ok(found);
            }
        }
    }

    /// The store's database system, as in OpenTelemetry's `db.system.name` (e.g. `"sqlite"`).
    fn system_name(&self) -> &'static str;

    /// The global position of the newest stored event (0: none), for the lag of
    /// [projection runners](crate::projection::runner) and [relays](crate::relay): one
    /// cheap query, made at most once per batch a runner reads. `None` (the default) when
    /// the store cannot tell cheaply; a runner then counts as lag only the events it read.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn head_position(&self) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }

    /// The session holding the high-water mark back, for stores that have one
    /// (PostgreSQL): the database session whose append is still in flight at the lowest
    /// position, which no reader ([projection runners](crate::projection::runner),
    /// [relays](crate::relay)) gets past until its transaction ends. `None` when no append
    /// is in flight, and on a store without such a mark (this default; the in-memory and
    /// SQLite stores make appends visible in the order of their positions). For an
    /// operator: a mark that stays put while events wait behind it names its holder here
    /// (`operate::status` reads it, for `eventsource status` and the console).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn mark_holder(&self) -> Result<Option<MarkHolder>, StoreError> {
        Ok(None)
    }

    /// A signal that events were appended (its value: the newest global position the store
    /// knows of), so followers such as projection runners wake before their next poll.
    /// `None` when the store cannot tell; followers then only poll.
    fn appended_signal(&self) -> Option<AppendSignal> {
        None
    }

    /// Reads the global log from `from_position` on, `batch_size` events at a time (at
    /// least 1): each [`next_batch`](LogReader::next_batch) returns what
    /// [`read_all`](Self::read_all) from the position after the previous batch would, in the
    /// same span. For a reader going through much of the log, such as a
    /// [projection runner](crate::projection::runner) catching up.
    ///
    /// This default reads each batch with [`read_all`](Self::read_all)
    /// ([`ReadAllLogReader`]). The PostgreSQL store reads the batches from one query below
    /// its high-water mark instead, saving a query per batch; its reader holds a connection
    /// of the store's pool while it lives. The SQLite store has the next batch's page
    /// written while the batch before is decoded (two pages ahead at most, each on a pool
    /// connection only while SQLite writes it); its reader needs a Tokio runtime.
    ///
    /// ```
    /// use eventsource_runtime::event::{NewEvent, StreamId};
    /// use eventsource_runtime::store::{BatchEnd, EventStore, ExpectedVersion, InMemoryEventStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = InMemoryEventStore::new();
    /// let events = (0..10).map(|n| NewEvent::new("Counted", 1, serde_json::json!({ "n": n })));
    /// let stream = StreamId::new("Counter", "c-1");
    /// store.append(&stream, ExpectedVersion::NoStream, events.collect()).await?;
    ///
    /// let mut reader = store.read_all_batches(1, 4);
    /// let mut read = 0;
    /// loop {
    ///     let batch = reader.next_batch().await?;
    ///     read += batch.len();
    ///     match batch.end() {
    ///         BatchEnd::Limit => continue,
    ///         BatchEnd::Head => break,
    ///         BatchEnd::Unreadable(error) => return Err(format!("stopped early: {error}").into()),
    ///         _ => unreachable!("a future end of batch"),
    ///     }
    /// }
    /// assert_eq!(read, 10);
    /// # Ok(())
    /// # }
    /// ```
    fn read_all_batches(&self, from_position: u64, batch_size: usize) -> Box<dyn LogReader + '_> {
        Box::new(ReadAllLogReader::new(self, from_position, batch_size))
    }
}

/// How many events [`EventStore::events_by_correlation`]'s default reads at a time.
const CORRELATION_SCAN_PAGE: usize = 1024;

/// See [`EventStore::appended_signal`].
pub type AppendSignal = tokio::sync::watch::Receiver<u64>;
