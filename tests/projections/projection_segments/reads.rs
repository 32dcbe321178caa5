//! The stores' segment reads: each event in exactly one segment, in memory and on
//! PostgreSQL (through its index), and the segment each store says holds a stream
//! (`EventStore::segment_of`).

use std::collections::{BTreeMap, BTreeSet};

use eventsource_runtime::prelude::*;
use eventsource_runtime::sqlx;
use eventsource_runtime::store::{EventStore, Segment};

use super::postgres::TestDb;
use super::seed;

/// Every segment of `count` read through `read_segment`, 7 at a time: each event in exactly
/// one segment, each segment in global order, each stream in one segment.
async fn assert_segments_partition(store: &dyn EventStore, count: u32, total: usize) {
    let mut seen = BTreeSet::new();
    let mut stream_segment: BTreeMap<String, u32> = BTreeMap::new();
    for segment in Segment::all(count) {
        let mut from = 1;
        let mut last = 0;
        loop {
            let batch = store.read_segment(segment, from, 7).await.unwrap();
            for event in batch.iter() {
                assert!(event.position > last, "{segment}: in global order");
                last = event.position;
                assert!(seen.insert(event.position), "{segment}: read once");
                let id = event.stream.aggregate_id().to_owned();
                let previous = stream_segment.insert(id, segment.index());
                assert!(
                    previous.is_none_or(|p| p == segment.index()),
                    "a stream in one segment"
                );
            }
            from = batch.next_position(from);
            if batch.reached_head() {
                break;
            }
        }
    }
    assert_eq!(seen.len(), total, "every event in a segment");
    let used: BTreeSet<u32> = stream_segment.values().copied().collect();
    assert!(count == 1 || used.len() > 1, "the streams spread: {used:?}");
}

#[tokio::test]
async fn in_memory_segments_partition_the_log() {
    let store = InMemoryEventStore::new();
    seed(&store, 30, 4).await;
    assert_segments_partition(&store, 4, 120).await;
    assert_segments_partition(&store, 1, 120).await;
}

#[tokio::test]
async fn postgres_segments_partition_the_log_through_an_index() {
    let Some(db) = TestDb::open("postgres_segments_partition_the_log_through_an_index").await
    else {
        return;
    };
    let pool = db.pool(4).await;
    let schema = db.schema();
    let store = db.store_in(&pool, &schema).await;
    seed(&store, 30, 4).await;
    store.prepare_segments(4).await.unwrap();
    store.prepare_segments(4).await.unwrap(); // again: already there
    assert_segments_partition(&store, 4, 120).await;

    // The read of one segment goes through the index of its count, in position order.
    sqlx::query(&format!("SET search_path TO \"{schema}\""))
        .execute(db.admin())
        .await
        .unwrap();
    let mut admin = db.admin().acquire().await.unwrap();
    sqlx::query(&format!("SET search_path TO \"{schema}\""))
        .execute(&mut *admin)
        .await
        .unwrap();
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *admin)
        .await
        .unwrap();
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT position FROM events \
         WHERE eventsource_segment(stream_type, stream_id, 4) = 1 \
           AND position >= 1 AND position < 1000 ORDER BY position LIMIT 7",
    )
    .fetch_all(&mut *admin)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("events_segments_4"), "{plan}");
    drop(admin);
    pool.close().await;
    db.cleanup().await;
}

/// For each of `streams` orders, the segment of `count` the store says holds it is the one
/// whose `read_segment` returns its events; how many of them the hash in Rust
/// (`Segment::of`) puts elsewhere.
async fn assert_segment_of_names_the_segment_read(
    store: &dyn EventStore,
    streams: usize,
    count: u32,
) -> usize {
    let mut read_in: BTreeMap<String, Segment> = BTreeMap::new();
    for segment in Segment::all(count) {
        let batch = store.read_segment(segment, 1, 10_000).await.unwrap();
        for event in batch.iter() {
            read_in.insert(event.stream.aggregate_id().to_owned(), segment);
        }
    }
    assert_eq!(read_in.len(), streams, "every order read");
    let mut elsewhere_in_rust = 0;
    for n in 0..streams {
        let stream = StreamId::new("Order", format!("o-{n}"));
        let said = store.segment_of(&stream, count).await.unwrap();
        assert_eq!(said.count(), count);
        assert_eq!(Some(&said), read_in.get(stream.aggregate_id()), "{stream}");
        #[allow(deprecated)]
        let hashed_in_rust = Segment::of(&stream, count);
        elsewhere_in_rust += usize::from(hashed_in_rust != said);
    }
    elsewhere_in_rust
}

#[tokio::test]
async fn in_memory_segment_of_names_the_segment_read() {
    let store = InMemoryEventStore::new();
    seed(&store, 30, 1).await;
    let elsewhere = assert_segment_of_names_the_segment_read(&store, 30, 8).await;
    assert_eq!(elsewhere, 0, "the in-memory store hashes in Rust");
}

#[tokio::test]
async fn postgres_segment_of_names_the_segment_read() {
    let Some(db) = TestDb::open("postgres_segment_of_names_the_segment_read").await else {
        return;
    };
    let pool = db.pool(4).await;
    let store = db.store_in(&pool, &db.schema()).await;
    seed(&store, 30, 1).await;
    store.prepare_segments(8).await.unwrap();
    let elsewhere = assert_segment_of_names_the_segment_read(&store, 30, 8).await;
    // The reason to ask the store: PostgreSQL hashes in SQL, not as `Segment::of` does.
    assert!(elsewhere > 0, "every stream where Segment::of says");
    pool.close().await;
    db.cleanup().await;
}
