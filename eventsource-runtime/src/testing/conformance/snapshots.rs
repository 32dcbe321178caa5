//! The behaviour every `SnapshotStore` must have: the newest snapshot per stream, kept as
//! it was given (to the nanosecond, with its schema version), shared by every handle on the
//! same data, the newest winning among concurrent savers; an unreadable one is no snapshot,
//! not an error.

use std::sync::Arc;

use crate::event::StreamId;
use crate::snapshot::{Snapshot, SnapshotStore};
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use serde_json::json;

/// A snapshot of `stream` at `version` (schema version 1), taken at a time with nanoseconds
/// below the microsecond (they come back too), its state with text beyond ASCII.
pub fn snapshot(stream: &StreamId, version: u64) -> Snapshot {
    Snapshot {
        stream: stream.clone(),
        version,
        state: json!({ "lines": version, "note": "é ü \u{1F600}" }).into(),
        schema_version: 1,
        taken_at: DateTime::<Utc>::from_timestamp(1_700_000_000, 123_456_789).unwrap(),
    }
}

/// One snapshot per stream, the newest: an older one is ignored, one of the same version
/// replaces it; streams are keyed by aggregate type and id; deleting twice is fine.
pub async fn keeps_the_newest_per_stream(snapshots: Arc<dyn SnapshotStore>) {
    let a = StreamId::new("Order", "snap-1");
    let b = StreamId::new("Invoice", "snap-1");

    assert_eq!(snapshots.get(&a).await.unwrap(), None);
    assert!(!snapshots.exists(&a).await.unwrap());

    let twenty = snapshot(&a, 20);
    snapshots.save(twenty.clone()).await.unwrap();
    assert_eq!(snapshots.get(&a).await.unwrap(), Some(twenty.clone()));
    assert!(snapshots.exists(&a).await.unwrap());
    assert!(!snapshots.exists(&b).await.unwrap(), "keyed by type and id");

    snapshots.save(snapshot(&a, 10)).await.unwrap();
    assert_eq!(
        snapshots.get(&a).await.unwrap(),
        Some(twenty.clone()),
        "an older snapshot is ignored"
    );
    let again = Snapshot {
        state: json!({ "replaced": true }).into(),
        ..twenty
    };
    snapshots.save(again.clone()).await.unwrap();
    assert_eq!(
        snapshots.get(&a).await.unwrap(),
        Some(again),
        "same version replaces"
    );
    snapshots.save(snapshot(&a, 30)).await.unwrap();
    assert_eq!(snapshots.get(&a).await.unwrap().unwrap().version, 30);
    assert!(snapshots.exists(&a).await.unwrap());
    snapshots.save(snapshot(&b, 1)).await.unwrap();
    keeps_the_schema_version(&*snapshots).await;

    snapshots.delete(&a).await.unwrap();
    snapshots.delete(&a).await.unwrap(); // deleting nothing is fine
    assert_eq!(snapshots.get(&a).await.unwrap(), None);
    assert!(!snapshots.exists(&a).await.unwrap());
    assert!(snapshots.exists(&b).await.unwrap());
}

/// The schema version comes back as saved (every `u32`); a newer snapshot replaces it with
/// its own, an older one (of whatever schema version) changes nothing.
async fn keeps_the_schema_version(snapshots: &dyn SnapshotStore) {
    let s = StreamId::new("Order", "snap-versioned");
    let three = Snapshot {
        schema_version: 3,
        ..snapshot(&s, 5)
    };
    snapshots.save(three.clone()).await.unwrap();
    assert_eq!(snapshots.get(&s).await.unwrap(), Some(three.clone()));
    assert_eq!(snapshots.get(&s).await.unwrap().unwrap().schema_version, 3);

    let newer = snapshot(&s, 6);
    snapshots.save(newer.clone()).await.unwrap();
    assert_eq!(
        snapshots.get(&s).await.unwrap(),
        Some(newer),
        "a newer snapshot replaces it with its own schema version"
    );
    let highest = Snapshot {
        schema_version: u32::MAX,
        ..snapshot(&s, 7)
    };
    snapshots.save(highest.clone()).await.unwrap();
    snapshots.save(three).await.unwrap(); // older (5 < 7): ignored
    assert_eq!(snapshots.get(&s).await.unwrap(), Some(highest));
    snapshots.delete(&s).await.unwrap();
}

/// Two handles on the same snapshots (another pool, a clone) see each other's saves and
/// deletes.
pub async fn shared_by_every_handle(first: Arc<dyn SnapshotStore>, second: Arc<dyn SnapshotStore>) {
    let s = StreamId::new("Order", "shared");
    let other = StreamId::new("Invoice", "shared");
    first.save(snapshot(&s, 30)).await.unwrap();
    assert_eq!(second.get(&other).await.unwrap(), None);
    assert_eq!(second.get(&s).await.unwrap().unwrap().version, 30);
    second.delete(&s).await.unwrap();
    assert!(!first.exists(&s).await.unwrap());
}

/// A snapshot `damage` made unreadable (it gets the stream) is no snapshot (a full
/// replay), not an error; a new snapshot replaces it.
pub async fn an_unreadable_snapshot_is_no_snapshot(
    snapshots: Arc<dyn SnapshotStore>,
    damage: impl AsyncFnOnce(&StreamId),
) {
    let s = StreamId::new("Order", "bad");
    snapshots.save(snapshot(&s, 3)).await.unwrap();
    damage(&s).await;
    assert_eq!(snapshots.get(&s).await.unwrap(), None);
    snapshots.save(snapshot(&s, 4)).await.unwrap();
    assert_eq!(snapshots.get(&s).await.unwrap().unwrap().version, 4);
    snapshots.delete(&s).await.unwrap();
    assert!(!snapshots.exists(&s).await.unwrap());
}

/// Concurrent savers: the newest wins whatever the order.
pub async fn the_newest_wins_among_concurrent_savers(snapshots: Arc<dyn SnapshotStore>) {
    let s = StreamId::new("Order", "raced");
    let mut tasks = Vec::new();
    for v in 1..=20u64 {
        let store = Arc::clone(&snapshots);
        let snapshot = snapshot(&s, v);
        tasks.push(tokio::spawn(
            async move { store.save(snapshot).await.unwrap() },
        ));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(snapshots.get(&s).await.unwrap().unwrap().version, 20);
}

/// A NUL character in a stream id is the same typed error for every operation as for the
/// event store (`events::nul_in_stream_ids_is_invalid`).
pub async fn nul_in_a_stream_id_is_invalid(snapshots: Arc<dyn SnapshotStore>) {
    let stream = StreamId::new("Order", "o\u{0}1");
    let invalid = |result: Result<(), StoreError>, what: &str| {
        assert!(
            matches!(result, Err(StoreError::InvalidStreamId { .. })),
            "{what}: {result:?}"
        );
    };
    invalid(snapshots.save(snapshot(&stream, 1)).await, "snapshot save");
    invalid(snapshots.get(&stream).await.map(drop), "snapshot get");
    invalid(snapshots.exists(&stream).await.map(drop), "snapshot exists");
    invalid(snapshots.delete(&stream).await, "snapshot delete");
}

/// Every check that needs no more than fresh stores: `fresh` gives an empty store, and a
/// second handle on the same snapshots.
pub async fn run_all<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = (Arc<dyn SnapshotStore>, Arc<dyn SnapshotStore>)>,
{
    keeps_the_newest_per_stream(fresh().await.0).await;
    let (first, second) = fresh().await;
    shared_by_every_handle(first, second).await;
    the_newest_wins_among_concurrent_savers(fresh().await.0).await;
}
