//! Lag and health of projection runners and relays, against the in-memory, SQLite and
//! PostgreSQL stores: the lag in events and in seconds (through `lag()`, `health()` and the
//! `eventsource.lag.*` gauges), the states a runner goes through, its lease, its parked
//! events, its last error, and the report of several components (table and JSON).
//! Consumer groups: tests/health/alone/health_brokers.rs.

mod losable;
use eventsource_test_support::postgres;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex as StdMutex};
use std::time::{Duration, SystemTime};

use chrono::Utc;
use eventsource_runtime::bus::InMemoryEventBus;
use eventsource_runtime::event::NewEvent;
use eventsource_runtime::health::{
    ComponentHealth, ComponentKind, ComponentState, HealthRegistry, Lag, LeaseState, ReportsHealth,
    Watchable,
};
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::{CheckpointStore, InMemoryCheckpointStore};
use eventsource_runtime::projection::runner::{RunnerError, UnreadablePolicy};
use eventsource_runtime::relay::Relay;
use eventsource_runtime::sqlite::SqliteEventStore;
use eventsource_runtime::sqlx;
use eventsource_runtime::store::MARK_HELD_WARN_AFTER;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::{MetricCapture, capture_metrics};
use losable::Losable;
use serde_json::Value as Json;
use tokio::sync::oneshot;

static METRICS: LazyLock<MetricCapture> = LazyLock::new(capture_metrics);

/// How old the test's events are.
const AGE: Duration = Duration::from_secs(3600);

/// Appends `n` events to stream `o-1`, recorded [`AGE`] ago.
async fn append_old(store: &dyn EventStore, n: usize) {
    let recorded_at = Utc::now() - chrono::Duration::from_std(AGE).unwrap();
    let events = (0..n)
        .map(|i| {
            let mut event = NewEvent::new("OrderPlaced", 1, serde_json::json!({ "n": i }));
            event.timestamp = recorded_at;
            event
        })
        .collect();
    store
        .append(&StreamId::new("Order", "o-1"), ExpectedVersion::Any, events)
        .await
        .unwrap();
}

/// What the first handler call saw: the runner's health and the events gauge.
type Seen = Arc<StdMutex<Vec<(ComponentHealth, Option<f64>)>>>;
/// Run at the first handler call.
type OnFirst = Arc<StdMutex<Option<Box<dyn FnOnce() + Send>>>>;

/// A projection that counts, may fail, and may look at its own runner's health.
#[derive(Clone, Default)]
struct Counter {
    name: &'static str,
    fail: Arc<AtomicBool>,
    /// Asked on the first event: the runner's health and the gauges then.
    probe: Arc<StdMutex<Option<Arc<dyn ReportsHealth>>>>,
    seen: Seen,
    on_first: OnFirst,
}

impl Counter {
    fn named(name: &'static str) -> Self {
        Self {
            name,
            ..Self::default()
        }
    }
}

#[eventsource_runtime::async_trait]
impl Projection for Counter {
    fn name(&self) -> &str {
        self.name
    }

    async fn handle(&mut self, _: &EventEnvelope) -> Result<(), ProjectionError> {
        if let Some(first) = self.on_first.lock().unwrap().take() {
            first();
        }
        let probe = self.probe.lock().unwrap().take();
        if let Some(probe) = probe {
            let health = probe.health().await;
            let gauge = METRICS.gauge(
                attr::METRIC_LAG_EVENTS,
                &[(attr::METRIC_ATTR_COMPONENT_NAME, self.name)],
            );
            self.seen.lock().unwrap().push((health, gauge));
        }
        if self.fail.load(Ordering::SeqCst) {
            return Err(ProjectionError::handler("order o-1 is unknown"));
        }
        Ok(())
    }
}

fn runner(
    store: Arc<dyn EventStore>,
    checkpoints: Arc<dyn CheckpointStore>,
    projection: Counter,
) -> ProjectionRunner<Counter> {
    ProjectionRunner::new(store, checkpoints, projection)
        .poll_interval(Duration::from_millis(10))
        .lease_retry_interval(Duration::from_millis(10))
        .backoff(Duration::from_millis(1), Duration::from_millis(2))
}

/// Waits (up to 10 s) until `done` holds.
async fn until<F: Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    for _ in 0..1000 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Lag before and after catching up, the gauges on the way, on one store.
async fn lag_is_counted_and_aged(
    store: Arc<dyn EventStore>,
    checkpoints: Arc<dyn CheckpointStore>,
    name: &'static str,
) {
    LazyLock::force(&METRICS);
    append_old(&*store, 5).await;
    let counter = Counter::named(name);
    let runner = runner(Arc::clone(&store), checkpoints, counter.clone()).batch_size(2);
    *counter.probe.lock().unwrap() = Some(runner.health_reporter());

    let lag = runner.lag().await.unwrap();
    assert_eq!(lag.events, 5, "{name}: nothing handled yet");
    assert!(lag.oldest_age >= AGE, "{name}: {lag}");
    let health = runner.health().await;
    assert_eq!(
        (health.kind, health.state, health.lease),
        (
            ComponentKind::Projection,
            ComponentState::Starting,
            LeaseState::NotHeld
        )
    );
    assert_eq!(health.name, name);

    assert_eq!(runner.run_until_caught_up().await.unwrap(), 5);

    // Seen from the handler of the first event: the lease held, catching up, and the
    // gauge recorded after the first batch was read.
    let seen = counter.seen.lock().unwrap().clone();
    let (during, gauge) = &seen[0];
    assert_eq!(during.state, ComponentState::CatchingUp, "{name}");
    assert_eq!(during.lease, LeaseState::Held, "{name}");
    assert_eq!(
        during.lag.unwrap().events,
        5,
        "{name}: no checkpoint saved yet"
    );
    assert_eq!(*gauge, Some(5.0), "{name}: the gauge after the first read");

    assert_eq!(runner.lag().await.unwrap(), Lag::ZERO, "{name}");
    let health = runner.health().await;
    assert_eq!(health.state, ComponentState::CaughtUp, "{name}");
    assert_eq!(health.lease, LeaseState::NotHeld, "{name}");
    assert_eq!(health.lag, Some(Lag::ZERO), "{name}");
    assert_eq!(health.parked, 0);
    assert!(health.last_error.is_none());

    // The gauges: back to 0 once caught up, with the component's attributes only.
    let having = [
        (attr::METRIC_ATTR_COMPONENT_KIND, "projection"),
        (attr::METRIC_ATTR_COMPONENT_NAME, name),
    ];
    assert_eq!(METRICS.gauge(attr::METRIC_LAG_EVENTS, &having), Some(0.0));
    assert_eq!(
        METRICS.gauge(attr::METRIC_LAG_OLDEST_AGE, &having),
        Some(0.0)
    );
    assert_eq!(
        METRICS.unit(attr::METRIC_LAG_EVENTS).as_deref(),
        Some("{event}")
    );
    assert_eq!(
        METRICS.unit(attr::METRIC_LAG_OLDEST_AGE).as_deref(),
        Some("s")
    );
    for point in METRICS.data_point_attributes(attr::METRIC_LAG_OLDEST_AGE) {
        if point.iter().any(|kv| kv.value.as_str() == name) {
            let mut keys: Vec<String> = point.iter().map(|kv| kv.key.to_string()).collect();
            keys.sort();
            assert_eq!(
                keys,
                [
                    attr::METRIC_ATTR_COMPONENT_KIND,
                    attr::METRIC_ATTR_COMPONENT_NAME
                ]
            );
        }
    }
}

#[tokio::test]
async fn a_runner_reports_its_lag_in_memory() {
    lag_is_counted_and_aged(
        Arc::new(InMemoryEventStore::new()),
        Arc::new(InMemoryCheckpointStore::new()),
        "MemoryLag",
    )
    .await;
}

#[tokio::test]
async fn a_runner_reports_its_lag_on_sqlite() {
    let store = SqliteEventStore::connect(":memory:").await.unwrap();
    store.migrate().await.unwrap();
    let checkpoints = Arc::new(store.checkpoint_store());
    lag_is_counted_and_aged(Arc::new(store), checkpoints, "SqliteLag").await;
}

#[tokio::test]
async fn a_runner_reports_its_lag_on_postgres() {
    let Some(db) = postgres::TestDb::open("a_runner_reports_its_lag_on_postgres").await else {
        return;
    };
    let pool = db.pool(4).await;
    let store = db.store_in(&pool, &db.schema()).await;
    let checkpoints = Arc::new(store.checkpoint_store());
    assert_eq!(store.head_position().await.unwrap(), Some(0));
    lag_is_counted_and_aged(Arc::new(store.clone()), checkpoints, "PostgresLag").await;
    assert_eq!(store.head_position().await.unwrap(), Some(5));
    pool.close().await;
    db.cleanup().await;
}

/// An append whose transaction stalls holds the store's high-water mark back, and with it
/// every reader: past `MARK_HELD_WARN_AFTER` a runner's and a relay's health name the
/// session (report, JSON, printed table) and the `eventsource.store.mark_held` gauge says
/// how long; once the transaction ends, neither does.
#[tokio::test]
async fn a_stalled_append_is_named_in_the_health_of_every_reader() {
    let Some(db) = postgres::TestDb::open("a_stalled_append_is_named_in_health").await else {
        return;
    };
    LazyLock::force(&METRICS);
    let pool = db.pool(4).await;
    let store = db.store_in(&pool, &db.schema()).await;
    let checkpoints = Arc::new(store.checkpoint_store());
    let relay = Relay::new(
        Arc::new(store.clone()),
        checkpoints.clone(),
        Arc::new(InMemoryEventBus::new()),
    )
    .named("held-relay");
    let runner = runner(
        Arc::new(store.clone()),
        checkpoints,
        Counter::named("HeldOrders"),
    );
    let health = HealthRegistry::new();
    health.watch(&relay);
    health.watch(&runner);
    let gauge = |kind: &str, name: &str| {
        let having = [
            (attr::METRIC_ATTR_COMPONENT_KIND, kind),
            (attr::METRIC_ATTR_COMPONENT_NAME, name),
        ];
        METRICS.gauge(attr::METRIC_STORE_MARK_HELD, &having)
    };
    let report = health.report().await;
    assert!(report.components().iter().all(|c| c.mark_holder.is_none()));
    assert_eq!(
        gauge("projection", "HeldOrders"),
        Some(0.0),
        "nothing holds it"
    );

    let mut stalled = pool.begin().await.unwrap();
    sqlx::query("SET application_name = 'stalled-writer'")
        .execute(&mut *stalled)
        .await
        .unwrap();
    let held = store
        .append_in_transaction(
            &mut stalled,
            &StreamId::new("Order", "stalled"),
            ExpectedVersion::NoStream,
            vec![NewEvent::new("OrderPlaced", 1, serde_json::json!({}))],
        )
        .await
        .unwrap();
    append_old(&store, 1).await;
    let started = std::time::Instant::now();
    let mut report = health.report().await;
    assert!(
        report.components().iter().all(|c| c.mark_holder.is_none()),
        "not late yet"
    );
    while report.components().iter().any(|c| c.mark_holder.is_none()) {
        assert!(
            started.elapsed() < MARK_HELD_WARN_AFTER + Duration::from_secs(10),
            "not named within {MARK_HELD_WARN_AFTER:?} and 10 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        report = health.report().await;
    }
    for component in report.components() {
        let holder = component.mark_holder.as_ref().unwrap();
        assert_eq!(
            holder.position, held.events[0].position,
            "{}",
            component.name
        );
        assert_eq!(holder.application.as_deref(), Some("stalled-writer"));
        assert!(holder.held_for().unwrap() > MARK_HELD_WARN_AFTER);
    }
    let json: Json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["components"][1]["mark_held_by"]["application"],
        "stalled-writer"
    );
    let text = report.to_string();
    assert!(
        text.contains(&format!(
            "projection `HeldOrders` waits on the high-water mark at position {}: held by \
             session",
            held.events[0].position
        )) && text.contains("(stalled-writer)"),
        "{text}"
    );
    for (kind, name) in [("relay", "held-relay"), ("projection", "HeldOrders")] {
        let seconds = gauge(kind, name).unwrap();
        assert!(
            seconds > MARK_HELD_WARN_AFTER.as_secs_f64(),
            "{name}: {seconds}"
        );
    }

    stalled.rollback().await.unwrap();
    let report = health.report().await;
    assert!(report.components().iter().all(|c| c.mark_holder.is_none()));
    assert_eq!(gauge("relay", "held-relay"), Some(0.0), "released");
    assert!(!report.to_string().contains("waits on the high-water mark"));
    pool.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_following_runner_is_following_holds_its_lease_and_stops() {
    let store = InMemoryEventStore::new();
    append_old(&store, 3).await;
    let runner = Arc::new(runner(
        Arc::new(store.clone()),
        Arc::new(InMemoryCheckpointStore::new()),
        Counter::named("Follower"),
    ));
    let health = HealthRegistry::new();
    health.watch(&*runner);
    assert!(!health.report().await.is_ready(), "starting");

    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn({
        let runner = Arc::clone(&runner);
        async move { runner.run(stopped).await }
    });
    until("the runner to follow", || async {
        health.report().await.components()[0].state == ComponentState::Following
    })
    .await;
    let report = health.report().await;
    let follower = &report.components()[0];
    assert_eq!(follower.lease, LeaseState::Held);
    assert_eq!(follower.lag, Some(Lag::ZERO));
    assert!(report.is_ready());

    append_old(&store, 2).await;
    until("the new events to be handled", || async {
        runner.lag().await.unwrap() == Lag::ZERO && runner.checkpoint().await.unwrap() == 5
    })
    .await;

    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    let stopped = runner.health().await;
    assert_eq!(
        (stopped.state, stopped.lease),
        (ComponentState::Stopped, LeaseState::NotHeld)
    );
}

#[tokio::test]
async fn a_standby_waits_for_the_lease_and_is_ready() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    let held = checkpoints
        .try_acquire("Standby")
        .await
        .unwrap()
        .expect("free");
    let runner = Arc::new(runner(
        Arc::new(store),
        Arc::new(checkpoints),
        Counter::named("Standby"),
    ));
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn({
        let runner = Arc::clone(&runner);
        async move { runner.run(stopped).await }
    });
    until("the runner to wait for the lease", || async {
        runner.health().await.state == ComponentState::WaitingForLease
    })
    .await;
    let health = HealthRegistry::new();
    health.watch(&*runner);
    let report = health.report().await;
    assert_eq!(report.components()[0].lease, LeaseState::NotHeld);
    assert!(report.is_ready(), "a standby replica is ready");

    held.release().await;
    until("the runner to take the lease", || async {
        runner.health().await.lease == LeaseState::Held
    })
    .await;
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}

// ---- a lease lost -------------------------------------------------------------------------

#[tokio::test]
async fn a_runner_that_lost_its_lease_says_so() {
    let store = InMemoryEventStore::new();
    append_old(&store, 4).await;
    let checkpoints = Losable::default();
    let counter = Counter::named("LosingLease");
    let lost = Arc::clone(&checkpoints.lost);
    *counter.on_first.lock().unwrap() = Some(Box::new(move || lost.store(true, Ordering::SeqCst)));
    let runner = runner(Arc::new(store), Arc::new(checkpoints), counter);
    let before = SystemTime::now();

    let error = runner.run_until_caught_up().await.unwrap_err();
    assert!(matches!(error, RunnerError::LeaseLost { .. }), "{error:?}");
    let health = runner.health().await;
    assert_eq!(health.state, ComponentState::LeaseLost);
    assert_eq!(health.lease, LeaseState::NotHeld);
    let last = health.last_error.expect("the loss");
    assert_eq!(
        last.message,
        "projection `LosingLease` stopped: its lease was lost"
    );
    assert!(last.at >= before && last.at <= SystemTime::now());
    assert_eq!(
        health.lag.unwrap().events,
        4,
        "nothing saved after the loss"
    );
}

// ---- parked events, errors ------------------------------------------------------------------

#[tokio::test]
async fn parked_events_are_counted() {
    let store = SqliteEventStore::connect(":memory:").await.unwrap();
    store.migrate().await.unwrap();
    append_old(&store, 1).await;
    eventsource_runtime::sqlx::raw_sql(
        "INSERT INTO events (stream_type, stream_id, version, event_id, event_type, \
         schema_version, timestamp, payload, metadata) VALUES \
         ('Order', 'poison', 1, '0190a000-0000-7000-8000-000000000009', 'Imported', -1, \
          '2025-01-31T12:00:01.000000000Z', '{}', '{}')",
    )
    .execute(store.pool())
    .await
    .unwrap();
    append_old(&store, 1).await;
    let runner = runner(
        Arc::new(store.clone()),
        Arc::new(store.checkpoint_store()),
        Counter::named("Parking"),
    )
    .on_unreadable(UnreadablePolicy::Park);
    assert_eq!(runner.run_until_caught_up().await.unwrap(), 3);
    let health = runner.health().await;
    assert_eq!(health.parked, 1);
    assert_eq!(health.state, ComponentState::CaughtUp);
    assert_eq!(health.lag, Some(Lag::ZERO));
}

#[tokio::test]
async fn a_failed_runner_keeps_its_last_error_with_the_whole_chain() {
    let store = InMemoryEventStore::new();
    append_old(&store, 2).await;
    let failing = Counter::named("Failing");
    failing.fail.store(true, Ordering::SeqCst);
    let runner = runner(
        Arc::new(store),
        Arc::new(InMemoryCheckpointStore::new()),
        failing,
    )
    .max_attempts(2);
    let health = HealthRegistry::new();
    health.watch(&runner);
    let before = SystemTime::now();

    let error = runner.run_until_caught_up().await.unwrap_err();
    assert!(
        matches!(error, RunnerError::HandlerFailed { .. }),
        "{error:?}"
    );
    let report = health.report().await;
    assert!(!report.is_ready());
    let failed = report.component("Failing").expect("watched");
    assert_eq!(failed.state, ComponentState::Failed);
    let last = failed.last_error.as_ref().expect("the failure");
    assert!(
        last.message.starts_with(
            "projection `Failing` stopped: its handler failed 2 times on the `OrderPlaced` \
             event at position 1"
        ) && last.message.ends_with("order o-1 is unknown"),
        "{}",
        last.message
    );
    assert!(last.at >= before && last.at <= SystemTime::now());
    assert_eq!(failed.lag.unwrap().events, 2);
    let text = report.to_string();
    assert!(
        text.contains("order o-1 is unknown") && text.contains("not ready"),
        "{text}"
    );
}

#[tokio::test]
async fn a_retrying_runner_says_why_then_follows_again() {
    let store = InMemoryEventStore::new();
    append_old(&store, 1).await;
    let counter = Counter::named("Retrying");
    counter.fail.store(true, Ordering::SeqCst);
    let runner = Arc::new(
        runner(
            Arc::new(store),
            Arc::new(InMemoryCheckpointStore::new()),
            counter.clone(),
        )
        .max_attempts(u32::MAX),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn({
        let runner = Arc::clone(&runner);
        async move { runner.run(stopped).await }
    });
    until("the runner to retry", || async {
        runner.health().await.state == ComponentState::Retrying
    })
    .await;
    let health = HealthRegistry::new();
    health.watch(&*runner);
    let report = health.report().await;
    let retrying = &report.components()[0];
    assert!(
        !report.is_ready(),
        "a runner that cannot get on is not ready"
    );
    assert_eq!(retrying.lease, LeaseState::Held);
    assert_eq!(retrying.lag.unwrap().events, 1);
    let why = retrying.last_error.as_ref().expect("why it retries");
    assert!(
        why.message.ends_with("order o-1 is unknown"),
        "{}",
        why.message
    );

    counter.fail.store(false, Ordering::SeqCst);
    until("the runner to follow again", || async {
        runner.health().await.state == ComponentState::Following
    })
    .await;
    let following = runner.health().await;
    assert_eq!(following.lag, Some(Lag::ZERO));
    assert!(
        following.last_error.is_some(),
        "the last error stays, with its time"
    );
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}

// ---- the relay, the report ------------------------------------------------------------------

#[tokio::test]
async fn a_relay_reports_its_lag_and_the_report_lists_every_component() {
    LazyLock::force(&METRICS);
    let store = InMemoryEventStore::new();
    append_old(&store, 3).await;
    let checkpoints = InMemoryCheckpointStore::new();
    let relay = Relay::new(
        Arc::new(store.clone()),
        Arc::new(checkpoints.clone()),
        Arc::new(InMemoryEventBus::new()),
    )
    .named("orders-relay");
    let runner = runner(
        Arc::new(store.clone()),
        Arc::new(checkpoints.clone()),
        Counter::named("ReportedOrders"),
    );
    let health = HealthRegistry::new();
    health.watch(&relay);
    health.watch(&runner);

    let lag = relay.lag().await.unwrap();
    assert_eq!(lag.events, 3);
    assert!(lag.oldest_age >= AGE);
    assert_eq!(relay.run_until_caught_up().await.unwrap(), 3);
    assert_eq!(
        checkpoints.load("orders-relay").await.unwrap(),
        3,
        "its own name"
    );
    assert_eq!(relay.lag().await.unwrap(), Lag::ZERO);
    let having = [
        (attr::METRIC_ATTR_COMPONENT_KIND, "relay"),
        (attr::METRIC_ATTR_COMPONENT_NAME, "orders-relay"),
    ];
    assert_eq!(METRICS.gauge(attr::METRIC_LAG_EVENTS, &having), Some(0.0));

    let report = health.report().await;
    assert!(!report.is_ready(), "the projection has not started");
    let json: Json = serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
    assert_eq!(json["ready"], false);
    let components = json["components"].as_array().unwrap();
    assert_eq!(components.len(), 2);
    assert_eq!(components[0]["kind"], "relay");
    assert_eq!(components[0]["name"], "orders-relay");
    assert_eq!(components[0]["state"], "caught_up");
    assert_eq!(components[0]["lease"], "not_held");
    assert_eq!(components[0]["lag"]["events"], 0);
    assert_eq!(components[0]["lag"]["oldest_age_seconds"], 0.0);
    assert_eq!(components[1]["kind"], "projection");
    assert_eq!(components[1]["name"], "ReportedOrders");
    assert_eq!(components[1]["state"], "starting");
    assert_eq!(components[1]["lag"]["events"], 3);
    assert!(components[1]["lag"]["oldest_age_seconds"].as_f64().unwrap() >= AGE.as_secs_f64());
    assert_eq!(components[1]["last_error"], Json::Null);
    assert!(json["at"].as_str().unwrap().ends_with('Z'));

    let text = report.to_string();
    assert!(text.starts_with("health: not ready\n"), "{text}");
    assert!(
        text.contains("orders-relay") && text.contains("caught_up"),
        "{text}"
    );
    assert!(
        text.contains("ReportedOrders") && text.contains("starting"),
        "{text}"
    );
}

#[test]
fn a_registry_and_its_report_go_anywhere() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<HealthRegistry>();
    shareable::<eventsource_runtime::health::HealthReport>();
    let health = HealthRegistry::new();
    let clone = health.clone();
    clone.register(Arc::new(Fixed));
    let report = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(health.report());
    assert_eq!(report.components().len(), 1, "clones share the list");
    assert_eq!(report.components()[0].name, "cache-warmer");
    assert!(report.is_ready());
}

/// A component of the application's own, in the same report.
struct Fixed;

#[eventsource_runtime::async_trait]
impl ReportsHealth for Fixed {
    async fn health(&self) -> ComponentHealth {
        let mut health = ComponentHealth::new(
            ComponentKind::Projection,
            "cache-warmer",
            ComponentState::Following,
            LeaseState::NotApplicable,
        );
        health.lag = Some(Lag::ZERO);
        health
    }
}
