//! The `worker` child: one worker of a projection split into segments, claimed on
//! PostgreSQL, its read model written in the checkpoint's transaction on condition of the
//! claim (`Fenced`): a row in `handled` per event, with the segment and the claim's epoch,
//! by the server's clock. What commits is what `handled` holds, so the history of handling
//! is read from there by the test, not written here.

use std::sync::Arc;
use std::time::Duration;

use eventsource_runtime::event::EventEnvelope;
use eventsource_runtime::postgres::{Fenced, FencedProjection};
use eventsource_runtime::projection::ProjectionError;
use eventsource_runtime::projection::runner::ProjectionRunner;
use eventsource_runtime::projection::segments::{Fence, SegmentClaims};
use eventsource_runtime::sqlx::{self, PgConnection};

use super::{PROJECTION, Told, terminated};

/// The segments the projection is split into.
pub const SEGMENTS: u32 = 4;

/// Writes each event's row in the checkpoint's transaction.
struct Recording {
    insert: String,
    runner: String,
}

#[eventsource_runtime::async_trait]
impl FencedProjection for Recording {
    fn name(&self) -> &str {
        PROJECTION
    }

    async fn handle(
        &mut self,
        tx: &mut PgConnection,
        event: &EventEnvelope,
    ) -> Result<(), ProjectionError> {
        let claim = Fence::current().map(|fence| fence.claim());
        sqlx::query(&self.insert)
            .bind(event.event_id)
            .bind(&self.runner)
            .bind(claim.map(|claim| i32::try_from(claim.segment.index()).unwrap()))
            .bind(claim.map(|claim| i64::try_from(claim.epoch).unwrap()))
            .execute(tx)
            .await
            .map_err(ProjectionError::handler)?;
        Ok(())
    }
}

/// Runs the worker until SIGTERM.
pub async fn run(told: Told) {
    let Told {
        schema,
        name,
        timeout,
        store,
        ..
    } = told;
    let checkpoints = store.checkpoint_store();
    let projection = Recording {
        insert: format!(
            "INSERT INTO \"{schema}\".handled (event_id, runner, segment, epoch) \
             VALUES ($1, $2, $3, $4)"
        ),
        runner: name.clone(),
    };
    let runner = ProjectionRunner::new(
        Arc::new(store),
        Arc::new(checkpoints.clone()),
        // Scaled with the claim timeout, as the defaults are equal: a worker paused inside a
        // transaction holds its row locks until the server ends it.
        Fenced::new(checkpoints.clone(), projection).idle_transaction_timeout(timeout),
    )
    .poll_interval(Duration::from_millis(50));
    let claims: Arc<dyn SegmentClaims> = Arc::new(checkpoints);
    let worker = runner
        .segmented(claims, SEGMENTS)
        .claim_timeout(timeout)
        .rebalance_interval(timeout / 8)
        .worker_name(name.clone());
    worker.run(terminated()).await.unwrap();
    println!("{name} stopped");
}
