//! The `runner` child: a projection runner on PostgreSQL, holding the projection's lease,
//! that records, for every event it handles, a row in `handled` (on the same database, with
//! the server's clock) and its start and commit in its history.

use std::sync::Arc;
use std::time::Duration;

use eventsource_runtime::event::EventEnvelope;
use eventsource_runtime::projection::runner::ProjectionRunner;
use eventsource_runtime::projection::{Projection, ProjectionError};
use eventsource_runtime::sqlx::{self, PgPool};
use eventsource_test_support::history::{Call, Handling, HistoryWriter};

use super::{Told, terminated};

/// The projection's name (and the history's handler).
pub const PROJECTION: &str = "Counted";
/// Events between checkpoints (and the most unsaved): with the batch, the window an
/// at-least-once takeover may handle again.
pub const CHECKPOINT_EVERY: usize = 50;
/// Events a read brings.
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
        let handling = Handling::of(PROJECTION, event);
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

/// Runs the projection until SIGTERM.
pub async fn run(told: Told) {
    let Told {
        schema,
        name,
        timeout,
        history,
        store,
    } = told;
    let checkpoints = store.checkpoint_store().lease_timeout(timeout);
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
    runner.run(terminated()).await.unwrap();
    println!("{name} stopped");
}
