//! A projection split into segments over several workers, within one process: the store's
//! segment reads (in memory and on PostgreSQL, through its index), the claims stores' rules
//! (shares, expiry, epochs, fenced saves), workers sharing and handing over segments, and
//! what they record (the segment on each projection span, the changes of hands counted).
//! Workers in separate processes, killed and paused: `tests/segments_processes.rs`.

#[path = "projection_segments/expiry.rs"]
mod expiry;
#[path = "projection_segments/health.rs"]
mod health;
#[path = "common/postgres.rs"]
mod postgres;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use eventsource_runtime::event::NewEvent;
use eventsource_runtime::postgres::PostgresCheckpointStore;
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::{CheckpointStore, InMemoryCheckpointStore};
use eventsource_runtime::projection::runner::{ProjectionRunner, RunnerError};
use eventsource_runtime::projection::segments::{
    InMemorySegmentClaims, SegmentClaims, SegmentedRunner,
};
use eventsource_runtime::sqlx;
use eventsource_runtime::store::{EventStore, Segment};
use eventsource_runtime::testing::{MetricCapture, attribute, capture, capture_metrics};
use postgres::TestDb;

static METRICS: LazyLock<MetricCapture> = LazyLock::new(capture_metrics);

/// `streams` orders of `versions` events each, appended round robin (the orders' events
/// interleave in the log).
async fn seed(store: &dyn EventStore, streams: usize, versions: u64) {
    for version in 1..=versions {
        for n in 0..streams {
            let stream = StreamId::new("Order", format!("o-{n}"));
            let event = NewEvent::new("Progressed", 1, serde_json::json!({ "v": version }));
            let expected = ExpectedVersion::from_version(version - 1);
            store.append(&stream, expected, vec![event]).await.unwrap();
        }
    }
}

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

/// The rules every claims store follows, with a short timeout.
async fn claims_follow_the_rules(claims: &dyn SegmentClaims, checkpoints: &dyn CheckpointStore) {
    let timeout = Duration::from_millis(300);
    let p = "Totals";
    assert_eq!(claims.split(p, 4).await.unwrap(), (4, true));
    assert_eq!(claims.split(p, 4).await.unwrap(), (4, false));
    assert_eq!(claims.split(p, 8).await.unwrap().0, 4, "the recorded count");

    assert_eq!(claims.heartbeat(p, "a", timeout).await.unwrap(), 1);
    assert_eq!(claims.heartbeat(p, "b", timeout).await.unwrap(), 2);
    let a = claims.claim(p, "a", 3, timeout).await.unwrap();
    let b = claims.claim(p, "b", 3, timeout).await.unwrap();
    assert_eq!((a.len(), b.len()), (3, 1), "one owner per segment");
    assert!(
        a.iter()
            .chain(&b)
            .all(|c| c.from.is_none() && c.claim.epoch == 1)
    );

    // b stops renewing; a renews, and then takes b's segment over at a new epoch.
    let a_claims: Vec<_> = a.iter().map(|c| c.claim).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    let taken = loop {
        assert_eq!(claims.renew(p, "a", &a_claims).await.unwrap(), a_claims);
        let taken = claims.claim(p, "a", 1, timeout).await.unwrap();
        if !taken.is_empty() {
            break taken;
        }
        assert!(Instant::now() < deadline, "b's claim expires");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stale = b[0].claim;
    assert_eq!(taken[0].claim.segment, stale.segment);
    assert_eq!(taken[0].claim.epoch, stale.epoch + 1, "a new epoch");
    assert_eq!(taken[0].from.as_deref(), Some("b"));
    assert!(claims.renew(p, "b", &[stale]).await.unwrap().is_empty());

    // Fenced: b's save under its old epoch is refused, a's lands.
    let name = stale.segment.checkpoint_name(p);
    let saved = claims.save_fenced(p, "b", stale, checkpoints, &name, 9);
    assert!(!saved.await.unwrap(), "a stale save is fenced");
    assert_eq!(checkpoints.load(&name).await.unwrap(), 0);
    let saved = claims.save_fenced(p, "a", taken[0].claim, checkpoints, &name, 7);
    assert!(saved.await.unwrap());
    assert_eq!(checkpoints.load(&name).await.unwrap(), 7);
    // A late save under the claim (a background save overtaken, a retry) is accepted but
    // never moves the checkpoint back.
    let late = claims.save_fenced(p, "a", taken[0].claim, checkpoints, &name, 5);
    assert!(late.await.unwrap(), "still the claim's");
    assert_eq!(checkpoints.load(&name).await.unwrap(), 7, "not moved back");

    // A release frees at once; b, silent, is counted out.
    claims.release(p, "a", &[taken[0].claim]).await.unwrap();
    let again = claims.claim(p, "b", 4, timeout).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].claim.epoch, stale.epoch + 2);
    assert_eq!(claims.heartbeat(p, "a", timeout).await.unwrap(), 1);
    let owners = claims.owners(p).await.unwrap();
    assert_eq!(owners.len(), 4);
    assert_eq!(
        owners[stale.segment.index() as usize].owner.as_deref(),
        Some("b")
    );
    claims.leave(p, "a").await.unwrap();
    assert_eq!(claims.heartbeat(p, "b", timeout).await.unwrap(), 1);
}

#[tokio::test]
async fn in_memory_claims_follow_the_rules() {
    let claims = InMemorySegmentClaims::new();
    claims_follow_the_rules(&claims, &InMemoryCheckpointStore::new()).await;
}

#[tokio::test]
async fn postgres_claims_follow_the_rules() {
    let Some(db) = TestDb::open("postgres_claims_follow_the_rules").await else {
        return;
    };
    let pool = db.pool(4).await;
    let schema = db.schema();
    let store = db.store_in(&pool, &schema).await;
    let checkpoints: PostgresCheckpointStore = store.checkpoint_store();
    claims_follow_the_rules(&checkpoints, &checkpoints).await;
    pool.close().await;
    db.cleanup().await;
}

/// Each order's versions as handled, by the worker that handled them.
struct Versions {
    name: &'static str,
    seen: BTreeMap<String, Vec<u64>>,
    traced: bool,
}

impl Default for Versions {
    fn default() -> Self {
        Self {
            name: "Versions",
            seen: BTreeMap::new(),
            traced: false,
        }
    }
}

#[eventsource_runtime::async_trait]
impl Projection for Versions {
    fn name(&self) -> &str {
        self.name
    }

    fn tracing_enabled(&self) -> bool {
        self.traced
    }

    async fn handle(&mut self, event: &EventEnvelope) -> Result<(), ProjectionError> {
        let order = event.stream.aggregate_id().to_owned();
        self.seen.entry(order).or_default().push(event.version);
        Ok(())
    }
}

fn worker(
    store: &InMemoryEventStore,
    checkpoints: &InMemoryCheckpointStore,
    claims: &InMemorySegmentClaims,
    name: &str,
    count: u32,
) -> Arc<SegmentedRunner<Versions>> {
    let runner = ProjectionRunner::new(
        Arc::new(store.clone()),
        Arc::new(checkpoints.clone()),
        Versions::default(),
    )
    .poll_interval(Duration::from_millis(10));
    Arc::new(
        runner
            .segmented(Arc::new(claims.clone()), count)
            .claim_timeout(Duration::from_secs(60))
            .rebalance_interval(Duration::from_millis(20))
            .worker_name(name),
    )
}

/// Polls `done` every 10 ms for up to `within`.
async fn wait_for(what: &str, within: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn handled(workers: &[&Arc<SegmentedRunner<Versions>>]) -> BTreeMap<String, Vec<u64>> {
    let mut all: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for worker in workers {
        for (order, versions) in &worker.projection().lock().await.seen {
            all.entry(order.clone()).or_default().extend(versions);
        }
    }
    all
}

#[tokio::test]
async fn workers_share_the_segments_and_a_graceful_stop_hands_them_over_at_once() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    let claims = InMemorySegmentClaims::new();
    seed(&store, 20, 3).await;
    let a = worker(&store, &checkpoints, &claims, "a", 4);
    let b = worker(&store, &checkpoints, &claims, "b", 4);
    let (stop_a, a_stopped) = tokio::sync::oneshot::channel::<()>();
    let (stop_b, b_stopped) = tokio::sync::oneshot::channel::<()>();
    let running_a = tokio::spawn({
        let a = Arc::clone(&a);
        async move { a.run(a_stopped).await }
    });
    let running_b = tokio::spawn({
        let b = Arc::clone(&b);
        async move { b.run(b_stopped).await }
    });

    let shares = async || a.held().len() == 2 && b.held().len() == 2;
    wait_for("two segments each", Duration::from_secs(10), shares).await;
    let all_seen = async || {
        handled(&[&a, &b])
            .await
            .values()
            .map(Vec::len)
            .sum::<usize>()
            == 60
    };
    wait_for("every event handled", Duration::from_secs(10), all_seen).await;

    // Stopped gracefully, a's segments go to b long before the 60 s claim timeout.
    stop_a.send(()).unwrap();
    running_a.await.unwrap().unwrap();
    let b_holds_all = async || b.held().len() == 4;
    wait_for("b holds every segment", Duration::from_secs(5), b_holds_all).await;
    seed_more(&store, 20, 4).await;
    let all_seen = async || {
        handled(&[&a, &b])
            .await
            .values()
            .map(Vec::len)
            .sum::<usize>()
            == 80
    };
    wait_for(
        "the new events handled by b",
        Duration::from_secs(10),
        all_seen,
    )
    .await;

    // Each order's versions: once each, in order, by whichever worker held its segment.
    for (order, versions) in handled(&[&a, &b]).await {
        assert_eq!(versions.len(), 4, "{order}: each version once");
        for worker in [&a, &b] {
            let seen = worker.projection().lock().await.seen.get(&order).cloned();
            let seen = seen.unwrap_or_default();
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "{order}: in order");
        }
    }
    stop_b.send(()).unwrap();
    running_b.await.unwrap().unwrap();
    let statuses = b.segments().await.unwrap();
    assert!(
        statuses.iter().all(|s| s.owner.is_none()),
        "released on stop"
    );
    assert_eq!(statuses.len(), 4);
}

/// Version 4 of each of `streams` orders.
async fn seed_more(store: &dyn EventStore, streams: usize, version: u64) {
    for n in 0..streams {
        let stream = StreamId::new("Order", format!("o-{n}"));
        let event = NewEvent::new("Progressed", 1, serde_json::json!({ "v": version }));
        let expected = ExpectedVersion::from_version(version - 1);
        store.append(&stream, expected, vec![event]).await.unwrap();
    }
}

#[tokio::test]
async fn another_segment_count_is_refused() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    let claims = InMemorySegmentClaims::new();
    seed(&store, 5, 1).await;
    let four = worker(&store, &checkpoints, &claims, "a", 4);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn({
        let four = Arc::clone(&four);
        async move { four.run(stopped).await }
    });
    wait_for("a claims", Duration::from_secs(5), async || {
        !four.held().is_empty()
    })
    .await;
    let eight = worker(&store, &checkpoints, &claims, "b", 8);
    let error = eight.run(std::future::pending::<()>()).await.unwrap_err();
    assert!(
        matches!(
            error,
            RunnerError::SegmentCountChanged {
                recorded: 4,
                asked: 8,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "projection `Versions` is split into 4 segments, not 8: to change the count, rebuild \
         it under a new name"
    );
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_projection_split_for_the_first_time_goes_on_from_its_checkpoint() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    let claims = InMemorySegmentClaims::new();
    seed(&store, 10, 2).await;
    let whole = ProjectionRunner::new(
        Arc::new(store.clone()),
        Arc::new(checkpoints.clone()),
        Versions::default(),
    );
    assert_eq!(whole.run_until_caught_up().await.unwrap(), 20);

    seed_more(&store, 10, 3).await;
    let split = worker(&store, &checkpoints, &claims, "a", 4);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn({
        let split = Arc::clone(&split);
        async move { split.run(stopped).await }
    });
    let new_seen = async || {
        handled(&[&split])
            .await
            .values()
            .map(Vec::len)
            .sum::<usize>()
            == 10
    };
    wait_for("the 10 new events", Duration::from_secs(10), new_seen).await;
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    let seen = handled(&[&split]).await;
    assert!(
        seen.values().all(|v| v == &[3]),
        "only the new events: {seen:?}"
    );
}

#[tokio::test]
async fn each_projection_span_names_its_segment_and_the_changes_of_hands_are_counted() {
    let spans = capture();
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    let claims = InMemorySegmentClaims::new();
    seed(&store, 6, 1).await;
    let runner = ProjectionRunner::new(
        Arc::new(store.clone()),
        Arc::new(checkpoints.clone()),
        Versions {
            name: "TracedVersions",
            traced: true,
            ..Versions::default()
        },
    );
    let worker = runner
        .segmented(Arc::new(claims.clone()), 3)
        .rebalance_interval(Duration::from_millis(20))
        .worker_name("traced");
    let claimed_before = METRICS.total(
        "eventsource.projection.segment.changes",
        &[("projection.name", "TracedVersions"), ("change", "claimed")],
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let watched = async {
        wait_for("6 events", Duration::from_secs(10), async || {
            handled_by(&worker).await == 6
        })
        .await;
        stop.send(()).unwrap();
    };
    let (outcome, ()) = tokio::join!(worker.run(stopped), watched);
    outcome.unwrap();

    let spans = spans.spans();
    let handling: Vec<_> = spans
        .0
        .iter()
        .filter(|s| s.name == "projection.TracedVersions")
        .collect();
    assert_eq!(handling.len(), 6);
    for span in &handling {
        let segment = attribute(span, "eventsource.projection.segment").expect("a segment");
        let segment = segment.to_string();
        assert!(
            ["0/3", "1/3", "2/3"].contains(&segment.as_str()),
            "{segment}"
        );
    }
    let counted = |change: &str| {
        METRICS.total(
            "eventsource.projection.segment.changes",
            &[("projection.name", "TracedVersions"), ("change", change)],
        )
    };
    assert_eq!(counted("claimed") - claimed_before, 3);
    assert!(counted("released") >= 3);
    // Each segment's lag gauge: the projection's name, and the segment.
    for segment in ["0/3", "1/3", "2/3"] {
        let having = [
            ("eventsource.component.name", "TracedVersions"),
            ("eventsource.projection.segment", segment),
        ];
        let lag = METRICS.gauge("eventsource.lag.events", &having);
        assert_eq!(lag, Some(0.0), "{segment}: caught up");
    }
}

async fn handled_by(worker: &SegmentedRunner<Versions>) -> usize {
    worker
        .projection()
        .lock()
        .await
        .seen
        .values()
        .map(Vec::len)
        .sum()
}

/// Records each published event's stream and version, in publishing order.
#[derive(Clone, Default)]
struct Recording {
    published: Arc<std::sync::Mutex<Vec<(String, u64, u64)>>>,
}

#[eventsource_runtime::async_trait]
impl eventsource_runtime::bus::EventBus for Recording {
    async fn publish(
        &self,
        events: &[EventEnvelope],
    ) -> Result<eventsource_runtime::bus::PublishReport, eventsource_runtime::bus::BusError> {
        let mut published = self.published.lock().unwrap();
        for event in events {
            let order = event.stream.aggregate_id().to_owned();
            published.push((order, event.version, event.position));
        }
        Ok(eventsource_runtime::bus::PublishReport::default())
    }
}

#[tokio::test]
async fn a_relay_split_over_two_workers_publishes_every_event_each_stream_in_order() {
    use eventsource_runtime::relay::Relay;

    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    let claims = InMemorySegmentClaims::new();
    let bus = Recording::default();
    seed(&store, 20, 5).await;
    let relay = |name: &str| {
        Relay::new(
            Arc::new(store.clone()),
            Arc::new(checkpoints.clone()),
            Arc::new(bus.clone()),
        )
        .segmented(Arc::new(claims.clone()), 4)
        .rebalance_interval(Duration::from_millis(20))
        .worker_name(name)
    };
    let (a, b) = (relay("a"), relay("b"));
    let (stop_a, a_stopped) = tokio::sync::oneshot::channel::<()>();
    let (stop_b, b_stopped) = tokio::sync::oneshot::channel::<()>();
    let watched = async {
        let published = async || bus.published.lock().unwrap().len() >= 100;
        wait_for("every event published", Duration::from_secs(10), published).await;
        let shared = async || !a.held().is_empty() && !b.held().is_empty();
        wait_for("both relays publish", Duration::from_secs(10), shared).await;
        stop_a.send(()).unwrap();
        stop_b.send(()).unwrap();
    };
    let (ran_a, ran_b, ()) = tokio::join!(a.run(a_stopped), b.run(b_stopped), watched);
    ran_a.unwrap();
    ran_b.unwrap();

    let published = bus.published.lock().unwrap().clone();
    let positions: BTreeSet<u64> = published.iter().map(|(_, _, p)| *p).collect();
    assert_eq!(positions.len(), 100, "every event published");
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    for (order, version, _) in &published {
        let previous = last.insert(order, *version).unwrap_or(0);
        assert!(
            *version > previous,
            "{order}: version {version} after {previous}"
        );
    }
}
