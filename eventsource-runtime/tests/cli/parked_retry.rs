//! `eventsource parked retry` with a real runner: a following projection parks an event it
//! cannot read (its row is damaged), the row is repaired, the command line asks for the
//! retry in another process, and the running runner hands that very event to the handler on
//! its next poll.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventsource_runtime::event::{EventEnvelope, NewEvent, StreamId};
use eventsource_runtime::projection::checkpoint::CheckpointStore;
use eventsource_runtime::projection::runner::{ProjectionRunner, UnreadablePolicy};
use eventsource_runtime::projection::{Projection, ProjectionError};
use eventsource_runtime::sqlite::SqliteEventStore;
use eventsource_runtime::sqlx;
use eventsource_runtime::store::{EventStore, ExpectedVersion};
use serde_json::json;
use uuid::Uuid;

use crate::eventsource;

/// Keeps the ids of the events it handled.
#[derive(Clone, Default)]
struct Seen {
    handled: Arc<Mutex<Vec<Uuid>>>,
}

#[eventsource_runtime::async_trait]
impl Projection for Seen {
    fn name(&self) -> &str {
        "seen"
    }

    async fn handle(&mut self, event: &EventEnvelope) -> Result<(), ProjectionError> {
        self.handled.lock().unwrap().push(event.event_id);
        Ok(())
    }
}

/// Polls `done` every 20 ms for up to 10 s.
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..500 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_event_is_retried_by_the_running_projection_on_request() {
    let dir = std::env::temp_dir().join(format!("eventsource-cli-retry-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("events.db");
    let store = SqliteEventStore::connect(file.to_str().unwrap())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let target = format!("sqlite:{}", file.display());
    let placed = |bad: bool| NewEvent::new("OrderPlaced", 1, json!({ "bad": bad }));
    let appended = store
        .append(
            &StreamId::new("Order", "o-1"),
            ExpectedVersion::NoStream,
            vec![placed(false), placed(true), placed(false)],
        )
        .await
        .unwrap();
    let ids: Vec<Uuid> = appended.events.iter().map(|e| e.event_id).collect();
    let bad_position = appended.events[1].position;

    let row = |payload: &str| {
        format!("UPDATE events SET payload = '{payload}' WHERE position = {bad_position}")
    };
    sqlx::raw_sql(&row("{not json"))
        .execute(store.pool())
        .await
        .unwrap();
    let seen = Seen::default();
    let checkpoints = store.checkpoint_store();
    let runner = ProjectionRunner::new(
        Arc::new(store.clone()),
        Arc::new(checkpoints.clone()),
        seen.clone(),
    )
    .on_unreadable(UnreadablePolicy::Park)
    .poll_interval(Duration::from_millis(50));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        runner
            .run(async move {
                let _ = stopped.await;
            })
            .await
    });

    until("the bad order is parked, the others handled", async || {
        let parked = checkpoints.parked("seen").await.unwrap();
        parked.len() == 1 && seen.handled.lock().unwrap().len() == 2
    })
    .await;
    assert_eq!(*seen.handled.lock().unwrap(), [ids[0], ids[2]]);
    let listed = eventsource(&["--store", &target, "parked", "list", "seen", "--json"])
        .expect(0)
        .json();
    assert_eq!(listed[0]["position"], bad_position, "{listed:#}");
    assert!(
        listed[0]["error"].as_str().unwrap().contains("payload"),
        "{listed:#}"
    );

    // Nothing parked there, or no such projection: not found, nothing asked.
    let position = bad_position.to_string();
    let other = (bad_position + 1).to_string();
    let args = ["--store", &target, "parked", "retry", "seen", "--position"];
    let run = eventsource(&[&args[..], &[other.as_str()]].concat()).expect(3);
    assert!(
        run.stderr.contains("no event parked at position"),
        "{}",
        run.stderr
    );
    eventsource(&["--store", &target, "parked", "retry", "nosuch"]).expect(3);
    assert!(checkpoints.retry_requests("seen").await.unwrap().is_empty());

    // Repaired; asked from another process; retried by the running runner.
    sqlx::raw_sql(&row("{\"bad\":true}"))
        .execute(store.pool())
        .await
        .unwrap();
    let run = eventsource(&[&args[..], &[position.as_str()]].concat()).expect(0);
    assert!(
        run.stdout
            .contains("requested; the running projection retries it on its next poll"),
        "{}",
        run.stdout
    );
    until(
        "the running projection handles the parked event",
        async || seen.handled.lock().unwrap().contains(&ids[1]),
    )
    .await;
    until("it is no longer parked", async || {
        checkpoints.parked("seen").await.unwrap().is_empty()
    })
    .await;
    assert!(checkpoints.retry_requests("seen").await.unwrap().is_empty());
    eventsource(&[&args[..], &[position.as_str()]].concat()).expect(3);

    let _ = stop.send(());
    running.await.unwrap().unwrap();
    store.pool().close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
