//! Large appends and paged loads, which every `EventStore` must get right: a batch of
//! 1,000 events reads back exactly, a conflict appends none of it, and a stream read page
//! by page (`EventStore::load_page`) is the stream read whole, and so is one read through
//! `EventStore::load_pages`.

use std::sync::Arc;

use crate::event::{Metadata, NewEvent, StreamId};
use crate::store::{EventStore, ExpectedVersion, StoreError};
use serde_json::json;

fn events(range: std::ops::Range<u64>) -> Vec<NewEvent> {
    range
        .map(|n| {
            let metadata = Metadata::new().with(Metadata::CORRELATION_ID, format!("c-{n}"));
            NewEvent::new("Counted", 1, json!({ "n": n, "text": "é\"\\ \u{1F600}" }))
                .with_metadata(metadata)
        })
        .collect()
}

/// 1,000 events in one append read back exactly, in order: gapless versions, increasing
/// positions, the stored ids, payloads and metadata.
pub async fn a_thousand_events_in_one_append(store: Arc<dyn EventStore>) {
    let stream = StreamId::new("Batch", "b-1");
    let other = StreamId::new("Batch", "b-0");
    store
        .append(&other, ExpectedVersion::NoStream, events(0..3))
        .await
        .unwrap();
    store
        .append(&stream, ExpectedVersion::NoStream, events(0..7))
        .await
        .unwrap();
    let sent = events(7..1_007);
    let appended = store
        .append(&stream, ExpectedVersion::Exact(7), sent.clone())
        .await
        .unwrap();
    assert_eq!(appended.version, 1_007);
    assert_eq!(appended.events.len(), 1_000);
    let loaded = store.load(&stream, 1).await.unwrap();
    assert_eq!(loaded.len(), 1_007);
    assert_eq!(
        &loaded[7..],
        &appended.events[..],
        "as returned by the append"
    );
    for (version, event) in (1..).zip(&loaded) {
        assert_eq!(event.version, version);
    }
    assert!(
        loaded.windows(2).all(|w| w[0].position < w[1].position),
        "positions increase"
    );
    for (stored, sent) in loaded[7..].iter().zip(&sent) {
        assert_eq!(stored.event_id, sent.event_id);
        assert_eq!(stored.payload.to_value(), sent.payload.to_value());
        assert_eq!(
            stored.metadata.correlation_id(),
            sent.metadata.correlation_id()
        );
        assert_eq!(stored.timestamp, sent.timestamp);
    }
    let all = store.read_all(1, 2_000).await.unwrap();
    assert_eq!(all.len(), 1_010, "nothing else in the log");
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
}

/// A conflict on a large batch appends none of it.
pub async fn a_conflicting_large_batch_appends_nothing(store: Arc<dyn EventStore>) {
    let stream = StreamId::new("Batch", "b-2");
    store
        .append(&stream, ExpectedVersion::NoStream, events(0..5))
        .await
        .unwrap();
    let refused = store
        .append(&stream, ExpectedVersion::Exact(4), events(5..1_005))
        .await;
    match refused {
        Err(StoreError::Conflict(conflict)) => assert_eq!(conflict.actual, 5),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.load(&stream, 1).await.unwrap().len(), 5);
    assert_eq!(store.stream_version(&stream).await.unwrap(), 5);
    assert_eq!(store.read_all(1, 2_000).await.unwrap().len(), 5);
}

/// Appends 2,500 events to `stream`, 500 at a time.
async fn fill(store: &dyn EventStore, stream: &StreamId) {
    for first in (0..2_500).step_by(500) {
        store
            .append(
                stream,
                ExpectedVersion::Exact(first),
                events(first..first + 500),
            )
            .await
            .unwrap();
    }
}

/// A stream read page by page, each from the version after the last page's, is the stream
/// read whole; the last page is shorter than the limit (empty past the end).
pub async fn paged_loads_equal_the_whole_load(store: Arc<dyn EventStore>) {
    let stream = StreamId::new("Batch", "b-3");
    fill(&*store, &stream).await;
    let whole = store.load(&stream, 1).await.unwrap();
    for limit in [1, 7, 1_000, 2_500, 5_000] {
        let mut paged = Vec::new();
        let mut next = 1;
        loop {
            let page = store.load_page(&stream, next, limit).await.unwrap();
            assert!(page.len() <= limit, "a page of {limit} at most");
            let Some(last) = page.last() else { break };
            next = last.version + 1;
            let short = page.len() < limit;
            paged.extend(page);
            if short {
                break;
            }
        }
        assert_eq!(paged, whole, "pages of {limit}");
    }
    let tail = store.load_page(&stream, 2_400, 1_000).await.unwrap();
    assert_eq!(tail[..], whole[2_399..]);
    assert!(
        store
            .load_page(&stream, 2_501, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let none = StreamId::new("Batch", "none");
    assert!(store.load_page(&none, 1, 10).await.unwrap().is_empty());
}

/// A stream read through `load_pages` is, page for page, the stream read by consecutive
/// `load_page`s: full pages of the size asked for, then a shorter last one, then empty
/// pages; from the middle too, and for a stream that does not exist.
pub async fn load_pages_follow_load_page(store: Arc<dyn EventStore>) {
    let stream = StreamId::new("Batch", "b-4");
    fill(&*store, &stream).await;
    let whole = store.load(&stream, 1).await.unwrap();
    for (size, from) in [
        (1, 2_490),
        (7, 1),
        (100, 1),
        (1_000, 1),
        (1_000, 1_201),
        (2_500, 1),
        (5_000, 1),
    ] {
        let mut pages = store.load_pages(&stream, from, size);
        let mut read = Vec::new();
        let mut next = from;
        loop {
            let page = pages.next_page().await.unwrap();
            let paged = store.load_page(&stream, next, size).await.unwrap();
            assert_eq!(
                page, paged,
                "pages of {size} from {from}: the page from {next}"
            );
            let Some(last) = page.last() else { break };
            next = last.version + 1;
            let full = page.len() == size;
            read.extend(page);
            if !full {
                break;
            }
        }
        let want = usize::try_from(from - 1).unwrap();
        assert_eq!(read, whole[want..], "pages of {size} from {from}");
        for _ in 0..2 {
            assert!(pages.next_page().await.unwrap().is_empty(), "past the end");
        }
    }
    let none = StreamId::new("Batch", "none");
    let mut pages = store.load_pages(&none, 1, 10);
    assert!(pages.next_page().await.unwrap().is_empty());
    assert!(pages.next_page().await.unwrap().is_empty());
}

/// Runs every check, each on a fresh store from `fresh`.
pub async fn run_all<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Arc<dyn EventStore>>,
{
    a_thousand_events_in_one_append(fresh().await).await;
    a_conflicting_large_batch_appends_nothing(fresh().await).await;
    paged_loads_equal_the_whole_load(fresh().await).await;
    load_pages_follow_load_page(fresh().await).await;
}
