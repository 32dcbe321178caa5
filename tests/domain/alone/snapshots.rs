//! Repository snapshots: taken every N events, loaded from (the newest snapshot plus the
//! later events equals a full replay), never an error when unreadable or unavailable, and
//! the snapshot store's spans. The repositories have no cache (`with_cache(0)`): it would
//! serve the reloads these tests make of aggregates they just saved.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use eventsource_runtime::prelude::*;
use eventsource_runtime::snapshot::instrument::{self, SnapshotOperation};
use eventsource_runtime::snapshot::{InMemorySnapshotStore, Snapshot, SnapshotStore};
use eventsource_runtime::store::StoreTelemetry;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::{attribute, capture, events, kind};
use opentelemetry::Value;
use opentelemetry::trace::{SpanKind, Status};
use serde::{Deserialize, Serialize};

// ---- The aggregate under test: a tally whose state is serde-serializable. -----------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Added {
    amount: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Reset;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize, Aggregate)]
#[aggregate(type = "Tally", events(Added, Reset))]
struct Tally {
    total: i64,
    additions: u64,
    history: Vec<i64>,
}

impl Apply<Added> for Tally {
    fn apply(&mut self, event: &Added) {
        self.total += event.amount;
        self.additions += 1;
        self.history.push(event.amount);
    }
}

impl Apply<Reset> for Tally {
    fn apply(&mut self, _: &Reset) {
        self.total = 0;
    }
}

/// Records `amounts` on the tally `id` (a `Reset` for 0) and saves them in one append.
async fn add(repo: &Repository<Tally>, id: &str, amounts: &[i64]) -> u64 {
    let mut tally = repo.load(id).await.unwrap();
    for &amount in amounts {
        if amount == 0 {
            tally.record(Reset);
        } else {
            tally.record(Added { amount });
        }
    }
    repo.save(&mut tally).await.unwrap();
    tally.version()
}

async fn snapshot_version(snapshots: &InMemorySnapshotStore, id: &str) -> Option<u64> {
    snapshots
        .get(&Repository::<Tally>::stream(id))
        .await
        .unwrap()
        .map(|s| s.version)
}

// Every test of this binary installs a span capture before its first span, even those that
// assert none: `tracing` caches a callsite's interest when it is first hit, and a callsite
// first hit on a thread without a capture, while another test installs one, can be cached
// as unwanted, losing that test's spans.

fn int(v: i64) -> Value {
    Value::I64(v)
}

fn string(v: &str) -> Value {
    Value::String(v.to_owned().into())
}

/// A snapshot store that is always down, counting the calls it fails.
#[derive(Debug, Default, Clone)]
struct DownSnapshotStore {
    calls: Arc<AtomicUsize>,
}

impl DownSnapshotStore {
    fn fail(&self) -> StoreError {
        self.calls.fetch_add(1, Ordering::SeqCst);
        StoreError::Unavailable("snapshot database is down".into())
    }
}

#[eventsource_runtime::async_trait]
impl SnapshotStore for DownSnapshotStore {
    async fn save(&self, _: Snapshot) -> Result<(), StoreError> {
        Err(self.fail())
    }
    async fn get(&self, _: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        Err(self.fail())
    }
    async fn delete(&self, _: &StreamId) -> Result<(), StoreError> {
        Err(self.fail())
    }
}

// ---- Taking and loading. -------------------------------------------------------------------

#[tokio::test]
async fn a_snapshot_is_taken_when_a_save_crosses_a_multiple_of_every() {
    // Captures, as every test here does (see the note before `int`).
    let _capture = capture();
    let snapshots = InMemorySnapshotStore::new();
    let repo = Repository::<Tally>::new(InMemoryEventStore::new())
        .with_cache(0)
        .with_snapshots(snapshots.clone(), 3);
    assert_eq!(repo.snapshots().map(|(_, every)| every), Some(3));

    assert_eq!(add(&repo, "t-1", &[1, 2]).await, 2);
    assert_eq!(snapshot_version(&snapshots, "t-1").await, None, "2 < 3");
    assert_eq!(add(&repo, "t-1", &[3]).await, 3);
    assert_eq!(
        snapshot_version(&snapshots, "t-1").await,
        Some(3),
        "reached 3"
    );
    assert_eq!(add(&repo, "t-1", &[4, 5]).await, 5);
    assert_eq!(
        snapshot_version(&snapshots, "t-1").await,
        Some(3),
        "5 crosses no multiple"
    );
    assert_eq!(add(&repo, "t-1", &[6, 7]).await, 7);
    assert_eq!(
        snapshot_version(&snapshots, "t-1").await,
        Some(7),
        "5 -> 7 crosses 6: the snapshot is of the state saved, at 7"
    );

    // One big save crossing several multiples takes one snapshot, at its end.
    assert_eq!(add(&repo, "t-2", &[1; 10]).await, 10);
    assert_eq!(snapshot_version(&snapshots, "t-2").await, Some(10));
    let stored = snapshots
        .get(&Repository::<Tally>::stream("t-2"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state.to_value()["total"], 10);
    assert_eq!(snapshots.len(), 2);

    // Without `with_snapshots`, nothing is taken.
    let plain_snapshots = InMemorySnapshotStore::new();
    let plain = Repository::<Tally>::new(InMemoryEventStore::new()).with_cache(0);
    assert!(plain.snapshots().is_none());
    add(&plain, "t-3", &[1; 10]).await;
    assert!(plain_snapshots.is_empty());
}

#[tokio::test]
async fn loading_from_a_snapshot_equals_a_full_replay() {
    // Captures, as every test here does (see the note before `int`).
    let _capture = capture();
    let store = InMemoryEventStore::new();
    let snapshots = InMemorySnapshotStore::new();
    let with = Repository::<Tally>::new(store.clone())
        .with_cache(0)
        .with_snapshots(snapshots.clone(), 4);
    let without = Repository::<Tally>::new(store.clone()).with_cache(0);

    // Saves of different sizes, resets included, each loading through the snapshot.
    for amounts in [
        &[5, -2][..],
        &[7, 0, 3],
        &[1],
        &[2, 2, 2, 2, 2],
        &[9, 0],
        &[4],
    ] {
        add(&with, "t-1", amounts).await;
        let from_snapshot = with.load("t-1").await.unwrap();
        let replayed = without.load("t-1").await.unwrap();
        assert_eq!(from_snapshot.version(), replayed.version());
        assert_eq!(from_snapshot.state(), replayed.state());
        assert_eq!(
            from_snapshot.persisted_version(),
            replayed.persisted_version()
        );
    }
    assert_eq!(
        snapshot_version(&snapshots, "t-1").await,
        Some(13),
        "11 -> 13 crossed 12"
    );
    assert_eq!(with.load("t-1").await.unwrap().version(), 14);

    // A root loaded from a snapshot saves with the right expected version.
    let mut tally = with.load("t-1").await.unwrap();
    tally.record(Added { amount: 1 });
    with.save(&mut tally).await.unwrap();
    assert_eq!(store.stream_version(tally.stream()).await.unwrap(), 15);
}

#[tokio::test]
async fn the_load_span_says_whether_a_snapshot_was_used_and_what_was_replayed() {
    let store = InMemoryEventStore::new();
    let snapshots = InMemorySnapshotStore::new();
    let repo = Repository::<Tally>::new(store.clone())
        .with_cache(0)
        .with_snapshots(snapshots.clone(), 5);
    add(&repo, "t-1", &[1, 2, 3]).await;

    let capture = capture();
    repo.load("t-1").await.unwrap();
    let spans = capture.spans();
    let load = spans.get("eventsource.repository.load");
    assert_eq!(
        attribute(load, attr::SNAPSHOT_USED),
        Some(&Value::Bool(false))
    );
    assert_eq!(attribute(load, attr::EVENTS_REPLAYED), Some(&int(3)));
    assert_eq!(attribute(load, attr::VERSION), Some(&int(3)));
    spans.assert_child_of(attr::SPAN_SNAPSHOT_STORE_GET, "eventsource.repository.load");
    let get = spans.get(attr::SPAN_SNAPSHOT_STORE_GET);
    assert_eq!(attribute(get, attr::VERSION), None, "nothing found");

    add(&repo, "t-1", &[4, 5, 6]).await; // 3 -> 6 crosses 5: snapshot at 6
    add(&repo, "t-1", &[7, 8]).await;
    capture.clear();
    let tally = repo.load("t-1").await.unwrap();
    assert_eq!(tally.state().total, 36);
    let spans = capture.spans();
    let load = spans.get("eventsource.repository.load");
    assert_eq!(
        attribute(load, attr::SNAPSHOT_USED),
        Some(&Value::Bool(true))
    );
    assert_eq!(
        attribute(load, attr::EVENTS_REPLAYED),
        Some(&int(2)),
        "only the events after the snapshot"
    );
    assert_eq!(attribute(load, attr::VERSION), Some(&int(8)));
    let get = spans.get(attr::SPAN_SNAPSHOT_STORE_GET);
    assert_eq!(
        attribute(get, attr::VERSION),
        Some(&int(6)),
        "the snapshot found"
    );
    let store_load = spans.get("eventsource.event_store.load");
    assert_eq!(
        attribute(store_load, attr::FROM_VERSION),
        Some(&int(7)),
        "the stream is read from after the snapshot"
    );
    spans.assert_child_of(
        "eventsource.event_store.load",
        "eventsource.repository.load",
    );

    // The snapshot is saved inside the save span.
    capture.clear();
    add(&repo, "t-1", &[9, 10]).await; // 8 -> 10 crosses 10
    let spans = capture.spans();
    spans.assert_child_of(
        attr::SPAN_SNAPSHOT_STORE_SAVE,
        "eventsource.repository.save",
    );
    let save = spans.get(attr::SPAN_SNAPSHOT_STORE_SAVE);
    assert_eq!(attribute(save, attr::VERSION), Some(&int(10)));
    assert_eq!(save.status, Status::Unset);
}

// ---- Snapshot trouble is never the user's error. -------------------------------------------

#[tokio::test]
async fn a_snapshot_that_no_longer_deserializes_is_ignored_and_replaced() {
    let store = InMemoryEventStore::new();
    let snapshots = InMemorySnapshotStore::new();
    let repo = Repository::<Tally>::new(store.clone())
        .with_cache(0)
        .with_snapshots(snapshots.clone(), 100);
    add(&repo, "t-1", &[1, 2, 3, 4]).await;

    // A snapshot taken by an older version of the state type.
    let stream = Repository::<Tally>::stream("t-1");
    snapshots
        .save(Snapshot {
            stream: stream.clone(),
            version: 3,
            state: serde_json::json!({ "sum": 6, "schema": "v0" }).into(),
            schema_version: 1,
            taken_at: "2025-01-01T00:00:00Z".parse().unwrap(),
        })
        .await
        .unwrap();

    let capture = capture();
    let tally = repo.load("t-1").await.expect("never an error");
    assert_eq!(tally.version(), 4);
    assert_eq!(tally.state().total, 10, "a full replay");
    let spans = capture.spans();
    let load = spans.get("eventsource.repository.load");
    assert_eq!(
        attribute(load, attr::SNAPSHOT_USED),
        Some(&Value::Bool(false))
    );
    assert_eq!(attribute(load, attr::EVENTS_REPLAYED), Some(&int(4)));
    assert_eq!(load.status, Status::Unset);
    assert!(
        load.events
            .iter()
            .any(|e| e.name.contains("does not deserialize")),
        "the warning is logged in the load span: {:?}",
        load.events.events
    );

    // Replaced by a readable snapshot of the replayed state: the next load uses it.
    let replaced = snapshots.get(&stream).await.unwrap().unwrap();
    assert_eq!(replaced.version, 4);
    assert_eq!(replaced.state.to_value()["total"], 10);
    capture.clear();
    assert_eq!(repo.load("t-1").await.unwrap().state().total, 10);
    let spans = capture.spans();
    let load = spans.get("eventsource.repository.load");
    assert_eq!(
        attribute(load, attr::SNAPSHOT_USED),
        Some(&Value::Bool(true))
    );
    assert_eq!(attribute(load, attr::EVENTS_REPLAYED), Some(&int(0)));
}

#[tokio::test]
async fn a_failing_snapshot_store_never_fails_the_repository() {
    let store = InMemoryEventStore::new();
    let down = DownSnapshotStore::default();
    let repo = Repository::<Tally>::new(store.clone())
        .with_cache(0)
        .with_snapshots(down.clone(), 2);

    let capture = capture();
    // Loads warn and replay everything; saves that cross a multiple warn and succeed.
    assert_eq!(add(&repo, "t-1", &[1, 2, 3]).await, 3);
    assert_eq!(add(&repo, "t-1", &[4]).await, 4);
    let tally = repo.load("t-1").await.unwrap();
    assert_eq!(tally.state().total, 10);
    assert_eq!(
        store.stream_version(tally.stream()).await.unwrap(),
        4,
        "the events are stored"
    );
    // Loads: 3 gets; saves crossing 2 and 4: 2 saves.
    assert_eq!(down.calls.load(Ordering::SeqCst), 5);

    let spans = capture.spans();
    for load in spans.all("eventsource.repository.load") {
        assert_eq!(load.status, Status::Unset);
        assert_eq!(
            attribute(load, attr::SNAPSHOT_USED),
            Some(&Value::Bool(false))
        );
        assert!(
            load.events
                .iter()
                .any(|e| e.name.contains("snapshot store failed")),
            "{:?}",
            load.events.events
        );
    }
    let saves = spans.all("eventsource.repository.save");
    assert_eq!(saves.len(), 2);
    for save in saves {
        assert_eq!(save.status, Status::Unset, "the save succeeded");
        assert!(
            save.events
                .iter()
                .any(|e| e.name.contains("failed to save a snapshot")),
            "{:?}",
            save.events.events
        );
    }
}

// ---- The snapshot store's spans. -----------------------------------------------------------

#[tokio::test]
async fn snapshot_store_operations_are_client_spans_under_the_current_span() {
    let snapshots = InMemorySnapshotStore::new();
    let stream = StreamId::new("Tally", "t-9");
    let capture = capture();
    async {
        snapshots
            .save(Snapshot {
                stream: stream.clone(),
                version: 42,
                state: serde_json::json!({ "total": 1 }).into(),
                schema_version: 1,
                taken_at: "2025-01-01T00:00:00Z".parse().unwrap(),
            })
            .await
            .unwrap();
        assert_eq!(snapshots.get(&stream).await.unwrap().unwrap().version, 42);
        assert!(snapshots.exists(&stream).await.unwrap());
        snapshots.delete(&stream).await.unwrap();
        assert!(snapshots.get(&stream).await.unwrap().is_none());
    }
    .instrument(tracing::info_span!("caller"))
    .await;

    let spans = capture.spans();
    for (name, operation) in [
        (attr::SPAN_SNAPSHOT_STORE_SAVE, "save"),
        (attr::SPAN_SNAPSHOT_STORE_EXISTS, "exists"),
        (attr::SPAN_SNAPSHOT_STORE_DELETE, "delete"),
    ] {
        spans.assert_child_of(name, "caller");
        let span = spans.get(name);
        assert_eq!(kind(span), SpanKind::Client);
        assert_eq!(attribute(span, attr::AGGREGATE_ID), Some(&string("t-9")));
        assert_eq!(
            attribute(span, attr::AGGREGATE_TYPE),
            Some(&string("Tally"))
        );
        assert_eq!(
            attribute(span, attr::DB_SYSTEM_NAME),
            Some(&string("in_memory"))
        );
        assert_eq!(
            attribute(span, attr::DB_OPERATION_NAME),
            Some(&string(operation))
        );
        assert_eq!(span.status, Status::Unset);
    }
    assert_eq!(
        attribute(spans.get(attr::SPAN_SNAPSHOT_STORE_SAVE), attr::VERSION),
        Some(&int(42))
    );
    let gets = spans.all(attr::SPAN_SNAPSHOT_STORE_GET);
    assert_eq!(gets.len(), 2);
    assert_eq!(kind(gets[0]), SpanKind::Client);
    assert_eq!(attribute(gets[0], attr::VERSION), Some(&int(42)), "found");
    assert_eq!(
        attribute(gets[1], attr::VERSION),
        None,
        "deleted: none found"
    );

    // The component switch.
    capture.clear();
    let silent = snapshots.clone().enable_tracing(false);
    silent.get(&stream).await.unwrap();
    silent.exists(&stream).await.unwrap();
    assert!(capture.spans().is_empty(), "{}", capture.spans().tree());
    snapshots.get(&stream).await.unwrap();
    assert_eq!(
        capture.spans().all(attr::SPAN_SNAPSHOT_STORE_GET).len(),
        1,
        "other clones keep theirs"
    );
}

/// A snapshot store of another backend, built on the shared instrumentation; its saves fail.
struct FailingBackend(StoreTelemetry);

#[eventsource_runtime::async_trait]
impl SnapshotStore for FailingBackend {
    async fn save(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        instrument::run(
            &self.0,
            SnapshotOperation::Save,
            &snapshot.stream,
            Some(snapshot.version),
            async { Err(StoreError::Unavailable("disk full".into())) },
        )
        .await
    }
    async fn get(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        instrument::run(&self.0, SnapshotOperation::Get, stream, None, async {
            Ok(None)
        })
        .await
    }
    async fn delete(&self, _: &StreamId) -> Result<(), StoreError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_failing_snapshot_operation_ends_its_span_with_an_error() {
    let mut telemetry = StoreTelemetry::new("other_db");
    telemetry.collection = Some("snapshots");
    let repo = Repository::<Tally>::new(InMemoryEventStore::new())
        .with_cache(0)
        .with_snapshots(
            Arc::new(FailingBackend(telemetry)) as Arc<dyn SnapshotStore>,
            1,
        );
    let capture = capture();
    add(&repo, "t-1", &[1]).await;
    let spans = capture.spans();
    spans.assert_child_of(
        attr::SPAN_SNAPSHOT_STORE_SAVE,
        "eventsource.repository.save",
    );
    let save = spans.get(attr::SPAN_SNAPSHOT_STORE_SAVE);
    assert_eq!(kind(save), SpanKind::Client);
    assert!(
        matches!(&save.status, Status::Error { description } if description.contains("disk full"))
    );
    assert_eq!(events(save, attr::SPAN_EVENT_EXCEPTION).len(), 1);
    assert_eq!(
        attribute(save, attr::DB_SYSTEM_NAME),
        Some(&string("other_db"))
    );
    assert_eq!(
        attribute(save, attr::DB_COLLECTION_NAME),
        Some(&string("snapshots"))
    );
    assert_eq!(attribute(save, attr::VERSION), Some(&int(1)));
    assert_eq!(
        spans.get("eventsource.repository.save").status,
        Status::Unset,
        "the save itself succeeded"
    );
}

use tracing::Instrument as _;
