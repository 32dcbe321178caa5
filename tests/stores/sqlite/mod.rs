//! The SQLite stores: the conformance suites of the event store (file and in-memory
//! databases), the snapshot and checkpoint stores (leases, parked events) and processed
//! messages; migrations, durability, damaged rows, concurrency stress, faults and spans.
//! One module a job; the helpers below are theirs.

use crate::conformance;

use eventsource_test_support::domain;

mod concurrency;
mod damaged_rows;
mod snapshots_and_checkpoints;
mod spans;
mod suites_and_migrations;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use conformance::checkpoints::DroppedLease;
use domain::{Order, ShipOrder, sample_order};
use eventsource_runtime::bus::ProcessedMessages;
use eventsource_runtime::command::{CommandError, CommandService};
use eventsource_runtime::event::{EventEnvelope, NewEvent, StreamId};
use eventsource_runtime::projection::checkpoint::CheckpointStore;
use eventsource_runtime::projection::runner::{ProjectionRunner, RunnerError, UnreadablePolicy};
use eventsource_runtime::projection::{Projection, ProjectionError};
use eventsource_runtime::repository::{Repository, RepositoryError};
use eventsource_runtime::snapshot::SnapshotStore;
use eventsource_runtime::sqlite::{
    SCHEMA, SqliteCheckpointStore, SqliteEventStore, SqliteProcessedMessages, SqliteSnapshotStore,
};
use eventsource_runtime::sqlx;
use eventsource_runtime::store::{
    BatchEnd, EventStore, ExpectedVersion, StoreError, StoreSpanNames, WithStoreTelemetry,
};
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::telemetry::attributes::{
    SPAN_SNAPSHOT_STORE_DELETE, SPAN_SNAPSHOT_STORE_EXISTS, SPAN_SNAPSHOT_STORE_GET,
    SPAN_SNAPSHOT_STORE_SAVE, SPAN_STORE_APPEND, SPAN_STORE_LOAD, SPAN_STORE_READ_ALL,
};
use eventsource_runtime::testing::{attribute, events, kind};
use opentelemetry::Value;
use opentelemetry::trace::SpanKind;
use serde_json::json;
use tracing::Instrument as _;

// ---- helpers -------------------------------------------------------------------------------

/// A directory under `target/tmp` removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "sqlite-{name}-{}-{nanos}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn open(target: &str) -> SqliteEventStore {
    let store = SqliteEventStore::connect(target).await.unwrap();
    store.migrate().await.unwrap();
    store
}

fn counted(n: u64) -> NewEvent {
    NewEvent::new("Counted", 1, json!({ "n": n }))
}

fn batch(range: std::ops::Range<u64>) -> Vec<NewEvent> {
    range.map(counted).collect()
}

async fn execute(store: &SqliteEventStore, sql: &str) {
    sqlx::raw_sql(sql).execute(store.pool()).await.unwrap();
}

fn string(v: &str) -> Value {
    Value::String(v.to_owned().into())
}

/// Every stream gapless and duplicate-free, `read_all` has every event once, in order.
async fn assert_consistent(store: &dyn EventStore) -> usize {
    let all = store.read_all(0, usize::MAX).await.unwrap();
    assert!(
        all.windows(2).all(|w| w[0].position < w[1].position),
        "read_all out of order"
    );
    let ids: HashSet<_> = all.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), all.len(), "an event appears twice");
    let streams: HashSet<StreamId> = all.iter().map(|e| e.stream.clone()).collect();
    let mut total = 0;
    for stream in &streams {
        let loaded = store.load(stream, 1).await.unwrap();
        for (i, e) in loaded.iter().enumerate() {
            assert_eq!(e.version, i as u64 + 1, "gap or duplicate in {stream}");
        }
        assert_eq!(
            store.stream_version(stream).await.unwrap(),
            loaded.len() as u64
        );
        total += loaded.len();
    }
    assert_eq!(total, all.len(), "read_all and the streams disagree");
    total
}
