//! The projection runner against the in-memory event and checkpoint stores: catch-up from a
//! persisted checkpoint, live follow, at-least-once delivery with retries, a typed stop
//! after N failures, rebuild, one runner at a time per projection (also when a lease is
//! lost), unreadable events stopped at or parked, and the linked projection span after a
//! restart.

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
use eventsource_runtime::store::{AppendResult, AppendSignal, ReadBatch};
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::telemetry::propagation;
use eventsource_runtime::testing::{
    MetricCapture, attribute, capture, capture_metrics, events, kind,
};
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
    ProjectionRunner::new(
        Arc::new(store.clone()),
        Arc::new(checkpoints.clone()),
        projection,
    )
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

// ---- Catch-up and restarts. ----------------------------------------------------------------

#[tokio::test]
async fn a_restarted_runner_resumes_from_the_persisted_checkpoint() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    append(&store, "o-1", 3).await;
    append(&store, "o-2", 2).await;

    let first = Recorder::new("Orders");
    let reached = runner(&store, &checkpoints, first.clone())
        .batch_size(2)
        .run_until_caught_up()
        .await
        .unwrap();
    assert_eq!(reached, 5);
    assert_eq!(first.handled(), positions(1..=5));
    assert_eq!(checkpoints.load("Orders").await.unwrap(), 5);

    // "Restart": new runner, new projection instance, same checkpoint store.
    append(&store, "o-1", 3).await;
    let second = Recorder::new("Orders");
    let restarted = runner(&store, &checkpoints, second.clone()).batch_size(2);
    assert_eq!(restarted.checkpoint().await.unwrap(), 5);
    assert_eq!(restarted.run_until_caught_up().await.unwrap(), 8);
    assert_eq!(
        second.handled(),
        positions(6..=8),
        "only the events after the checkpoint"
    );

    // Nothing new: nothing handled, same position.
    assert_eq!(restarted.run_until_caught_up().await.unwrap(), 8);
    assert_eq!(second.handled(), positions(6..=8));
}

#[tokio::test]
async fn a_runner_stopped_while_following_resumes_where_it_stopped() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    append(&store, "o-1", 4).await;

    let first = Recorder::new("Orders");
    let running = runner(&store, &checkpoints, first.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move { running.run(stopped).await });
    eventually("the first run to catch up", || first.handled().len() == 4).await;
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(checkpoints.load("Orders").await.unwrap(), 4);

    append(&store, "o-1", 2).await;
    let second = Recorder::new("Orders");
    runner(&store, &checkpoints, second.clone())
        .run_until_caught_up()
        .await
        .unwrap();
    assert_eq!(second.handled(), positions(5..=6));
}

#[tokio::test]
async fn events_the_projection_does_not_handle_still_move_the_checkpoint() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    let stream = StreamId::new("Order", "o-1");
    store
        .append(
            &stream,
            ExpectedVersion::Any,
            vec![
                event("OrderPlaced", 1),
                event("Ignored", 2),
                event("Ignored", 3),
            ],
        )
        .await
        .unwrap();
    let recorder = Recorder::new("Orders");
    assert_eq!(
        runner(&store, &checkpoints, recorder.clone())
            .run_until_caught_up()
            .await
            .unwrap(),
        3
    );
    assert_eq!(recorder.handled(), [1]);
    assert_eq!(checkpoints.load("Orders").await.unwrap(), 3);
}

// ---- Live follow. --------------------------------------------------------------------------

#[tokio::test]
async fn appended_events_are_handled_promptly_thanks_to_the_append_signal() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    let recorder = Recorder::new("Orders");
    // A poll interval far longer than the test: only the signal can wake the runner.
    let running =
        runner(&store, &checkpoints, recorder.clone()).poll_interval(Duration::from_secs(60));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move { running.run(stopped).await });

    for round in 1..=3_u64 {
        // Let the runner settle into its wait first.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let appended = Instant::now();
        append(&store, "o-1", 1).await;
        eventually("the appended event", || {
            recorder.handled().len() as u64 == round
        })
        .await;
        assert!(
            appended.elapsed() < Duration::from_secs(2),
            "woken by the signal, not the 60 s poll"
        );
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("stops promptly on shutdown")
        .unwrap()
        .unwrap();
    assert_eq!(recorder.handled(), positions(1..=3));
    assert_eq!(checkpoints.load("Orders").await.unwrap(), 3);
}

/// The in-memory store without its append signal: followers can only poll.
#[derive(Debug, Clone)]
struct NoSignal(InMemoryEventStore);

#[eventsource_runtime::async_trait]
impl EventStore for NoSignal {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.0.append(stream, expected, events).await
    }
    async fn load(&self, stream: &StreamId, from: u64) -> Result<Vec<EventEnvelope>, StoreError> {
        self.0.load(stream, from).await
    }
    async fn read_all(&self, from: u64, limit: usize) -> Result<ReadBatch, StoreError> {
        self.0.read_all(from, limit).await
    }
    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.0.stream_version(stream).await
    }
    fn system_name(&self) -> &'static str {
        "in_memory"
    }
}

#[tokio::test]
async fn without_a_signal_the_runner_polls() {
    let store = InMemoryEventStore::new();
    let quiet = NoSignal(store.clone());
    assert!(quiet.appended_signal().is_none());
    let _: Option<AppendSignal> = store.appended_signal();
    let checkpoints = InMemoryCheckpointStore::new();
    let recorder = Recorder::new("Orders");
    let running = ProjectionRunner::new(
        Arc::new(quiet),
        Arc::new(checkpoints.clone()),
        recorder.clone(),
    )
    .poll_interval(Duration::from_millis(10));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move { running.run(stopped).await });
    tokio::time::sleep(Duration::from_millis(15)).await;
    append(&store, "o-1", 2).await;
    eventually("the polled events", || recorder.handled().len() == 2).await;
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

// ---- Failures: retries, the typed stop, shutdown during backoff. ---------------------------

#[tokio::test]
async fn a_handler_failing_twice_then_succeeding_is_retried_in_order() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    append(&store, "o-1", 4).await;
    let seen = Arc::new(StdMutex::new(Vec::new()));
    let mut recorder =
        Recorder::new("Orders").failing(|e, attempt| e.position == 2 && attempt <= 2);
    recorder.checkpoints = Some((checkpoints.clone(), Arc::clone(&seen)));

    let reached = runner(&store, &checkpoints, recorder.clone())
        .batch_size(1) // a checkpoint per event, to watch it
        .max_attempts(3)
        .run_until_caught_up()
        .await
        .unwrap();
    assert_eq!(reached, 4);
    assert_eq!(
        recorder.handled(),
        positions(1..=4),
        "in order, none skipped"
    );
    assert_eq!(
        *recorder.calls.lock().unwrap(),
        [(1, 1), (2, 1), (2, 2), (2, 3), (3, 1), (4, 1)]
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [1, 1],
        "while event 2 failed, the checkpoint stayed before it"
    );
    assert_eq!(checkpoints.load("Orders").await.unwrap(), 4);
}

#[tokio::test]
async fn after_max_attempts_the_runner_stops_with_a_typed_error_before_the_event() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    append(&store, "o-1", 5).await;
    let recorder = Recorder::new("Orders").failing(|e, _| e.position == 3);

    let error = runner(&store, &checkpoints, recorder.clone())
        .max_attempts(4)
        .run_until_caught_up()
        .await
        .unwrap_err();
    let RunnerError::HandlerFailed {
        projection,
        position,
        event_type,
        attempts,
        source,
    } = &error
    else {
        panic!("unexpected error {error:?}");
    };
    assert_eq!(projection, "Orders");
    assert_eq!(*position, 3);
    assert_eq!(event_type, "OrderPlaced");
    assert_eq!(*attempts, 4);
    assert_eq!(source.to_string(), "read model unavailable (attempt 4)");
    assert!(error.to_string().contains("failed 4 times"), "{error}");
    assert_eq!(
        recorder.handled(),
        [1, 2],
        "nothing after the failing event"
    );
    assert_eq!(
        checkpoints.load("Orders").await.unwrap(),
        2,
        "the checkpoint points before the failing event"
    );

    // `run` stops with the same error instead of following.
    let (_stop, stopped) = oneshot::channel::<()>();
    let error = tokio::time::timeout(
        Duration::from_secs(5),
        runner(&store, &checkpoints, recorder.instance())
            .max_attempts(2)
            .run(stopped),
    )
    .await
    .expect("stops by itself")
    .unwrap_err();
    assert!(matches!(
        error,
        RunnerError::HandlerFailed {
            position: 3,
            attempts: 2,
            ..
        }
    ));

    // Fixed, the next run starts with the failing event.
    let fixed = Recorder::new("Orders");
    runner(&store, &checkpoints, fixed.clone())
        .run_until_caught_up()
        .await
        .unwrap();
    assert_eq!(fixed.handled(), positions(3..=5));
}

#[tokio::test]
async fn shutdown_interrupts_a_backoff_wait() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    append(&store, "o-1", 3).await;
    let recorder = Recorder::new("Orders").failing(|e, _| e.position == 2);
    let running = runner(&store, &checkpoints, recorder.clone())
        .max_attempts(100)
        .backoff(Duration::from_secs(30), Duration::from_secs(30));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move { running.run(stopped).await });
    eventually("the first failure", || {
        recorder.calls.lock().unwrap().len() == 2
    })
    .await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("not waiting out the 30 s backoff")
        .unwrap()
        .unwrap();
    assert_eq!(checkpoints.load("Orders").await.unwrap(), 1);
}

// ---- Rebuild. ------------------------------------------------------------------------------

#[tokio::test]
async fn rebuild_resets_the_model_and_the_checkpoint_and_replays_everything() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    append(&store, "o-1", 3).await;
    append(&store, "o-2", 3).await;
    let recorder = Recorder::new("Orders");
    let runner = runner(&store, &checkpoints, recorder.clone()).batch_size(4);
    assert_eq!(runner.run_until_caught_up().await.unwrap(), 6);
    assert_eq!(recorder.resets.load(Ordering::SeqCst), 0);

    assert_eq!(runner.rebuild().await.unwrap(), 6);
    assert_eq!(recorder.resets.load(Ordering::SeqCst), 1);
    assert_eq!(
        recorder.handled(),
        positions(1..=6),
        "cleared, then every event again"
    );
    assert_eq!(recorder.calls.lock().unwrap().len(), 12);
    assert_eq!(checkpoints.load("Orders").await.unwrap(), 6);
}

#[tokio::test]
async fn a_failing_reset_stops_the_rebuild_with_the_checkpoint_at_zero() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    append(&store, "o-1", 2).await;
    let mut recorder = Recorder::new("Orders");
    recorder.reset_fails = true;
    let runner = runner(&store, &checkpoints, recorder.clone());
    runner.run_until_caught_up().await.unwrap();
    let error = runner.rebuild().await.unwrap_err();
    assert!(
        matches!(&error, RunnerError::ResetFailed { projection, .. } if projection == "Orders"),
        "{error:?}"
    );
    assert_eq!(recorder.calls.lock().unwrap().len(), 2, "no replay");
    assert_eq!(
        checkpoints.load("Orders").await.unwrap(),
        0,
        "the next run replays everything"
    );
}

// ---- Store trouble. ------------------------------------------------------------------------

/// The in-memory store, unavailable for the first `outages` reads.
#[derive(Debug, Clone)]
struct Flaky {
    store: InMemoryEventStore,
    outages: Arc<AtomicUsize>,
}

#[eventsource_runtime::async_trait]
impl EventStore for Flaky {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.store.append(stream, expected, events).await
    }
    async fn load(&self, stream: &StreamId, from: u64) -> Result<Vec<EventEnvelope>, StoreError> {
        self.store.load(stream, from).await
    }
    async fn read_all(&self, from: u64, limit: usize) -> Result<ReadBatch, StoreError> {
        let down = self
            .outages
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if down {
            return Err(StoreError::Unavailable("connection refused".into()));
        }
        self.store.read_all(from, limit).await
    }
    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.store.stream_version(stream).await
    }
    fn system_name(&self) -> &'static str {
        "in_memory"
    }
}

#[tokio::test]
async fn an_unavailable_store_is_waited_for_unless_told_otherwise() {
    let store = InMemoryEventStore::new();
    append(&store, "o-1", 3).await;
    let checkpoints = InMemoryCheckpointStore::new();
    let flaky = |outages| Flaky {
        store: store.clone(),
        outages: Arc::new(AtomicUsize::new(outages)),
    };
    let flaky_runner = |outages, recorder: Recorder| {
        ProjectionRunner::new(
            Arc::new(flaky(outages)),
            Arc::new(checkpoints.clone()),
            recorder,
        )
        .backoff(Duration::from_millis(1), Duration::from_millis(2))
    };

    // Three outages in a row, limited to three attempts: a typed stop.
    let recorder = Recorder::new("Orders");
    let error = flaky_runner(3, recorder.clone())
        .max_store_attempts(3)
        .run_until_caught_up()
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            RunnerError::Store {
                operation: "read_all",
                source: StoreError::Unavailable(_),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(recorder.handled().is_empty());

    // By default the runner waits for the store to come back.
    let reached = flaky_runner(10, recorder.clone())
        .run_until_caught_up()
        .await
        .unwrap();
    assert_eq!(reached, 3);
    assert_eq!(recorder.handled(), positions(1..=3));
}

// ---- One runner at a time. -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_never_handle_one_projection_at_once() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    let mut recorder = Recorder::new("Orders");
    recorder.delay = Duration::from_millis(1);
    let all_handled = |recorder: &Recorder, last: u64| {
        let handled = recorder.handled();
        (1..=last).all(|p| handled.contains(&p))
    };

    // The first runner takes the lease...
    let (first_projection, second_projection) = (recorder.instance(), recorder.instance());
    let first = runner(&store, &checkpoints, first_projection.clone()).batch_size(3);
    let (stop_first, first_stopped) = oneshot::channel::<()>();
    let first = tokio::spawn(async move { first.run(first_stopped).await });
    append(&store, "o-0", 5).await;
    eventually("the first events", || all_handled(&recorder, 5)).await;

    // ...the second waits for it while events pour in from several writers.
    let second = runner(&store, &checkpoints, second_projection.clone()).batch_size(3);
    let (stop_second, second_stopped) = oneshot::channel::<()>();
    let second = tokio::spawn(async move { second.run(second_stopped).await });
    let writers: Vec<_> = (1..=4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move { append(&store, &format!("o-{w}"), 15).await })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    eventually("65 events", || all_handled(&recorder, 65)).await;
    assert!(
        second_projection.calls.lock().unwrap().is_empty(),
        "the second waits"
    );

    // A third runner cannot even catch up meanwhile.
    let third = runner(&store, &checkpoints, recorder.instance());
    assert!(
        tokio::time::timeout(Duration::from_millis(100), third.run_until_caught_up())
            .await
            .is_err(),
        "waits for the lease"
    );

    // The first stops; the second takes over from the checkpoint.
    stop_first.send(()).unwrap();
    first.await.unwrap().unwrap();
    append(&store, "o-9", 20).await;
    eventually("the last 20 events", || all_handled(&recorder, 85)).await;
    stop_second.send(()).unwrap();
    second.await.unwrap().unwrap();

    assert_eq!(
        recorder.overlaps.load(Ordering::SeqCst),
        0,
        "never two handlers at once"
    );
    assert!(
        !second_projection.calls.lock().unwrap().is_empty(),
        "took over"
    );
    assert_eq!(checkpoints.load("Orders").await.unwrap(), 85);
    // A runner that stops saves its checkpoint first: here nothing came twice.
    assert_eq!(recorder.handled(), positions(1..=85));
}

#[tokio::test]
async fn shutdown_while_waiting_for_the_lease_returns() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    let _held = checkpoints
        .try_acquire("Orders")
        .await
        .unwrap()
        .expect("free");
    let recorder = Recorder::new("Orders");
    let waiting = runner(&store, &checkpoints, recorder.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move { waiting.run(stopped).await });
    append(&store, "o-1", 2).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        recorder.handled().is_empty(),
        "never while another holds the lease"
    );
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// A runner that waited for the lease waits its takeover grace after taking it before its
/// first handler call; one that takes a free lease starts at once.
#[tokio::test]
async fn a_runner_taking_over_waits_its_grace_before_the_first_event() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    append(&store, "o-1", 2).await;
    let grace = Duration::from_secs(1);

    let free = Recorder::new("Free");
    let started = Instant::now();
    runner(&store, &checkpoints, free.clone())
        .takeover_grace(grace)
        .run_until_caught_up()
        .await
        .unwrap();
    assert_eq!(free.handled(), positions(1..=2));
    assert!(started.elapsed() < grace, "a free lease: no wait");

    let held = checkpoints
        .try_acquire("Orders")
        .await
        .unwrap()
        .expect("free");
    let recorder = Recorder::new("Orders");
    let waiting = runner(&store, &checkpoints, recorder.clone()).takeover_grace(grace);
    let task = tokio::spawn(async move { waiting.run_until_caught_up().await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    held.release().await;
    let released = Instant::now();
    eventually("the events, once taken over", || {
        recorder.handled().len() == 2
    })
    .await;
    assert!(
        released.elapsed() >= grace,
        "handled {:?} after the release",
        released.elapsed()
    );
    task.await.unwrap().unwrap();
}

// ---- Telemetry. ----------------------------------------------------------------------------

/// Runs the scenario below once, under a span capture of its own thread, before the test
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

#[tokio::test]
async fn after_a_restart_the_projection_span_is_a_new_root_linked_to_the_append() {
    register_callsites();
    let capture = capture();
    let store = InMemoryEventStore::new();
    let stream = StreamId::new("Order", "o-1");
    let appended = store
        .append(
            &stream,
            ExpectedVersion::NoStream,
            vec![event("OrderPlaced", 1)],
        )
        .instrument(tracing::info_span!("POST /orders"))
        .await
        .unwrap();
    let spans = capture.spans();
    let append_span = spans
        .get("eventsource.event_store.append")
        .span_context
        .clone();
    let request_trace = spans.get("POST /orders").span_context.trace_id();
    assert_eq!(
        propagation::stored_span_context(&appended.events[0].metadata)
            .unwrap()
            .span_id(),
        append_span.span_id()
    );

    // "Restart": the append's spans are gone; a fresh runner reads the event back.
    capture.clear();
    let mut recorder = Recorder::new("Audit");
    recorder.traced = true;
    let runner = runner(&store, &InMemoryCheckpointStore::new(), recorder.clone());
    runner.run_until_caught_up().await.unwrap();

    let spans = capture.spans();
    let projection = spans.get("projection.Audit");
    assert!(spans.is_root(projection), "{}", spans.tree());
    assert_eq!(kind(projection), SpanKind::Consumer);
    assert_ne!(projection.span_context.trace_id(), request_trace);
    let links = &projection.links.links;
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].span_context.span_id(), append_span.span_id());
    assert_eq!(links[0].span_context.trace_id(), request_trace);
    assert_eq!(
        attribute(projection, attr::PROJECTION_NAME),
        Some(&Value::String("Audit".into()))
    );
    assert_eq!(
        attribute(projection, attr::EVENT_POSITION),
        Some(&Value::I64(1))
    );
    assert!(
        matches!(attribute(projection, attr::PROJECTION_LAG_MS), Some(Value::I64(lag)) if *lag >= 0)
    );
}

// ---- Lost leases. --------------------------------------------------------------------------

static METRICS: LazyLock<MetricCapture> = LazyLock::new(capture_metrics);

/// One lease of [`Losable`]: held until the test takes it away.
#[derive(Default)]
struct LeaseState {
    lost: AtomicBool,
    /// The real in-process lease, dropped when the lease is lost (as a database lock goes
    /// with its session), so that another runner can take the projection.
    inner: StdMutex<Option<Box<dyn ProjectionLease>>>,
}

struct LosableLease(Arc<LeaseState>);

#[eventsource_runtime::async_trait]
impl ProjectionLease for LosableLease {
    fn is_held(&self) -> bool {
        !self.0.lost.load(Ordering::SeqCst)
    }
    async fn release(self: Box<Self>) {
        let inner = self.0.inner.lock().unwrap().take();
        if let Some(inner) = inner {
            inner.release().await;
        }
    }
}

/// The in-memory checkpoint store whose leases the test can take away, as a database
/// session that ends takes its lock; it records every checkpoint save.
#[derive(Clone, Default)]
struct Losable {
    inner: InMemoryCheckpointStore,
    leases: Arc<StdMutex<Vec<Arc<LeaseState>>>>,
    saves: Arc<StdMutex<Vec<u64>>>,
}

impl Losable {
    /// Takes the newest lease away.
    fn lose_newest(&self) {
        let newest = self.leases.lock().unwrap().last().cloned().unwrap();
        newest.lost.store(true, Ordering::SeqCst);
        drop(newest.inner.lock().unwrap().take());
    }

    fn saves(&self) -> Vec<u64> {
        self.saves.lock().unwrap().clone()
    }
}

#[eventsource_runtime::async_trait]
impl CheckpointStore for Losable {
    async fn load(&self, projection: &str) -> Result<u64, StoreError> {
        self.inner.load(projection).await
    }
    async fn save(&self, projection: &str, position: u64) -> Result<(), StoreError> {
        self.saves.lock().unwrap().push(position);
        self.inner.save(projection, position).await
    }
    async fn try_acquire(
        &self,
        projection: &str,
    ) -> Result<Option<Box<dyn ProjectionLease>>, StoreError> {
        let Some(inner) = self.inner.try_acquire(projection).await? else {
            return Ok(None);
        };
        let state = Arc::new(LeaseState {
            lost: AtomicBool::new(false),
            inner: StdMutex::new(Some(inner)),
        });
        self.leases.lock().unwrap().push(Arc::clone(&state));
        Ok(Some(Box::new(LosableLease(state))))
    }
    async fn park(&self, projection: &str, event: &ParkedEvent) -> Result<(), StoreError> {
        self.inner.park(projection, event).await
    }
    async fn parked(&self, projection: &str) -> Result<Vec<ParkedEvent>, StoreError> {
        self.inner.parked(projection).await
    }
    async fn unpark(&self, projection: &str, position: u64) -> Result<bool, StoreError> {
        self.inner.unpark(projection, position).await
    }
}

fn losable_runner(
    store: &InMemoryEventStore,
    checkpoints: &Losable,
    projection: Recorder,
) -> ProjectionRunner<Recorder> {
    ProjectionRunner::new(
        Arc::new(store.clone()),
        Arc::new(checkpoints.clone()),
        projection,
    )
    .poll_interval(Duration::from_millis(10))
    .lease_retry_interval(Duration::from_millis(10))
    .backoff(Duration::from_millis(1), Duration::from_millis(4))
}

#[tokio::test]
async fn a_lost_lease_stops_the_runner_before_its_next_handler_call_and_save() {
    LazyLock::force(&METRICS);
    let store = InMemoryEventStore::new();
    append(&store, "o-1", 6).await;
    let checkpoints = Losable::default();
    let losing = checkpoints.clone();
    // The lease is lost while event 3 is being handled.
    let recorder = Recorder::new("LostOrders").failing(move |e, _| {
        if e.position == 3 {
            losing.lose_newest();
        }
        false
    });

    let error = losable_runner(&store, &checkpoints, recorder.clone())
        .batch_size(2)
        .run_until_caught_up()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RunnerError::LeaseLost { projection } if projection == "LostOrders"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "projection `LostOrders` stopped: its lease was lost"
    );
    assert_eq!(
        recorder.handled(),
        positions(1..=3),
        "the handler running when the lease went finishes; no further call"
    );
    assert_eq!(
        checkpoints.saves(),
        [2],
        "no checkpoint saved after the loss (event 3 comes again to whoever takes over)"
    );
    assert_eq!(
        METRICS.total(
            attr::METRIC_PROJECTION_LEASE_LOST,
            &[(attr::METRIC_ATTR_PROJECTION_NAME, "LostOrders")]
        ),
        1
    );
    assert_eq!(
        METRICS.unit(attr::METRIC_PROJECTION_LEASE_LOST).as_deref(),
        Some("{lease}")
    );

    // The next runner takes the lease and carries on from the saved checkpoint.
    let next = Recorder::new("LostOrders");
    let reached = losable_runner(&store, &checkpoints, next.clone())
        .run_until_caught_up()
        .await
        .unwrap();
    assert_eq!(reached, 6);
    assert_eq!(next.handled(), positions(3..=6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_following_runner_that_loses_its_lease_waits_for_it_again() {
    LazyLock::force(&METRICS);
    let store = InMemoryEventStore::new();
    let checkpoints = Losable::default();
    let mut recorder = Recorder::new("Followers");
    recorder.delay = Duration::from_millis(1);
    let lose_once = Arc::new(AtomicBool::new(false));
    let losing = checkpoints.clone();
    let recorder = recorder.failing(move |e, _| {
        if e.position == 10 && !lose_once.swap(true, Ordering::SeqCst) {
            losing.lose_newest();
        }
        false
    });
    let (first, second) = (recorder.instance(), recorder.instance());
    let all_handled = |last: u64| {
        let handled = recorder.handled();
        (1..=last).all(|p| handled.contains(&p))
    };

    // The first runner holds the lease; after losing it, it waits a whole retry interval
    // before trying again, so the second (polling every 10 ms) takes over.
    let a = losable_runner(&store, &checkpoints, first.clone())
        .batch_size(5)
        .lease_retry_interval(Duration::from_secs(30));
    let (stop_a, a_stopped) = oneshot::channel::<()>();
    let a = tokio::spawn(async move { a.run(a_stopped).await });
    eventually("the first runner to hold the lease", || {
        !checkpoints.leases.lock().unwrap().is_empty()
    })
    .await;
    let b = losable_runner(&store, &checkpoints, second.clone()).batch_size(5);
    let (stop_b, b_stopped) = oneshot::channel::<()>();
    let b = tokio::spawn(async move { b.run(b_stopped).await });
    append(&store, "o-1", 30).await;
    eventually("30 events", || all_handled(30)).await;

    let first_calls: Vec<u64> = first.calls.lock().unwrap().iter().map(|c| c.0).collect();
    assert_eq!(
        first_calls,
        positions(1..=10),
        "the first makes no handler call after losing its lease (during event 10)"
    );
    let second_calls: Vec<u64> = second.calls.lock().unwrap().iter().map(|c| c.0).collect();
    let from = second_calls[0];
    assert_eq!(
        second_calls,
        positions(from..=30),
        "the second takes over from the last checkpoint the first saved"
    );
    assert!(
        from <= 10,
        "the first could not save its checkpoint after event 10: {from}"
    );

    // Lost while idle: noticed at the next wake-up; the runner takes the lease again and
    // follows on.
    checkpoints.lose_newest();
    eventually(
        "the idle loss to be noticed and the lease taken again",
        || checkpoints.leases.lock().unwrap().len() == 3,
    )
    .await;
    append(&store, "o-2", 5).await;
    eventually("35 events", || all_handled(35)).await;
    assert_eq!(
        METRICS.total(
            attr::METRIC_PROJECTION_LEASE_LOST,
            &[(attr::METRIC_ATTR_PROJECTION_NAME, "Followers")]
        ),
        2
    );
    stop_a.send(()).unwrap();
    stop_b.send(()).unwrap();
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
    assert_eq!(checkpoints.inner.load("Followers").await.unwrap(), 35);
    // (Whether the first instance's last handler call, running when its lease went, could
    // overlap the second's first ones depends on how long the takeover takes: here an
    // in-memory lease is taken at once. The PostgreSQL store's tests check it with a real
    // session terminated under load.)
}

// ---- Unreadable events. --------------------------------------------------------------------

/// The in-memory store with events the test declares unreadable (as damaged rows are).
/// `read_all` follows the stores' rule (the events before an unreadable one; its error when
/// it comes first), or, `whole_batch`, fails any batch holding one, as a store written
/// before the rule might.
#[derive(Clone, Default)]
struct Damaged {
    store: InMemoryEventStore,
    unreadable: Arc<StdMutex<Vec<u64>>>,
    whole_batch: bool,
}

impl Damaged {
    fn damage(&self, position: u64) {
        self.unreadable.lock().unwrap().push(position);
    }
    fn repair(&self, position: u64) {
        self.unreadable.lock().unwrap().retain(|p| *p != position);
    }
}

#[eventsource_runtime::async_trait]
impl EventStore for Damaged {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.store.append(stream, expected, events).await
    }
    async fn load(&self, stream: &StreamId, from: u64) -> Result<Vec<EventEnvelope>, StoreError> {
        self.store.load(stream, from).await
    }
    async fn read_all(&self, from: u64, limit: usize) -> Result<ReadBatch, StoreError> {
        let unreadable = self.unreadable.lock().unwrap().clone();
        let mut readable = Vec::new();
        for event in self.store.read_all(from, limit).await? {
            if unreadable.contains(&event.position) {
                let error = StoreError::Corrupt {
                    stream: event.stream,
                    version: event.version,
                    position: event.position,
                    reason: "schema_version: out of range integral type conversion".into(),
                };
                if readable.is_empty() || self.whole_batch {
                    return Err(error);
                }
                return Ok(ReadBatch::unreadable(readable, error));
            }
            readable.push(event);
        }
        Ok(ReadBatch::new(readable, limit))
    }
    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.store.stream_version(stream).await
    }
    fn system_name(&self) -> &'static str {
        "in_memory"
    }
}

fn damaged_runner(
    store: &Damaged,
    checkpoints: &InMemoryCheckpointStore,
    projection: Recorder,
) -> ProjectionRunner<Recorder> {
    ProjectionRunner::new(
        Arc::new(store.clone()),
        Arc::new(checkpoints.clone()),
        projection,
    )
    .batch_size(4)
    .poll_interval(Duration::from_millis(10))
    .backoff(Duration::from_millis(1), Duration::from_millis(4))
}

#[tokio::test]
async fn an_unreadable_event_stops_the_runner_after_the_events_before_it() {
    for whole_batch in [false, true] {
        let damaged = Damaged {
            whole_batch,
            ..Damaged::default()
        };
        append(&damaged.store, "o-1", 12).await;
        damaged.damage(10);
        let checkpoints = InMemoryCheckpointStore::new();
        let recorder = Recorder::new("Stopped");

        let error = damaged_runner(&damaged, &checkpoints, recorder.clone())
            .run_until_caught_up()
            .await
            .unwrap_err();
        let RunnerError::UnreadableEvent {
            projection,
            position,
            source,
        } = &error
        else {
            panic!("unexpected error {error:?}");
        };
        assert_eq!((projection.as_str(), *position), ("Stopped", 10));
        assert!(
            matches!(source, StoreError::Corrupt { position: 10, reason, .. } if reason.starts_with("schema_version")),
            "{source:?}"
        );
        assert_eq!(
            error.to_string(),
            "projection `Stopped` stopped: the stored event at position 10 is unreadable"
        );
        assert_eq!(
            recorder.handled(),
            positions(1..=9),
            "every event before the unreadable one (whole batch failing: {whole_batch})"
        );
        assert_eq!(checkpoints.load("Stopped").await.unwrap(), 9);
        assert!(checkpoints.parked("Stopped").await.unwrap().is_empty());

        // `run` stops the same way instead of following.
        let (_stop, stopped) = oneshot::channel::<()>();
        let again = tokio::time::timeout(
            Duration::from_secs(5),
            damaged_runner(&damaged, &checkpoints, recorder.instance()).run(stopped),
        )
        .await
        .expect("stops by itself")
        .unwrap_err();
        assert!(
            matches!(again, RunnerError::UnreadableEvent { position: 10, .. }),
            "{again:?}"
        );
    }
}

#[tokio::test]
async fn a_parked_event_is_listed_and_retried_and_the_rest_is_handled() {
    LazyLock::force(&METRICS);
    register_callsites();
    let capture = capture();
    let damaged = Damaged::default();
    append(&damaged.store, "o-1", 12).await;
    damaged.damage(10);
    let checkpoints = InMemoryCheckpointStore::new();
    let recorder = Recorder::new("Parking");
    let runner = damaged_runner(&damaged, &checkpoints, recorder.clone())
        .on_unreadable(UnreadablePolicy::Park);

    assert_eq!(runner.run_until_caught_up().await.unwrap(), 12);
    assert_eq!(recorder.handled(), [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12]);
    let parked = runner.parked().await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].position, 10);
    assert!(
        parked[0].error.contains("position 10")
            && parked[0].error.contains("schema_version: out of range"),
        "{}",
        parked[0].error
    );
    assert_eq!(checkpoints.load("Parking").await.unwrap(), 12);
    assert_eq!(
        METRICS.total(
            attr::METRIC_PROJECTION_EVENTS_PARKED,
            &[(attr::METRIC_ATTR_PROJECTION_NAME, "Parking")]
        ),
        1
    );

    // An ERROR span, a root, says which event and why (projection spans being off).
    let spans = capture.spans();
    let park = spans.get(attr::SPAN_PROJECTION_PARK);
    assert!(spans.is_root(park), "{}", spans.tree());
    assert_eq!(kind(park), SpanKind::Internal);
    assert!(
        matches!(&park.status, Status::Error { description } if description.contains("position 10")),
        "{:?}",
        park.status
    );
    assert_eq!(attribute(park, attr::EVENT_POSITION), Some(&Value::I64(10)));
    assert_eq!(
        attribute(park, attr::PROJECTION_NAME),
        Some(&Value::String("Parking".into()))
    );
    assert_eq!(attribute(park, attr::EVENT_SEQUENCE), Some(&Value::I64(10)));
    assert_eq!(events(park, attr::SPAN_EVENT_EXCEPTION).len(), 1);

    // Still unreadable: a retry keeps it parked.
    let still = runner.retry_parked().await.unwrap();
    assert_eq!(still.iter().map(|p| p.position).collect::<Vec<_>>(), [10]);
    assert!(!recorder.handled().contains(&10));

    // Repaired: the retry hands it over and unparks it; the checkpoint stays.
    damaged.repair(10);
    assert!(runner.retry_parked().await.unwrap().is_empty());
    assert_eq!(recorder.handled().last(), Some(&10));
    assert!(runner.parked().await.unwrap().is_empty());
    assert_eq!(checkpoints.load("Parking").await.unwrap(), 12);

    // A parked event that is gone from the store is simply unparked.
    checkpoints
        .park("Parking", &ParkedEvent::new(99, "lost"))
        .await
        .unwrap();
    assert!(runner.retry_parked().await.unwrap().is_empty());
}

// ---- Reading the runner's state while holding the projection. ------------------------------

#[tokio::test]
async fn checkpoint_and_parked_do_not_wait_for_the_projections_lock() {
    let store = InMemoryEventStore::new();
    append(&store, "o-1", 3).await;
    let checkpoints = InMemoryCheckpointStore::new();
    checkpoints
        .park("Holding", &ParkedEvent::new(2, "damaged"))
        .await
        .unwrap();

    // Built from the projection, and from a shared one; each has run once.
    let built = runner(&store, &checkpoints, Recorder::new("Holding"));
    let shared = ProjectionRunner::shared(
        Arc::new(store.clone()),
        Arc::new(checkpoints.clone()),
        Arc::new(tokio::sync::Mutex::new(Recorder::new("Holding"))),
    );
    assert_eq!(built.run_until_caught_up().await.unwrap(), 3);
    for runner in [&built, &shared] {
        let _held = runner.projection().lock().await;
        let (checkpoint, parked) = tokio::time::timeout(Duration::from_secs(5), async {
            (runner.checkpoint().await, runner.parked().await)
        })
        .await
        .expect("checkpoint() and parked() do not lock the projection");
        assert_eq!(checkpoint.unwrap(), 3);
        assert_eq!(
            parked
                .unwrap()
                .iter()
                .map(|p| p.position)
                .collect::<Vec<_>>(),
            [2]
        );
    }

    // A shared projection that was locked when its runner was built: the name is read at
    // the runner's first lock of it.
    let projection = Arc::new(tokio::sync::Mutex::new(Recorder::new("Holding")));
    let late = {
        let _held = projection.lock().await;
        ProjectionRunner::shared(
            Arc::new(store.clone()),
            Arc::new(checkpoints.clone()),
            Arc::clone(&projection),
        )
    };
    assert_eq!(late.checkpoint().await.unwrap(), 3);
    let _held = late.projection().lock().await;
    let checkpoint = tokio::time::timeout(Duration::from_secs(5), late.checkpoint())
        .await
        .expect("the name is kept after its first read");
    assert_eq!(checkpoint.unwrap(), 3);
}
