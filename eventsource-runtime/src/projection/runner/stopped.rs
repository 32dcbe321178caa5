//! What a runner that stops on an error leaves in its checkpoint store, for an operator's
//! tool to show (`eventsource status`, the console), and the next runner to take the
//! projection clears.

use super::{ProjectionRunner, RunnerError};
use crate::projection::Projection;
use crate::projection::checkpoint::RunnerStop;
use crate::telemetry::otel::log::log_warn;
use crate::telemetry::values::Chain;

impl<P: Projection> ProjectionRunner<P> {
    /// Records that the runner of `name` stops on `error`. Best effort: a store that cannot
    /// take it (often the reason it stops) is logged, and the runner stops all the same.
    pub(super) async fn record_stop(&self, name: &str, error: &RunnerError) {
        let stop = RunnerStop::new(Chain(error).to_string());
        if let Err(failed) = self.checkpoints.record_stop(name, &stop).await {
            log_warn!(
                projection = name,
                error = %Chain(&failed),
                "projection runner: cannot record why it stopped"
            );
        }
    }

    /// Clears what a runner of `name` that stopped before recorded. Best effort, logged.
    pub(super) async fn clear_stop(&self, name: &str) {
        if let Err(failed) = self.checkpoints.clear_stop(name).await {
            log_warn!(
                projection = name,
                error = %Chain(&failed),
                "projection runner: cannot clear the record of an earlier stop"
            );
        }
    }
}
