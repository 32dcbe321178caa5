//! The in-memory event store: real semantics, no persistence.

use std::borrow::Cow;
use std::collections::{HashMap, hash_map};
use std::sync::{Arc, PoisonError, RwLock};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::backend::{Append, Appended, Backend, Events, check_stream, metadata_json};
use super::settings::telemetry_builders;
use super::{AppendResult, AppendSignal, ExpectedVersion, StoreError, StoreTelemetry};
use crate::event::{EventEnvelope, Metadata, NewEvent, Payload, StreamId};

/// An event store in process memory, for tests, demos and single-process tools.
///
/// It keeps each event in serialized (JSON text) form, exactly as a database would, so an
/// event that cannot be serialized or read back fails here too instead of only in
/// production. Cloning is cheap and every clone shares the same log; it is safe to use from
/// many tasks at once.
///
/// ```
/// use eventsource_runtime::event::{NewEvent, StreamId};
/// use eventsource_runtime::store::{EventStore, ExpectedVersion, InMemoryEventStore, StoreError};
///
/// # tokio_test_block_on(async {
/// let store = InMemoryEventStore::new();
/// let stream = StreamId::new("Order", "o-1");
/// let placed = NewEvent::new("OrderPlaced", 1, serde_json::json!({ "total": 12 }));
///
/// let appended = store.append(&stream, ExpectedVersion::NoStream, vec![placed.clone()]).await?;
/// assert_eq!(appended.version, 1);
///
/// // A second writer that also expected an empty stream loses.
/// let err = store.append(&stream, ExpectedVersion::NoStream, vec![placed]).await.unwrap_err();
/// assert!(matches!(err, StoreError::Conflict(c) if c.actual == 1));
/// # Ok::<(), StoreError>(()) }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone)]
pub struct InMemoryEventStore {
    log: Arc<RwLock<Log>>,
    telemetry: Arc<StoreTelemetry>,
    /// The newest global position, for [`EventStore::appended_signal`].
    appended: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for InMemoryEventStore {
    fn default() -> Self {
        Self {
            log: Arc::default(),
            telemetry: Arc::new(StoreTelemetry::new(SYSTEM)),
            appended: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }
}

/// `db.system.name` of the in-memory store.
const SYSTEM: &str = "in_memory";

impl std::fmt::Debug for InMemoryEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let log = self.log.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("InMemoryEventStore")
            .field("events", &log.rows.len())
            .field("streams", &log.streams.len())
            .finish()
    }
}

#[derive(Default)]
struct Log {
    /// All events in global order; an event's position is its index + 1.
    rows: Vec<StoredRow>,
    /// Each stream's events as indices into `rows`, in version order. Stream keys are hashed
    /// with foldhash: SipHash's resistance to chosen keys buys nothing for a process's own
    /// streams and cost a twentieth of a command.
    streams: HashMap<StreamId, Stream, foldhash::fast::RandomState>,
}

/// One stream: its events' indices into [`Log::rows`].
struct Stream {
    rows: Vec<usize>,
}

/// One event as kept in memory: serialized, like a database row. What every row of a stream
/// or type would repeat is shared: the stream id, a static event type name, empty metadata.
struct StoredRow {
    event_id: Uuid,
    stream: StreamId,
    version: u64,
    event_type: Cow<'static, str>,
    schema_version: u32,
    timestamp: DateTime<Utc>,
    /// The payload's JSON text, shared with the envelopes read back.
    payload: Arc<str>,
    /// The metadata's JSON object, `None` for empty metadata (`{}`).
    metadata: Option<Arc<str>>,
}

impl StoredRow {
    /// The event as read back. Its payload and metadata are shared, not parsed: this store
    /// wrote them itself, from a payload and metadata that serialized.
    fn envelope(&self, position: u64) -> EventEnvelope {
        let metadata = self.metadata.as_ref().map_or_else(Metadata::new, |json| {
            Metadata::from_checked(Arc::clone(json))
        });
        EventEnvelope {
            event_id: self.event_id,
            stream: self.stream.clone(),
            version: self.version,
            position,
            event_type: self.event_type.clone(),
            schema_version: self.schema_version,
            timestamp: self.timestamp,
            payload: Payload::from_checked(Arc::clone(&self.payload)),
            metadata,
        }
    }
}

impl InMemoryEventStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    telemetry_builders!(enable_tracing, span_names);

    /// How many events the store holds, all streams together.
    #[must_use]
    pub fn len(&self) -> usize {
        self.read().rows.len()
    }

    /// Whether the store holds no event.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.read().rows.is_empty()
    }

    // A panic cannot happen while the lock is held (nothing in the critical sections
    // panics), so a poisoned lock still guards a consistent log.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Log> {
        self.log.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Log> {
        self.log.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Backend for InMemoryEventStore {
    fn telemetry(&self) -> &StoreTelemetry {
        &self.telemetry
    }

    const CHECKS_NEW_STREAMS: bool = true;

    async fn append_events(&self, append: Append<'_>) -> Appended {
        self.append_now(append.stream, append.expected, append.events)
    }

    async fn load_events(&self, stream: &StreamId, from_version: u64) -> Events {
        let log = self.read();
        let Some(Stream { rows: indices, .. }) = log.streams.get(stream) else {
            check_stream(stream)?;
            return Ok(Vec::new());
        };
        // Versions are 1-based and gapless, so version v sits at indices[v - 1].
        let skip = usize::try_from(from_version.saturating_sub(1)).unwrap_or(usize::MAX);
        if skip >= indices.len() {
            // Nothing newer: the common answer to a load from a cached version.
            return Ok(Vec::new());
        }
        indices
            .iter()
            .skip(skip)
            .map(|&i| Ok(log.rows[i].envelope(i as u64 + 1)))
            .collect()
    }

    async fn read_events(&self, from_position: u64, limit: usize) -> Events {
        let log = self.read();
        let start = usize::try_from(from_position.saturating_sub(1)).unwrap_or(usize::MAX);
        let rows = log.rows.iter().enumerate().skip(start).take(limit);
        Ok(rows.map(|(i, row)| row.envelope(i as u64 + 1)).collect())
    }

    async fn version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let log = self.read();
        match log.streams.get(stream) {
            Some(held) => Ok(held.rows.len() as u64),
            None => check_stream(stream).map(|()| 0),
        }
    }

    /// Changes with every successful append (shared by all clones).
    fn signal(&self) -> Option<AppendSignal> {
        // Appends skip the signal while nobody listens: bring it up to date first. Under the
        // log's lock, so no append slips between the two.
        let log = self.read();
        self.appended
            .send_if_modified(|position| advance(position, log.rows.len()));
        Some(self.appended.subscribe())
    }
}

impl InMemoryEventStore {
    fn append_now(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        // Serialize the metadata before taking the lock: a failure appends nothing. (A
        // payload is JSON text already; empty metadata is stored as none.)
        let metadata = if events.iter().all(|event| event.metadata.is_empty()) {
            Vec::new()
        } else {
            events
                .iter()
                .map(|event| {
                    if event.metadata.is_empty() {
                        Ok(None)
                    } else {
                        metadata_json(event).map(Some)
                    }
                })
                .collect::<Result<Vec<_>, StoreError>>()?
        };
        let mut metadata = metadata.into_iter();

        let mut log = self.write();
        let log = &mut *log;
        // One lookup for the check and the append (the key costs a reference count).
        let slot = log.streams.entry(stream.clone());
        let actual = match &slot {
            hash_map::Entry::Occupied(held) => held.get().rows.len() as u64,
            hash_map::Entry::Vacant(_) => {
                check_stream(stream)?;
                0
            }
        };
        expected.check(stream, actual)?;
        let entry = slot.or_insert_with(|| Stream { rows: Vec::new() });

        let mut appended = Vec::with_capacity(events.len());
        for (offset, event) in events.into_iter().enumerate() {
            let index = log.rows.len();
            let version = actual + offset as u64 + 1;
            log.rows.push(StoredRow {
                event_id: event.event_id,
                stream: stream.clone(),
                version,
                event_type: event.event_type.clone(),
                schema_version: event.schema_version,
                timestamp: event.timestamp,
                payload: Arc::clone(event.payload.shared_json()),
                metadata: metadata.next().flatten(),
            });
            entry.rows.push(index);
            appended.push(EventEnvelope {
                event_id: event.event_id,
                stream: stream.clone(),
                version,
                position: index as u64 + 1,
                event_type: event.event_type,
                schema_version: event.schema_version,
                timestamp: event.timestamp,
                payload: event.payload,
                metadata: event.metadata,
            });
        }
        // Still under the lock, so the signalled position never goes back. Nobody listening,
        // no signal: `signal` catches up when someone subscribes.
        if self.appended.receiver_count() > 0 {
            self.appended
                .send_if_modified(|position| advance(position, log.rows.len()));
        }
        Ok(AppendResult {
            version: actual + appended.len() as u64,
            events: appended,
        })
    }
}

/// Moves the signalled position up to `newest`; whether it moved.
fn advance(position: &mut u64, newest: usize) -> bool {
    let newest = newest as u64;
    let newer = newest > *position;
    *position = newest.max(*position);
    newer
}
