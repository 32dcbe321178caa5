//! The behaviour every `EventStore` must have. Each store's test file calls [`run_all`]
//! (or single checks) with a factory for fresh, empty stores.

use std::collections::HashSet;
use std::sync::Arc;

use super::counted_events;
use crate::event::{Metadata, NewEvent, StreamId};
use crate::store::{BatchEnd, EventStore, ExpectedVersion, StoreError};
use serde_json::json;

fn conflict(result: Result<impl std::fmt::Debug, StoreError>) -> (ExpectedVersion, u64) {
    match result {
        Err(StoreError::Conflict(c)) => (c.expected, c.actual),
        other => panic!("expected a version conflict, got {other:?}"),
    }
}

/// Versions start at 1 and follow each other; positions increase across streams.
pub async fn versions_and_positions(store: Arc<dyn EventStore>) {
    let a = StreamId::new("Counter", "a");
    let b = StreamId::new("Counter", "b");
    let first = store
        .append(&a, ExpectedVersion::NoStream, counted_events(0..3))
        .await
        .unwrap();
    assert_eq!(first.version, 3);
    assert_eq!(
        first.events.iter().map(|e| e.version).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let second = store
        .append(&b, ExpectedVersion::NoStream, counted_events(0..1))
        .await
        .unwrap();
    let third = store
        .append(&a, ExpectedVersion::Exact(3), counted_events(3..5))
        .await
        .unwrap();
    assert_eq!(third.version, 5);

    let positions: Vec<u64> = first
        .events
        .iter()
        .chain(&second.events)
        .chain(&third.events)
        .map(|e| e.position)
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "positions {positions:?} must increase"
    );

    let loaded = store.load(&a, 1).await.unwrap();
    assert_eq!(
        loaded.iter().map(|e| e.version).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(
        loaded
            .iter()
            .map(|e| e.payload.to_value()["n"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert_eq!(store.stream_version(&a).await.unwrap(), 5);
    assert_eq!(store.stream_version(&b).await.unwrap(), 1);
    assert_eq!(
        store
            .stream_version(&StreamId::new("Counter", "none"))
            .await
            .unwrap(),
        0
    );
}

/// Every expectation is checked, a failed one appends nothing and says what it found.
pub async fn expected_versions(store: Arc<dyn EventStore>) {
    let s = StreamId::new("Counter", "x");
    // Exact on a missing stream.
    assert_eq!(
        conflict(
            store
                .append(&s, ExpectedVersion::Exact(1), counted_events(0..1))
                .await
        ),
        (ExpectedVersion::Exact(1), 0)
    );
    store
        .append(&s, ExpectedVersion::NoStream, counted_events(0..2))
        .await
        .unwrap();
    assert_eq!(
        conflict(
            store
                .append(&s, ExpectedVersion::NoStream, counted_events(2..3))
                .await
        ),
        (ExpectedVersion::NoStream, 2)
    );
    assert_eq!(
        conflict(
            store
                .append(&s, ExpectedVersion::Exact(1), counted_events(2..3))
                .await
        ),
        (ExpectedVersion::Exact(1), 2)
    );
    assert_eq!(
        store.stream_version(&s).await.unwrap(),
        2,
        "a failed append must append nothing"
    );
    assert_eq!(
        store
            .append(&s, ExpectedVersion::Any, counted_events(2..3))
            .await
            .unwrap()
            .version,
        3
    );
    assert_eq!(
        store
            .append(&s, ExpectedVersion::Exact(3), counted_events(3..4))
            .await
            .unwrap()
            .version,
        4
    );
    // Exact(0) means "no event yet", like NoStream.
    let fresh = StreamId::new("Counter", "fresh");
    assert_eq!(
        store
            .append(&fresh, ExpectedVersion::Exact(0), counted_events(0..1))
            .await
            .unwrap()
            .version,
        1
    );
    // An empty append checks the expectation and changes nothing.
    assert_eq!(
        store
            .append(&s, ExpectedVersion::Exact(4), Vec::new())
            .await
            .unwrap()
            .version,
        4
    );
    conflict(
        store
            .append(&s, ExpectedVersion::Exact(9), Vec::new())
            .await,
    );
    assert_eq!(store.load(&s, 1).await.unwrap().len(), 4);
}

/// Streams are keyed by aggregate type and id together.
pub async fn streams_are_typed(store: Arc<dyn EventStore>) {
    let order = StreamId::new("Order", "42");
    let invoice = StreamId::new("Invoice", "42");
    store
        .append(&order, ExpectedVersion::NoStream, counted_events(0..2))
        .await
        .unwrap();
    store
        .append(&invoice, ExpectedVersion::NoStream, counted_events(0..1))
        .await
        .unwrap();
    let loaded = store.load(&invoice, 1).await.unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].aggregate_type(), "Invoice");
    assert_eq!(loaded[0].aggregate_id(), "42");
}

/// `load` from a version, and everything stored comes back as it went in.
pub async fn round_trip(store: Arc<dyn EventStore>) {
    let s = StreamId::new("Order", "rt");
    let metadata = Metadata::new()
        .with(Metadata::CORRELATION_ID, "corr-1")
        .with(
            Metadata::TRACEPARENT,
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        );
    let mut sent = counted_events(0..3);
    sent[1] = NewEvent::new(
        "Renamed",
        7,
        json!({ "nested": { "list": [1, 2, 3], "text": "é ü \u{1F600}" } }),
    )
    .with_metadata(metadata.clone());
    let appended = store
        .append(&s, ExpectedVersion::NoStream, sent.clone())
        .await
        .unwrap();

    let tail = store.load(&s, 2).await.unwrap();
    assert_eq!(tail.iter().map(|e| e.version).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(
        tail,
        appended.events[1..],
        "load must return what append reported"
    );
    let renamed = &tail[0];
    assert_eq!(renamed.event_id, sent[1].event_id);
    assert_eq!(renamed.event_type, "Renamed");
    assert_eq!(renamed.schema_version, 7);
    assert_eq!(renamed.payload, sent[1].payload);
    assert_eq!(renamed.metadata, metadata);
    assert_eq!(renamed.timestamp, sent[1].timestamp);
    assert!(store.load(&s, 4).await.unwrap().is_empty());
    assert!(
        store
            .load(&StreamId::new("Order", "missing"), 1)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Events that share one metadata (clones of it, as a command's events share its lineage)
/// each come back with it, as do the events of an append that mixes it with others.
pub async fn shared_metadata_reaches_every_event(store: Arc<dyn EventStore>) {
    let s = StreamId::new("Order", "shared");
    let shared = Metadata::new()
        .with(Metadata::CORRELATION_ID, "corr-shared")
        .with(Metadata::CAUSATION_ID, "cause-shared");
    let sent: Vec<NewEvent> = counted_events(0..3)
        .into_iter()
        .map(|event| event.with_metadata(shared.clone()))
        .collect();
    store
        .append(&s, ExpectedVersion::NoStream, sent)
        .await
        .unwrap();
    let mut mixed: Vec<NewEvent> = counted_events(3..5)
        .into_iter()
        .map(|event| event.with_metadata(shared.clone()))
        .collect();
    mixed.push(counted_events(5..6).remove(0));
    store
        .append(&s, ExpectedVersion::Exact(3), mixed)
        .await
        .unwrap();
    let loaded = store.load(&s, 1).await.unwrap();
    let correlations: Vec<Option<&str>> = loaded
        .iter()
        .map(|event| event.metadata.correlation_id())
        .collect();
    let shared_id = Some("corr-shared");
    assert_eq!(
        correlations,
        [shared_id, shared_id, shared_id, shared_id, shared_id, None]
    );
    // (A traced store adds its `traceparent` to each.)
    for event in &loaded[..5] {
        assert_eq!(event.metadata.causation_id(), Some("cause-shared"));
    }
    assert_eq!(loaded[5].metadata.causation_id(), None);
}

/// `read_all` returns all streams in global order, from a position, in pages.
pub async fn read_all_in_global_order(store: Arc<dyn EventStore>) {
    let a = StreamId::new("Counter", "ra-a");
    let b = StreamId::new("Counter", "ra-b");
    for i in 0..5 {
        let s = if i % 2 == 0 { &a } else { &b };
        store
            .append(s, ExpectedVersion::Any, counted_events(i..i + 1))
            .await
            .unwrap();
    }
    let all = store.read_all(0, 100).await.unwrap();
    assert!(all.reached_head(), "{:?}", all.end());
    let all = all.into_events();
    assert_eq!(all.len(), 5);
    assert_eq!(
        all.iter()
            .map(|e| e.payload.to_value()["n"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    // Paging by position, as a projection does with its checkpoint.
    let mut paged = Vec::new();
    let mut from = 0;
    loop {
        let page = store.read_all(from, 2).await.unwrap();
        if page.is_empty() {
            assert!(page.reached_head(), "{:?}", page.end());
            break;
        }
        assert!(page.len() <= 2);
        // A full page says more may follow; the short last one that the log ended.
        match page.len() {
            2 => assert!(matches!(page.end(), BatchEnd::Limit), "{:?}", page.end()),
            _ => assert!(page.reached_head(), "{:?}", page.end()),
        }
        assert_eq!(page.next_position(from), page.last().unwrap().position + 1);
        from = page.last().unwrap().position + 1;
        paged.extend(page);
    }
    assert_eq!(paged, all);
    assert!(
        store
            .read_all(all.last().unwrap().position + 1, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Many writers on one stream, each expecting the version it read: exactly one wins per
/// version, the others get the typed conflict; the stream ends gapless and duplicate-free.
pub async fn concurrent_writers_on_one_stream(
    store: Arc<dyn EventStore>,
    writers: u64,
    rounds: u64,
) {
    let s = StreamId::new("Counter", "contended");
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let store = Arc::clone(&store);
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut wins = Vec::new();
            let mut conflicts = 0u64;
            for round in 0..rounds {
                let version = store.stream_version(&s).await.unwrap();
                let e = NewEvent::new("Counted", 1, json!({ "writer": writer, "round": round }));
                match store
                    .append(&s, ExpectedVersion::from_version(version), vec![e])
                    .await
                {
                    Ok(r) => wins.push(r.version),
                    Err(StoreError::Conflict(c)) => {
                        assert_eq!(c.expected, ExpectedVersion::from_version(version));
                        assert!(c.actual > version, "a conflict reports a newer version");
                        conflicts += 1;
                    }
                    Err(other) => panic!("unexpected error {other}"),
                }
                tokio::task::yield_now().await;
            }
            (wins, conflicts)
        }));
    }
    let mut won_versions = Vec::new();
    for task in tasks {
        let (wins, _) = task.await.unwrap();
        won_versions.extend(wins);
    }
    won_versions.sort_unstable();
    let unique: HashSet<u64> = won_versions.iter().copied().collect();
    assert_eq!(
        unique.len(),
        won_versions.len(),
        "two writers won the same version"
    );

    let stored = store.load(&s, 1).await.unwrap();
    assert_eq!(
        stored.len(),
        won_versions.len(),
        "every win is stored, nothing else"
    );
    for (i, e) in stored.iter().enumerate() {
        assert_eq!(e.version, i as u64 + 1, "gap or duplicate in the stream");
    }
    let ids: HashSet<_> = stored.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), stored.len(), "an event was stored twice");
}

/// Many writers on different streams: nothing lost, `read_all` has each event once, in order.
pub async fn concurrent_writers_on_many_streams(
    store: Arc<dyn EventStore>,
    streams: u64,
    per_stream: u64,
) {
    let mut tasks = Vec::new();
    for n in 0..streams {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let s = StreamId::new("Counter", format!("many-{n}"));
            for v in 0..per_stream {
                store
                    .append(&s, ExpectedVersion::Exact(v), counted_events(v..v + 1))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let all = store.read_all(0, usize::MAX).await.unwrap();
    assert_eq!(all.len() as u64, streams * per_stream);
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    let ids: HashSet<_> = all.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), all.len());
    for n in 0..streams {
        let s = StreamId::new("Counter", format!("many-{n}"));
        let versions: Vec<u64> = store
            .load(&s, 1)
            .await
            .unwrap()
            .iter()
            .map(|e| e.version)
            .collect();
        assert_eq!(versions, (1..=per_stream).collect::<Vec<_>>());
    }
}

/// A stream id with a NUL character (in the aggregate id or type) is refused by every
/// operation with the same typed error, `InvalidStreamId`: never `Unavailable`, which
/// callers (the projection runner) retry as transient. Nothing is stored.
pub async fn nul_in_stream_ids_is_invalid(store: Arc<dyn EventStore>) {
    let invalid = |result: Result<(), StoreError>, what: &str| match result {
        Err(StoreError::InvalidStreamId { reason, .. }) => {
            assert!(reason.contains("NUL"), "{what}: {reason}");
        }
        other => panic!("{what}: expected InvalidStreamId, got {other:?}"),
    };
    for stream in [
        StreamId::new("Counter", "a\u{0}b"),
        StreamId::new("Coun\u{0}ter", "a"),
    ] {
        let appended = store
            .append(&stream, ExpectedVersion::Any, counted_events(0..1))
            .await;
        invalid(appended.map(drop), "append");
        let checked = store.append(&stream, ExpectedVersion::Any, vec![]).await;
        invalid(checked.map(drop), "empty append");
        invalid(store.load(&stream, 1).await.map(drop), "load");
        invalid(
            store.stream_version(&stream).await.map(drop),
            "stream_version",
        );
        let error = store.load(&stream, 1).await.unwrap_err();
        assert!(
            error.to_string().contains("\\0"),
            "the message shows the NUL escaped: {error}"
        );
    }
    assert!(
        store.read_all(0, 10).await.unwrap().is_empty(),
        "nothing stored"
    );
    // The same stream without the NUL is fine.
    store
        .append(
            &StreamId::new("Counter", "ab"),
            ExpectedVersion::NoStream,
            counted_events(0..1),
        )
        .await
        .unwrap();
}

/// Runs every check, each on a fresh store from `fresh`.
pub async fn run_all<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Arc<dyn EventStore>>,
{
    versions_and_positions(fresh().await).await;
    expected_versions(fresh().await).await;
    streams_are_typed(fresh().await).await;
    round_trip(fresh().await).await;
    shared_metadata_reaches_every_event(fresh().await).await;
    read_all_in_global_order(fresh().await).await;
    concurrent_writers_on_one_stream(fresh().await, 16, 20).await;
    concurrent_writers_on_many_streams(fresh().await, 16, 25).await;
    nul_in_stream_ids_is_invalid(fresh().await).await;
    super::reader::batches_follow_read_all(fresh().await).await;
    super::batches::run_all(fresh).await;
}
