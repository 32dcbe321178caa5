//! The projection runner against the in-memory event and checkpoint stores: catch-up from a
//! persisted checkpoint, live follow, at-least-once delivery with retries, a typed stop
//! after N failures, rebuild, one runner at a time per projection (also when a lease is
//! lost), unreadable events stopped at or parked, and the linked projection span after a
//! restart. One module a job; the recording projection and the helpers below are theirs.

mod catch_up;
mod failures;
mod leases;
mod state;
mod telemetry;
mod unreadable;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex as StdMutex};
use std::time::{Duration, Instant};

use eventsource_runtime::event::NewEvent;
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::{
    CheckpointStore, InMemoryCheckpointStore, ParkedEvent, ProjectionLease,
};
use eventsource_runtime::projection::runner::{ProjectionRunner, RunnerError, UnreadablePolicy};
use eventsource_runtime::store::{AppendSignal, ReadBatch};
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::telemetry::propagation;
use eventsource_runtime::testing::{
    MetricCapture, attribute, capture, capture_metrics, events, kind,
};
use eventsource_test_support::stores::{Intercept, Over};
use opentelemetry::Value;
use opentelemetry::trace::{SpanKind, Status};
use tokio::sync::oneshot;
use tracing::Instrument as _;

// ---- A projection that records what it sees, and fails or dawdles on demand. ---------------

/// Decides whether attempt `attempt` (1-based) at the event fails.
type FailWhen = Arc<dyn Fn(&EventEnvelope, u32) -> bool + Send + Sync>;

#[derive(Clone)]
struct Recorder {
    name: &'static str,
    /// The positions handled successfully, in order (shared by every instance of a test).
    handled: Arc<StdMutex<Vec<u64>>>,
    /// Every call, successful or not: (position, attempt).
    calls: Arc<StdMutex<Vec<(u64, u32)>>>,
    attempts: HashMap<u64, u32>,
    fail: FailWhen,
    /// Set while a handler runs; `overlaps` counts handlers that found it set.
    busy: Arc<AtomicBool>,
    overlaps: Arc<AtomicUsize>,
    delay: Duration,
    resets: Arc<AtomicUsize>,
    reset_fails: bool,
    traced: bool,
    /// The checkpoint store, read from inside the handler when an attempt fails.
    checkpoints: Option<(InMemoryCheckpointStore, Arc<StdMutex<Vec<u64>>>)>,
}

impl Recorder {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            handled: Arc::default(),
            calls: Arc::default(),
            attempts: HashMap::new(),
            fail: Arc::new(|_, _| false),
            busy: Arc::default(),
            overlaps: Arc::default(),
            delay: Duration::ZERO,
            resets: Arc::default(),
            reset_fails: false,
            traced: false,
            checkpoints: None,
        }
    }

    fn failing(
        mut self,
        fail: impl Fn(&EventEnvelope, u32) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.fail = Arc::new(fail);
        self
    }

    /// Another instance (as in another process) sharing the test's records but for its
    /// own `calls`.
    fn instance(&self) -> Self {
        let mut other = self.clone();
        other.attempts.clear();
        other.calls = Arc::default();
        other
    }

    fn handled(&self) -> Vec<u64> {
        self.handled.lock().unwrap().clone()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("read model unavailable (attempt {0})")]
struct ReadModelDown(u32);

#[eventsource_runtime::async_trait]
impl Projection for Recorder {
    fn name(&self) -> &str {
        self.name
    }

    fn handles(&self, event_type: &str) -> bool {
        event_type != "Ignored"
    }

    fn tracing_enabled(&self) -> bool {
        self.traced
    }

    async fn handle(&mut self, event: &EventEnvelope) -> Result<(), ProjectionError> {
        if self.busy.swap(true, Ordering::SeqCst) {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let attempt = self.attempts.entry(event.position).or_default();
        *attempt += 1;
        let attempt = *attempt;
        self.calls.lock().unwrap().push((event.position, attempt));
        let failed = (self.fail)(event, attempt);
        if failed {
            if let Some((checkpoints, seen)) = &self.checkpoints {
                let checkpoint = checkpoints.load(self.name).await.unwrap();
                seen.lock().unwrap().push(checkpoint);
            }
        } else {
            self.handled.lock().unwrap().push(event.position);
        }
        self.busy.store(false, Ordering::SeqCst);
        if failed {
            Err(ProjectionError::handler(ReadModelDown(attempt)))
        } else {
            Ok(())
        }
    }

    async fn reset(&mut self) -> Result<(), ProjectionError> {
        self.resets.fetch_add(1, Ordering::SeqCst);
        if self.reset_fails {
            return Err(ProjectionError::handler("cannot truncate the read model"));
        }
        self.handled.lock().unwrap().clear();
        Ok(())
    }
}

// ---- Helpers. -----------------------------------------------------------------------------

fn event(event_type: &'static str, n: u64) -> NewEvent {
    NewEvent::new(event_type, 1, serde_json::json!({ "n": n }))
}

/// Appends `count` events to `stream`, one append each.
async fn append(store: &InMemoryEventStore, stream: &str, count: u64) {
    let stream = StreamId::new("Order", stream);
    for n in 0..count {
        store
            .append(&stream, ExpectedVersion::Any, vec![event("OrderPlaced", n)])
            .await
            .unwrap();
    }
}

fn runner(
    store: &InMemoryEventStore,
    checkpoints: &InMemoryCheckpointStore,
    projection: Recorder,
) -> ProjectionRunner<Recorder> {
    runner_on(store.clone(), checkpoints.clone(), projection)
}

/// A runner with the tests' short waits, on stores of a test's own.
fn runner_on(
    store: impl EventStore,
    checkpoints: impl CheckpointStore,
    projection: Recorder,
) -> ProjectionRunner<Recorder> {
    ProjectionRunner::new(Arc::new(store), Arc::new(checkpoints), projection)
        .poll_interval(Duration::from_millis(20))
        .lease_retry_interval(Duration::from_millis(10))
        .backoff(Duration::from_millis(1), Duration::from_millis(4))
}

/// Waits (bounded) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn positions(range: std::ops::RangeInclusive<u64>) -> Vec<u64> {
    range.collect()
}

/// The runner metrics, captured for the whole binary (tests tell theirs apart by projection).
static METRICS: LazyLock<MetricCapture> = LazyLock::new(capture_metrics);

/// Runs a traced catch-up once, under a span capture of its own thread, before the test
/// captures spans.
///
/// `tracing` caches each callsite's interest when the callsite is first hit (and hits
/// nothing while no subscriber exists). While exactly one capture is installed, a callsite
/// first hit on a thread without one (the other tests here capture nothing) is cached as
/// unwanted, for good: the test would lose that span. Hitting every callsite of the
/// scenario first closes that window: installing the test's capture afterwards recomputes
/// the interest of every callsite already hit.
fn register_callsites() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::thread::spawn(|| {
            let _capture = capture();
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let store = InMemoryEventStore::new();
                    append(&store, "warm-up", 1).await;
                    let mut recorder = Recorder::new("WarmUp");
                    recorder.traced = true;
                    runner(&store, &InMemoryCheckpointStore::new(), recorder)
                        .run_until_caught_up()
                        .await
                        .unwrap();
                });
        })
        .join()
        .unwrap();
    });
}
