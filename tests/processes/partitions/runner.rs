//! The child: a projection runner on PostgreSQL that records, for every event it handles, a
//! row in `handled` (on the same database, with the server's clock) and its start and
//! commit in its history. Run as this test binary again, told by the environment.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use eventsource_runtime::event::EventEnvelope;
use eventsource_runtime::postgres::{PostgresCheckpointStore, PostgresEventStore};
use eventsource_runtime::projection::runner::ProjectionRunner;
use eventsource_runtime::projection::{Projection, ProjectionError};
use eventsource_runtime::sqlx::{self, PgPool};
use eventsource_test_support::history::{Call, Handling, HistoryWriter};

/// Set to `runner` in the child's environment.
pub const CHILD: &str = "EVENTSOURCE_PARTITION_CHILD";
/// The database URL the child connects to (the host side of its namespace, or loopback).
pub const URL: &str = "EVENTSOURCE_PARTITION_CHILD_URL";
/// The schema its stores and `handled` are in.
pub const SCHEMA: &str = "EVENTSOURCE_PARTITION_CHILD_SCHEMA";
/// The folder its history goes to.
pub const HISTORY: &str = "EVENTSOURCE_PARTITION_CHILD_HISTORY";
/// Its name: its history's process, its `handled` rows' runner, its `application_name`.
pub const NAME: &str = "EVENTSOURCE_PARTITION_CHILD_NAME";
/// The lease timeout, in milliseconds.
pub const LEASE_TIMEOUT_MS: &str = "EVENTSOURCE_PARTITION_CHILD_LEASE_TIMEOUT_MS";

/// The projection's name (and the history's handler).
pub const PROJECTION: &str = "Counted";
/// Events between checkpoints (and the most unsaved): with the batch, the window an
/// at-least-once takeover may handle again.
pub const CHECKPOINT_EVERY: usize = 50;
pub const BATCH: usize = 20;

/// Records each event it handles in `handled` and in its history.
struct Recording {
    pool: PgPool,
    insert: String,
    runner: String,
    history: Arc<HistoryWriter>,
}

#[eventsource_runtime::async_trait]
impl Projection for Recording {
    fn name(&self) -> &str {
        PROJECTION
    }

    async fn handle(&mut self, event: &EventEnvelope) -> Result<(), ProjectionError> {
        let handling = Handling {
            handler: PROJECTION.to_owned(),
            event_id: event.event_id,
            stream: event.stream.to_string(),
            version: event.version,
            position: event.position,
            segment: None,
            epoch: None,
        };
        let started = self
            .history
            .invoke(Call::HandleStart(handling))
            .map_err(ProjectionError::handler)?;
        let inserted = sqlx::query(&self.insert)
            .bind(event.event_id)
            .bind(&self.runner)
            .execute(&self.pool)
            .await;
        match inserted {
            Ok(_) => {
                self.history
                    .ok(&started)
                    .map_err(ProjectionError::handler)?;
                Ok(())
            }
            Err(error) => {
                // A statement the server refused did nothing; one whose connection failed
                // may have.
                if error.as_database_error().is_some() {
                    self.history
                        .fail(&started)
                        .map_err(ProjectionError::handler)?;
                } else {
                    self.history
                        .info(&started)
                        .map_err(ProjectionError::handler)?;
                }
                Err(ProjectionError::handler(error))
            }
        }
    }
}

/// The child's side: runs the projection until SIGTERM.
pub async fn run() {
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .finish();
    let _logs = tracing::subscriber::set_default(logs);
    let var = |name| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let (url, schema, name) = (var(URL), var(SCHEMA), var(NAME));
    let lease_timeout = Duration::from_millis(var(LEASE_TIMEOUT_MS).parse().unwrap());
    let history = Arc::new(HistoryWriter::create(PathBuf::from(var(HISTORY)), &name).unwrap());
    let url = format!("{url}?application_name={name}");
    let store = PostgresEventStore::connect(&url)
        .await
        .unwrap()
        .with_schema(&schema)
        .unwrap();
    let checkpoints = PostgresCheckpointStore::from_pool(store.pool().clone())
        .with_schema(&schema)
        .unwrap()
        .lease_timeout(lease_timeout);
    let projection = Recording {
        pool: store.pool().clone(),
        insert: format!("INSERT INTO \"{schema}\".handled (event_id, runner) VALUES ($1, $2)"),
        runner: name.clone(),
        history,
    };
    let runner = ProjectionRunner::new(Arc::new(store), Arc::new(checkpoints), projection)
        .batch_size(BATCH)
        .checkpoint_every(CHECKPOINT_EVERY)
        .max_unsaved_events(CHECKPOINT_EVERY)
        .poll_interval(Duration::from_millis(50))
        .lease_retry_interval(Duration::from_millis(250));
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    let stopped = async move {
        terminate.recv().await;
    };
    runner.run(stopped).await.unwrap();
    println!("{name} stopped");
}
