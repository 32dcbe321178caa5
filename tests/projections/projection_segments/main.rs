//! A projection split into segments over several workers, within one process: the store's
//! segment reads (`reads`), the claims stores' rules (`claims`, `expiry`), workers sharing
//! and handing over segments, stalling or cut from their claims store (`stalls`), and what
//! they record (the segment on each projection span, the changes of hands counted, the
//! health report: `health`).
//! Workers in separate processes, killed and paused: `tests/processes/segments_processes/main.rs`.

mod caught_up;
mod claims;
mod expiry;
mod health;
use eventsource_test_support::postgres;
mod reads;
mod stalls;
mod stops;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use eventsource_runtime::event::NewEvent;
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::InMemoryCheckpointStore;
use eventsource_runtime::projection::runner::{ProjectionRunner, RunnerError};
use eventsource_runtime::projection::segments::{InMemorySegmentClaims, SegmentedRunner};
use eventsource_runtime::store::EventStore;
use eventsource_runtime::testing::{MetricCapture, attribute, capture, capture_metrics};

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
