//! A runner as one segment's, under a claim its worker already holds: built from the
//! worker's runner, run until stopped or the claim is lost.

use std::sync::{Arc, OnceLock};

use super::shutdown::Shutdown;
use super::{Halt, Mode, ProjectionRunner, RunnerError};
use crate::event::upcast::reading_for;
use crate::health::{ComponentState, LeaseState};
use crate::projection::Projection;
use crate::projection::checkpoint::ProjectionLease;
use crate::store::Segment;

impl<P: Projection> ProjectionRunner<P> {
    /// A runner of the same projection, stores and settings for `segment` of the log, its
    /// checkpoint and health under the segment's name (`projection` being the projection's).
    pub(in crate::projection) fn for_segment(&self, segment: Segment, projection: &str) -> Self {
        let name = OnceLock::from(segment.checkpoint_name(projection));
        Self {
            probe: Self::probe(
                self.probe.kind,
                name,
                segment,
                &self.store,
                &self.checkpoints,
            ),
            store: Arc::clone(&self.store),
            checkpoints: Arc::clone(&self.checkpoints),
            projection: Arc::clone(&self.projection),
            settings: self.settings,
            segment,
        }
    }

    /// Follows the log (the runner's segment) under `lease`, already held, until `shutdown`
    /// completes: a claimed segment's work. [`RunnerError::LeaseLost`] when the lease is
    /// lost; no takeover grace (the lease's checkpoint saves are fenced). An error that
    /// stops it is recorded on the segment's checkpoint, cleared when a runner claims the
    /// segment again.
    pub(in crate::projection) async fn run_claimed<F>(
        &self,
        lease: &dyn ProjectionLease,
        shutdown: F,
    ) -> Result<(), RunnerError>
    where
        F: Future + Send,
    {
        let shutdown = std::pin::pin!(async move {
            shutdown.await;
        });
        let mut shutdown = Shutdown::new(shutdown);
        let name = self.name().await;
        self.clear_stop(&name).await;
        let upcasters = self.projection.lock().await.upcasters();
        let status = &self.probe.status;
        status.set_with_lease(ComponentState::CatchingUp, LeaseState::Held);
        let held = self.hold(&name, Mode::Follow, lease, &mut shutdown);
        let result = reading_for(upcasters, held).await;
        match result {
            Ok(_) | Err(Halt::Shutdown) => {
                status.set_with_lease(ComponentState::Stopped, LeaseState::NotHeld);
                Ok(())
            }
            Err(Halt::LeaseLost) => {
                let lost = RunnerError::LeaseLost { projection: name };
                status.set_after(ComponentState::LeaseLost, &lost);
                status.set_with_lease(ComponentState::LeaseLost, LeaseState::NotHeld);
                Err(lost)
            }
            Err(Halt::Failed(error)) => {
                // Recorded under the segment's name, while its claim is still held.
                if lease.is_held() && !matches!(error, RunnerError::LeaseLost { .. }) {
                    self.record_stop(&name, &error).await;
                }
                status.set_after(ComponentState::Failed, &error);
                status.set_with_lease(ComponentState::Failed, LeaseState::NotHeld);
                Err(error)
            }
        }
    }
}
