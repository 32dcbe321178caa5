//! Projections that take events in batches (`Projection::max_batch` > 1) under the runner:
//! runs of consecutive events the projection handles, events it does not handle passed
//! over, a failure part-way through a run retried from the event that failed (the ones
//! before it applied once), a typed stop after the attempts, one span per call.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventsource_runtime::event::NewEvent;
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::{CheckpointStore, InMemoryCheckpointStore};
use eventsource_runtime::projection::runner::{ProjectionRunner, RunnerError};
use eventsource_runtime::projection::{BatchFailure, Projection, ProjectionError};
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::{attribute, capture};
use opentelemetry::Value;

/// Records each call's positions; fails the event at `fail_at` on its first `failures`
/// deliveries, after applying the events before it in the same call.
#[derive(Clone, Default)]
struct Batches {
    max_batch: usize,
    /// Each call: the positions handed over.
    calls: Arc<Mutex<Vec<Vec<u64>>>>,
    /// The positions applied, in order.
    applied: Arc<Mutex<Vec<u64>>>,
    fail_at: Option<u64>,
    failures: Arc<Mutex<u32>>,
    traced: bool,
}

#[eventsource_runtime::async_trait]
impl Projection for Batches {
    fn name(&self) -> &str {
        "Batches"
    }

    fn handles(&self, event_type: &str) -> bool {
        event_type != "Ignored"
    }

    fn tracing_enabled(&self) -> bool {
        self.traced
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }

    async fn handle(&mut self, _: &EventEnvelope) -> Result<(), ProjectionError> {
        unreachable!("a batch projection is handed batches")
    }

    async fn handle_batch(&mut self, events: &[EventEnvelope]) -> Result<(), BatchFailure> {
        let positions: Vec<u64> = events.iter().map(|e| e.position).collect();
        self.calls.lock().unwrap().push(positions);
        for (handled, event) in events.iter().enumerate() {
            assert_ne!(event.event_type, "Ignored", "only handled types");
            if Some(event.position) == self.fail_at {
                let mut failures = self.failures.lock().unwrap();
                if *failures > 0 {
                    *failures -= 1;
                    let error = ProjectionError::handler(format!("{} failed", event.position));
                    return Err(BatchFailure::new(handled, error));
                }
            }
            self.applied.lock().unwrap().push(event.position);
        }
        Ok(())
    }
}

/// Appends one event per type, in order, to one stream.
async fn store_with(types: &[&'static str]) -> InMemoryEventStore {
    let store = InMemoryEventStore::new();
    let stream = StreamId::new("Order", "o-1");
    for (n, event_type) in types.iter().enumerate() {
        let event = NewEvent::new(*event_type, 1, serde_json::json!({ "n": n }));
        store
            .append(&stream, ExpectedVersion::Any, vec![event])
            .await
            .unwrap();
    }
    store
}

fn runner(
    store: &InMemoryEventStore,
    checkpoints: &InMemoryCheckpointStore,
    projection: Batches,
) -> ProjectionRunner<Batches> {
    ProjectionRunner::new(
        Arc::new(store.clone()),
        Arc::new(checkpoints.clone()),
        projection,
    )
    .backoff(Duration::from_millis(1), Duration::from_millis(2))
}

#[tokio::test]
async fn runs_of_handled_events_go_in_one_call_and_others_are_passed_over() {
    let store = store_with(&["A", "A", "Ignored", "A", "A", "A", "A", "Ignored"]).await;
    let checkpoints = InMemoryCheckpointStore::new();
    let projection = Batches {
        max_batch: 3,
        ..Batches::default()
    };
    let reached = runner(&store, &checkpoints, projection.clone())
        .run_until_caught_up()
        .await
        .unwrap();
    assert_eq!(
        reached, 8,
        "the ignored last event moves the checkpoint too"
    );
    assert_eq!(
        *projection.calls.lock().unwrap(),
        [vec![1, 2], vec![4, 5, 6], vec![7]]
    );
    assert_eq!(*projection.applied.lock().unwrap(), [1, 2, 4, 5, 6, 7]);
    assert_eq!(checkpoints.load("Batches").await.unwrap(), 8);
}

#[tokio::test]
async fn a_failure_part_way_is_retried_from_the_event_that_failed() {
    let store = store_with(&["A"; 6]).await;
    let checkpoints = InMemoryCheckpointStore::new();
    let projection = Batches {
        max_batch: 10,
        fail_at: Some(4),
        failures: Arc::new(Mutex::new(2)),
        ..Batches::default()
    };
    runner(&store, &checkpoints, projection.clone())
        .run_until_caught_up()
        .await
        .unwrap();
    assert_eq!(
        *projection.calls.lock().unwrap(),
        [vec![1, 2, 3, 4, 5, 6], vec![4, 5, 6], vec![4, 5, 6]],
        "the events before the failure are not handed over again"
    );
    assert_eq!(*projection.applied.lock().unwrap(), [1, 2, 3, 4, 5, 6]);
}

#[tokio::test]
async fn attempts_run_out_on_the_failing_event_with_the_ones_before_it_checkpointed() {
    let store = store_with(&["A"; 6]).await;
    let checkpoints = InMemoryCheckpointStore::new();
    let projection = Batches {
        max_batch: 10,
        fail_at: Some(4),
        failures: Arc::new(Mutex::new(u32::MAX)),
        ..Batches::default()
    };
    let error = runner(&store, &checkpoints, projection.clone())
        .max_attempts(3)
        .run_until_caught_up()
        .await
        .unwrap_err();
    let RunnerError::HandlerFailed {
        position, attempts, ..
    } = error
    else {
        panic!("expected HandlerFailed, got {error:?}");
    };
    assert_eq!((position, attempts), (4, 3));
    assert_eq!(checkpoints.load("Batches").await.unwrap(), 3);
    assert_eq!(*projection.applied.lock().unwrap(), [1, 2, 3]);
}

#[tokio::test]
async fn each_call_is_one_span_linked_to_every_event_it_carried() {
    let capture = capture();
    let store = store_with(&["A"; 4]).await;
    capture.clear();
    let projection = Batches {
        max_batch: 10,
        traced: true,
        ..Batches::default()
    };
    runner(&store, &InMemoryCheckpointStore::new(), projection)
        .run_until_caught_up()
        .await
        .unwrap();
    let spans = capture.spans();
    let batches = spans.all("projection.Batches");
    assert_eq!(batches.len(), 1, "{:?}", spans.names());
    let span = batches[0];
    assert!(spans.is_root(span));
    assert_eq!(
        attribute(span, attr::EVENT_COUNT),
        Some(&Value::I64(4)),
        "the events in the call"
    );
    assert_eq!(attribute(span, attr::EVENT_POSITION), Some(&Value::I64(1)));
    assert_eq!(span.links.len(), 4, "one link per event");
}
