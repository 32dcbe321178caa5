//! The crate's own event stores (in memory, SQLite, PostgreSQL) implement [`Backend`]: the
//! raw operations, each store its own way. [`EventStore`] is implemented once for all of
//! them, around those operations, with the contract's spans ([`instrument`]).

use async_trait::async_trait;

use super::instrument::{self, Operation};
use super::{
    AppendResult, AppendSignal, EventStore, ExpectedVersion, MarkHolder, ReadBatch, Segment,
    StoreError, StoreTelemetry, segment,
};
use super::{LoadStreamReader, LogReader, ReadAllLogReader, StreamReader};
use crate::event::{EventEnvelope, NewEvent, StreamId};

/// What an append returns.
pub(crate) type Appended = Result<AppendResult, StoreError>;
/// What a read returns.
pub(crate) type Events = Result<Vec<EventEnvelope>, StoreError>;
/// What a read of all streams returns.
pub(crate) type ReadAll = Result<ReadBatch, StoreError>;

/// One append's arguments, with the trace context already in each event's metadata.
pub(crate) struct Append<'a> {
    pub(crate) stream: &'a StreamId,
    pub(crate) expected: ExpectedVersion,
    pub(crate) events: Vec<NewEvent>,
}

/// An event store of this crate, below its telemetry: the semantics of [`EventStore`],
/// without spans.
///
/// Its futures are returned as they are (implemented with `async fn`), not boxed: only
/// [`EventStore`] is used as a trait object, so a call pays one boxed future, not two.
pub(crate) trait Backend: Send + Sync + 'static {
    /// The store's telemetry settings.
    fn telemetry(&self) -> &StoreTelemetry;

    /// Whether the backend applies [`check_stream`] itself, to the streams it does not hold
    /// yet: a stream it holds passed the check when it was first appended to, and looking it
    /// up settles which it is. Otherwise every read and append checks first.
    const CHECKS_NEW_STREAMS: bool = false;

    /// The statement `operation` (`append`, `load`, `read_all`, `events_by_correlation`)
    /// runs, for `db.query.text`.
    fn query_text(&self, operation: &'static str) -> Option<&str> {
        let _ = operation;
        None
    }

    /// Appends, as [`EventStore::append`].
    fn append_events(&self, append: Append<'_>) -> impl Future<Output = Appended> + Send;

    /// Reads one stream, as [`EventStore::load`].
    fn load_events(
        &self,
        stream: &StreamId,
        from_version: u64,
    ) -> impl Future<Output = Events> + Send;

    /// Reads one page of a stream, as [`EventStore::load_page`].
    fn load_events_page(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> impl Future<Output = Events> + Send;

    /// Reads all streams, as [`EventStore::read_all`].
    fn read_events(&self, from_position: u64, limit: usize)
    -> impl Future<Output = ReadAll> + Send;

    /// Whether the backend reads a segment's events itself
    /// ([`read_segment_events`](Self::read_segment_events)); otherwise a segment is read by
    /// filtering the whole log.
    const READS_SEGMENTS: bool = false;

    /// Reads one segment (not the whole log), as [`EventStore::read_segment`], when
    /// [`READS_SEGMENTS`](Self::READS_SEGMENTS).
    fn read_segment_events(
        &self,
        segment: Segment,
        from_position: u64,
        limit: usize,
    ) -> impl Future<Output = ReadAll> + Send
    where
        Self: Sized,
    {
        segment::filtered(self, segment, from_position, limit)
    }

    /// The segment holding `stream`, as [`EventStore::segment_of`]: by the hash in Rust
    /// unless the backend reads segments its own way.
    fn stream_segment(
        &self,
        stream: &StreamId,
        count: u32,
    ) -> impl Future<Output = Result<Segment, StoreError>> + Send {
        let segment = Segment::hashed(stream, count);
        async move { Ok(segment) }
    }

    /// Prepares segment reads, as [`EventStore::prepare_segments`].
    fn prepare_segment_reads(
        &self,
        count: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = count;
        async { Ok(()) }
    }

    /// The events of one correlation id, as [`EventStore::events_by_correlation`].
    fn correlated_events(&self, correlation_id: &str) -> impl Future<Output = Events> + Send;

    /// The stream's version, as [`EventStore::stream_version`].
    fn version(&self, stream: &StreamId) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// As [`EventStore::appended_signal`].
    fn signal(&self) -> Option<AppendSignal>;

    /// The newest event's global position (0: none), as [`EventStore::head_position`].
    fn head(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// `call`, one of the backend's round trips, bounded as the backend bounds a server's
    /// silence (PostgreSQL: its `answer_timeout`); as it is by default (a backend in the
    /// process has no server to wait on).
    fn answered<T: Send, F: Future<Output = Result<T, StoreError>> + Send>(
        &self,
        call: F,
    ) -> impl Future<Output = Result<T, StoreError>> + Send {
        call
    }

    /// The session holding the high-water mark back, as [`EventStore::mark_holder`] (none
    /// unless the backend has a mark: PostgreSQL).
    fn holder(&self) -> impl Future<Output = Result<Option<MarkHolder>, StoreError>> + Send {
        async { Ok(None) }
    }

    /// The backend's own reader of a stream's pages, as [`EventStore::load_pages`]
    /// (`None`: one `load_page` per page).
    fn page_reader(
        &self,
        stream: &StreamId,
        from_version: u64,
        page_size: usize,
    ) -> Option<Box<dyn StreamReader + '_>> {
        let _ = (stream, from_version, page_size);
        None
    }

    /// The backend's own reader of batches, as [`EventStore::read_all_batches`] (`None`:
    /// one `read_all` per batch).
    fn batch_reader(
        &self,
        from_position: u64,
        batch_size: usize,
    ) -> Option<Box<dyn LogReader + '_>> {
        let _ = (from_position, batch_size);
        None
    }
}

/// The operation `name` as `backend`'s span describes it.
pub(crate) fn operation<'a, B>(backend: &'a B, name: &'static str) -> Operation<'a>
where
    B: Backend + ?Sized,
{
    let operation = Operation::new(name);
    match backend.query_text(name) {
        Some(text) => operation.with_query_text(text),
        None => operation,
    }
}

/// A read of `backend`'s from `from_position` on, `limit` events at most (`read`), in the
/// contract's `read_all` span: `read_all` itself, a segment's, a batch of its own reader's.
pub(crate) async fn read_all_traced<B>(
    backend: &B,
    from_position: u64,
    limit: usize,
    read: impl Future<Output = ReadAll>,
) -> ReadAll
where
    B: Backend + ?Sized,
{
    let operation = operation(backend, "read_all");
    instrument::read_all(backend.telemetry(), from_position, limit, operation, read).await
}

/// An append of `backend`'s in the contract's span: the trace context goes into each
/// event's metadata, a stream id no store takes is refused, then `work` stores the events.
pub(crate) async fn append_traced<B, F, Fut>(
    backend: &B,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    work: F,
) -> Appended
where
    B: Backend + ?Sized,
    F: FnOnce(Vec<NewEvent>) -> Fut,
    Fut: Future<Output = Appended>,
{
    let operation = operation(backend, "append");
    let telemetry = backend.telemetry();
    instrument::append(
        telemetry,
        stream,
        expected,
        events,
        operation,
        |events| async move {
            check_stream_unless_backend_does::<B>(stream)?;
            work(events).await
        },
    )
    .await
}

/// [`check_stream`], unless the backend applies it itself ([`Backend::CHECKS_NEW_STREAMS`]).
pub(crate) fn check_stream_unless_backend_does<B: Backend + ?Sized>(
    stream: &StreamId,
) -> Result<(), StoreError> {
    if B::CHECKS_NEW_STREAMS {
        Ok(())
    } else {
        check_stream(stream)
    }
}

#[async_trait]
impl<B: Backend> EventStore for B {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        append_traced(self, stream, expected, events, |events| {
            self.answered(self.append_events(Append {
                stream,
                expected,
                events,
            }))
        })
        .await
    }

    async fn load(&self, stream: &StreamId, from_version: u64) -> Events {
        let operation = operation(self, "load");
        let load = async {
            check_stream_unless_backend_does::<B>(stream)?;
            self.answered(self.load_events(stream, from_version)).await
        };
        instrument::load(self.telemetry(), stream, from_version, operation, load).await
    }

    async fn load_page(&self, stream: &StreamId, from_version: u64, limit: usize) -> Events {
        let operation = operation(self, "load");
        let load = async {
            check_stream_unless_backend_does::<B>(stream)?;
            self.answered(self.load_events_page(stream, from_version, limit))
                .await
        };
        instrument::load(self.telemetry(), stream, from_version, operation, load).await
    }

    fn load_pages(
        &self,
        stream: &StreamId,
        from_version: u64,
        page_size: usize,
    ) -> Box<dyn StreamReader + '_> {
        self.page_reader(stream, from_version, page_size)
            .unwrap_or_else(|| {
                Box::new(LoadStreamReader::new(self, stream, from_version, page_size))
            })
    }

    async fn read_all(&self, from_position: u64, limit: usize) -> ReadAll {
        let read = self.answered(self.read_events(from_position, limit));
        read_all_traced(self, from_position, limit, read).await
    }

    async fn read_segment(&self, segment: Segment, from_position: u64, limit: usize) -> ReadAll {
        if segment.is_whole() || !B::READS_SEGMENTS {
            return segment::filtered(self, segment, from_position, limit).await;
        }
        let read = self.answered(self.read_segment_events(segment, from_position, limit));
        read_all_traced(self, from_position, limit, read).await
    }

    async fn segment_of(&self, stream: &StreamId, count: u32) -> Result<Segment, StoreError> {
        self.answered(self.stream_segment(stream, count)).await
    }

    async fn prepare_segments(&self, count: u32) -> Result<(), StoreError> {
        self.prepare_segment_reads(count).await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        check_stream_unless_backend_does::<B>(stream)?;
        self.answered(self.version(stream)).await
    }

    async fn events_by_correlation(&self, correlation_id: &str) -> Events {
        let operation = operation(self, "events_by_correlation");
        let read = self.answered(self.correlated_events(correlation_id));
        instrument::events_by_correlation(self.telemetry(), correlation_id, operation, read).await
    }

    fn system_name(&self) -> &'static str {
        self.telemetry().system
    }

    fn appended_signal(&self) -> Option<AppendSignal> {
        self.signal()
    }

    async fn head_position(&self) -> Result<Option<u64>, StoreError> {
        self.answered(self.head()).await.map(Some)
    }

    async fn mark_holder(&self) -> Result<Option<MarkHolder>, StoreError> {
        self.answered(self.holder()).await
    }

    fn read_all_batches(&self, from_position: u64, batch_size: usize) -> Box<dyn LogReader + '_> {
        self.batch_reader(from_position, batch_size)
            .unwrap_or_else(|| Box::new(ReadAllLogReader::new(self, from_position, batch_size)))
    }
}

/// An event's metadata as the SQL stores keep it, its JSON object; a failure appends
/// nothing. (The in-memory store keeps the metadata itself.)
#[cfg_attr(not(feature = "sql"), allow(dead_code))]
pub(crate) fn metadata_json(event: &NewEvent) -> Result<String, StoreError> {
    // Metadata written in its stored form (the trace context alone, see
    // `telemetry::propagation::inject`) or read from a store is kept as it is.
    if let Some(json) = event.metadata.stored_json() {
        return Ok(json.into_owned());
    }
    serde_json::to_string(&event.metadata).map_err(|source| StoreError::Serialize {
        event_type: event.event_type.to_string(),
        source,
    })
}

/// The stores' rule for stream ids: no NUL character in the aggregate type or id
/// (PostgreSQL cannot hold one; every store refuses it alike, so that code tested on one
/// store behaves the same on another).
///
/// # Errors
/// [`StoreError::InvalidStreamId`].
pub(crate) fn check_stream(stream: &StreamId) -> Result<(), StoreError> {
    // A byte loop: ids are short, and `str::contains` set up a substring search per call.
    let has_nul = |s: &str| s.bytes().any(|b| b == 0);
    let reason = if has_nul(stream.aggregate_type()) {
        "the aggregate type contains a NUL character"
    } else if has_nul(stream.aggregate_id()) {
        "the aggregate id contains a NUL character"
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidStreamId {
        stream: stream.clone(),
        reason,
    })
}
