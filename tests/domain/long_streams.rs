//! Long streams and large appends through a repository (issue 36): a stream longer than a
//! page loads page by page into the same state as event by event, upcasting included, on
//! every store; a large append records `event_persisted` for its first 128 events only. On
//! PostgreSQL, whose pages stream from one query: each page has its `load` span, a damaged
//! row fails its page, and readers leave the pool usable.
//!
//! PostgreSQL from `DATABASE_URL` (skipped without it, unless
//! `EVENTSOURCE_REQUIRE_POSTGRES=1`).

use crate::postgres as pg;

use std::sync::Arc;

use eventsource_runtime::event::upcast::Upcasters;
use eventsource_runtime::event::{NewEvent, StreamId};
use eventsource_runtime::postgres::PostgresEventStore;
use eventsource_runtime::prelude::*;
use eventsource_runtime::repository::LOAD_PAGE_EVENTS;
use eventsource_runtime::sqlite::SqliteEventStore;
use eventsource_runtime::sqlx;
use eventsource_runtime::store::StoreError;
use eventsource_runtime::store::instrument::MAX_PERSISTED_SPAN_EVENTS;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::{attribute, capture, events};
use eventsource_test_support::stores::{Intercept, Over};
use opentelemetry::Value;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deposited {
    amount: i64,
}

#[derive(Debug, Default, Aggregate)]
#[aggregate(
    type = "Account",
    events(Deposited(version = 2)),
    upcasters = account_upcasters
)]
pub struct Account {
    deposits: u64,
    total: i64,
    /// Every amount, in order: the state tells whether events were applied in order.
    checksum: u64,
}

impl Apply<Deposited> for Account {
    fn apply(&mut self, event: &Deposited) {
        self.deposits += 1;
        self.total += event.amount;
        self.checksum = self
            .checksum
            .wrapping_mul(31)
            .wrapping_add(event.amount as u64);
    }
}

/// `amount` at schema version 2; version 1 stored it in cents as `cents`.
fn account_upcasters() -> Upcasters {
    Upcasters::new().step("Deposited", 1, |payload: &mut serde_json::Value| {
        let cents = payload["cents"].as_i64().ok_or("no cents")?;
        *payload = json!({ "amount": cents / 100 });
        Ok::<_, String>(())
    })
}

/// Events 0..n, every third one stored at schema version 1.
fn stored(range: std::ops::Range<u64>) -> Vec<NewEvent> {
    range
        .map(|n| {
            let amount = (n % 97) as i64;
            if n % 3 == 0 {
                NewEvent::new("Deposited", 1, json!({ "cents": amount * 100 }))
            } else {
                NewEvent::new("Deposited", 2, json!({ "amount": amount }))
            }
        })
        .collect()
}

fn expected(n: u64) -> Account {
    let mut account = Account::default();
    for i in 0..n {
        account.apply(&Deposited {
            amount: (i % 97) as i64,
        });
    }
    account
}

async fn fill(store: &dyn EventStore, stream: &StreamId, n: u64) {
    for first in (0..n).step_by(700) {
        let len = (n - first).min(700);
        store
            .append(
                stream,
                ExpectedVersion::Exact(first),
                stored(first..first + len),
            )
            .await
            .unwrap();
    }
}

async fn a_long_stream_loads_page_by_page(store: Arc<dyn EventStore>) {
    let n = 2 * LOAD_PAGE_EVENTS as u64 + 345;
    let stream = StreamId::new("Account", "a-1");
    fill(&*store, &stream, n).await;
    let capture = capture();
    let account = Repository::<Account>::from_arc(store.clone())
        .with_cache(0)
        .trace_replay(true)
        .load("a-1")
        .await
        .unwrap();
    let want = expected(n);
    assert_eq!(account.version(), n);
    let state = account.state();
    assert_eq!(
        (state.deposits, state.total, state.checksum),
        (want.deposits, want.total, want.checksum)
    );
    let spans = capture.spans();
    let load = spans.get("eventsource.repository.load");
    assert_eq!(
        attribute(load, attr::EVENTS_REPLAYED),
        Some(&Value::I64(n as i64))
    );
    assert_eq!(
        attribute(load, attr::UPCAST_COUNT),
        Some(&Value::I64(n.div_ceil(3) as i64))
    );
    let replays = spans.all(attr::SPAN_AGGREGATE_REPLAY);
    assert_eq!(replays.len(), 1, "one replay span for every page");
    assert_eq!(
        attribute(replays[0], attr::EVENTS_REPLAYED),
        Some(&Value::I64(n as i64))
    );
    assert_eq!(
        spans.all("eventsource.event_store.load").len(),
        3,
        "three pages of at most {LOAD_PAGE_EVENTS}"
    );
}

#[tokio::test]
async fn in_memory_a_long_stream_loads_page_by_page() {
    a_long_stream_loads_page_by_page(Arc::new(InMemoryEventStore::new())).await;
}

#[tokio::test]
async fn sqlite_a_long_stream_loads_page_by_page() {
    let store = SqliteEventStore::connect(":memory:").await.unwrap();
    store.migrate().await.unwrap();
    a_long_stream_loads_page_by_page(Arc::new(store)).await;
}

#[tokio::test]
async fn postgres_a_long_stream_loads_page_by_page() {
    let Some(db) = pg::TestDb::open("long_streams").await else {
        return;
    };
    let pool = db.pool(4).await;
    let store = db.store_in(&pool, &db.schema()).await;
    a_long_stream_loads_page_by_page(Arc::new(store)).await;
    db.cleanup().await;
}

/// A store of its own that only implements `load`: the provided `load_page` returns the
/// whole rest, and a repository loads from it all the same.
#[tokio::test]
async fn a_store_without_pages_loads_whole() {
    struct Unpaged(InMemoryEventStore);

    impl Intercept for Unpaged {
        type Inner = InMemoryEventStore;
        fn inner(&self) -> &InMemoryEventStore {
            &self.0
        }
        fn system_name(&self) -> &'static str {
            "unpaged"
        }
    }

    let store = Over(Unpaged(InMemoryEventStore::new()));
    let n = LOAD_PAGE_EVENTS as u64 + 10;
    fill(&store, &StreamId::new("Account", "a-2"), n).await;
    let whole = store
        .load_page(&StreamId::new("Account", "a-2"), 1, 10)
        .await
        .unwrap();
    assert_eq!(
        whole.len() as u64,
        n,
        "the provided method returns the rest"
    );
    let account = Repository::<Account>::new(store)
        .with_cache(0)
        .load("a-2")
        .await
        .unwrap();
    assert_eq!(account.version(), n);
    assert_eq!(account.state().total, expected(n).total);
}

/// An append of more than 128 events: `event_persisted` for the first 128, the count of all.
#[tokio::test]
async fn a_large_append_records_its_first_128_persisted_events() {
    let store = SqliteEventStore::connect(":memory:").await.unwrap();
    store.migrate().await.unwrap();
    let capture = capture();
    store
        .append(
            &StreamId::new("Account", "a-3"),
            ExpectedVersion::NoStream,
            stored(0..300),
        )
        .await
        .unwrap();
    let spans = capture.spans();
    let append = spans.get("eventsource.event_store.append");
    assert_eq!(attribute(append, attr::EVENT_COUNT), Some(&Value::I64(300)));
    assert_eq!(attribute(append, attr::VERSION), Some(&Value::I64(300)));
    let persisted = events(append, attr::SPAN_EVENT_EVENT_PERSISTED);
    assert_eq!(persisted.len(), MAX_PERSISTED_SPAN_EVENTS);
    let last = persisted.last().unwrap();
    assert!(
        last.iter()
            .any(|kv| kv.key.as_str() == attr::EVENT_SEQUENCE && kv.value == Value::I64(128))
    );
}

/// PostgreSQL streams a stream's pages from one query: each page is still what `load_page`
/// returns, in a `load` span of its own (its first version, the events loaded), and the
/// repository's replay over them is the replay event by event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_streamed_pages_are_load_pages_each_in_its_load_span() {
    let Some(db) = pg::TestDb::open("postgres_streamed_pages").await else {
        return;
    };
    let pool = db.pool(4).await;
    let store = db.store_in(&pool, &db.schema()).await;
    let stream = StreamId::new("Account", "a-4");
    fill(&store, &stream, 2_345).await;
    let capture = capture();
    let mut pages = store.load_pages(&stream, 1, 1_000);
    let mut read = Vec::new();
    for want in [1_000, 1_000, 345, 0] {
        let page = pages.next_page().await.unwrap();
        assert_eq!(page.len(), want);
        read.extend(page);
    }
    drop(pages);
    let spans = capture.spans();
    let described: Vec<(Option<&Value>, Option<&Value>)> = spans
        .all("eventsource.event_store.load")
        .into_iter()
        .map(|span| {
            (
                attribute(span, attr::FROM_VERSION),
                attribute(span, attr::EVENTS_LOADED),
            )
        })
        .collect();
    let int = |n: i64| Some(Value::I64(n));
    let want = [(1, 1_000), (1_001, 1_000), (2_001, 345)];
    let want: Vec<_> = want.iter().map(|&(from, n)| (int(from), int(n))).collect();
    let described: Vec<_> = described
        .into_iter()
        .map(|(from, n)| (from.cloned(), n.cloned()))
        .collect();
    assert_eq!(described, want, "one load span per page read");
    assert_eq!(read, store.load(&stream, 1).await.unwrap());
    pool.close().await;
    db.cleanup().await;
}

/// A damaged row fails the page it falls in with its `Corrupt` error, as `load_page` does,
/// every time that page is asked for again; the pages before it were read whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_damaged_row_fails_its_streamed_page() {
    let Some(db) = pg::TestDb::open("postgres_damaged_streamed_page").await else {
        return;
    };
    let pool = db.pool(4).await;
    let store = db.store_in(&pool, &db.schema()).await;
    let stream = StreamId::new("Account", "a-5");
    fill(&store, &stream, 2_500).await;
    let damaged = store.load_page(&stream, 1_500, 1).await.unwrap()[0].position;
    let table = format!("\"{}\".events", store.schema());
    sqlx::query(&format!(
        "UPDATE {table} SET metadata = '[1, 2]' WHERE position = $1"
    ))
    .bind(i64::try_from(damaged).unwrap())
    .execute(&pool)
    .await
    .unwrap();
    let is_damaged = |error: &StoreError| matches!(error, StoreError::Corrupt { position, .. } if *position == damaged);
    let mut pages = store.load_pages(&stream, 1, 1_000);
    assert_eq!(pages.next_page().await.unwrap().len(), 1_000);
    for _ in 0..2 {
        let error = pages.next_page().await.unwrap_err();
        assert!(is_damaged(&error), "{error:?}");
    }
    let paged = store.load_page(&stream, 1_001, 1_000).await.unwrap_err();
    assert!(is_damaged(&paged), "as load_page: {paged:?}");
    let mut after = store.load_pages(&stream, 1_501, 1_000);
    assert_eq!(after.next_page().await.unwrap().len(), 1_000);
    let loaded = Repository::<Account>::from_arc(Arc::new(store.clone()))
        .with_cache(0)
        .load("a-5")
        .await;
    assert!(loaded.is_err(), "a load through the damaged row fails");
    // A streaming reader keeps its connection while it lives (`StreamReader`'s contract),
    // and `close` waits for every connection: the readers go first.
    drop((pages, after));
    pool.close().await;
    db.cleanup().await;
}

/// A page reader dropped in the middle of its query leaves the connection to the pool; on a
/// pool of one connection a reader never holds it between pages (it reads page by page),
/// so other work goes on beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_page_readers_leave_the_pool_usable() {
    let Some(db) = pg::TestDb::open("postgres_page_readers_pool").await else {
        return;
    };
    let pool = db.pool(3).await;
    let store = db.store_in(&pool, &db.schema()).await;
    let stream = StreamId::new("Account", "a-6");
    fill(&store, &stream, 2_000).await;
    let whole = store.load(&stream, 1).await.unwrap();
    for _ in 0..3 {
        let mut pages = store.load_pages(&stream, 1, 100);
        assert_eq!(pages.next_page().await.unwrap().len(), 100);
        drop(pages);
        // Every connection again, each with a statement of its own.
        let loads = (0..3).map(|_| store.load(&stream, 1));
        for load in futures_util::future::join_all(loads).await {
            assert_eq!(load.unwrap(), whole);
        }
    }

    let single = db.pool(1).await;
    let store = PostgresEventStore::from_pool(single.clone())
        .with_schema(store.schema())
        .unwrap();
    let beside = StreamId::new("Account", "a-7");
    let mut pages = store.load_pages(&stream, 1, 100);
    let mut read = Vec::new();
    for n in 0..20 {
        read.extend(pages.next_page().await.unwrap());
        // With the only connection held by the reader, this would wait for it.
        store
            .append(&beside, ExpectedVersion::Any, stored(n..n + 1))
            .await
            .unwrap();
    }
    assert!(pages.next_page().await.unwrap().is_empty());
    assert_eq!(read, whole);
    single.close().await;
    pool.close().await;
    db.cleanup().await;
}
