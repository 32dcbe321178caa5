//! A split projection's telemetry: the `eventsource.projection.segment.changes` counter
//! and the log lines of segments changing hands.

use std::time::Duration;

use super::claims::Claim;
use crate::store::Segment;
use crate::telemetry::attributes as attr;
use crate::telemetry::otel::log::{log_error, log_info, log_warn};
use crate::telemetry::otel::metrics;
use crate::telemetry::values::Attr;

static CHANGES: metrics::Counter = metrics::Counter::new(
    attr::METRIC_PROJECTION_SEGMENT_CHANGES,
    "{segment}",
    "Segments of split projections claimed, taken over, released, lost or fenced",
);

/// How a segment changed hands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    Claimed,
    TakenOver,
    Released,
    Lost,
    Fenced,
}

impl Change {
    fn as_str(self) -> &'static str {
        match self {
            Self::Claimed => "claimed",
            Self::TakenOver => "taken_over",
            Self::Released => "released",
            Self::Lost => "lost",
            Self::Fenced => "fenced",
        }
    }
}

fn count(projection: &str, segment: Segment, change: Change) {
    let segment = segment.to_string();
    CHANGES.add(
        1,
        [
            (attr::METRIC_ATTR_PROJECTION_NAME, Attr::Str(projection)),
            (attr::PROJECTION_SEGMENT, Attr::Str(&segment)),
            (attr::METRIC_ATTR_SEGMENT_CHANGE, Attr::Str(change.as_str())),
        ],
    );
}

/// `worker` claimed `claim`, free or from `from`.
pub(super) fn claimed(projection: &str, worker: &str, claim: Claim, from: Option<&str>) {
    let segment = claim.segment.to_string();
    let epoch = claim.epoch;
    match from {
        Some(previous) if previous != worker => {
            count(projection, claim.segment, Change::TakenOver);
            log_warn!(
                projection,
                segment,
                epoch,
                worker,
                previous,
                "segment taken over from a worker whose claim expired"
            );
        }
        _ => {
            count(projection, claim.segment, Change::Claimed);
            log_info!(projection, segment, epoch, worker, "segment claimed");
        }
    }
}

/// `worker` gave `claim` up.
pub(super) fn released(projection: &str, worker: &str, claim: Claim) {
    count(projection, claim.segment, Change::Released);
    let segment = claim.segment.to_string();
    log_info!(projection, segment, worker, "segment released");
}

/// `claim` lapsed while `worker`'s renewals were failing (for `failing_for`): the claims
/// store did not answer, so the worker stopped handling the segment not knowing whether
/// another took it.
pub(super) fn lost(projection: &str, worker: &str, claim: Claim, failing_for: Duration) {
    count(projection, claim.segment, Change::Lost);
    let segment = claim.segment.to_string();
    let epoch = claim.epoch;
    let failing_ms = millis(failing_for);
    log_error!(
        projection,
        segment,
        epoch,
        worker,
        failing_ms,
        "segment claim lapsed while the claims store did not answer its renewals (the worker \
         lost the database); stopped handling it: another worker takes it over after the \
         claim timeout, or this one resumes it if the store still has it at its epoch"
    );
}

/// A renewal `worker` sent under `claim`, `late_by` past its deadline (zero: in time), was
/// refused: another worker took the segment over (`holder`: who holds it now, and at which
/// epoch, when the store could say). Late: the worker stalled past its claim timeout.
pub(super) fn taken_over_from(
    projection: &str,
    worker: &str,
    claim: Claim,
    late_by: Duration,
    holder: Option<(&str, u64)>,
) {
    count(projection, claim.segment, Change::Fenced);
    let segment = claim.segment.to_string();
    let epoch = claim.epoch;
    let late_ms = millis(late_by);
    let (holder, holder_epoch) = holder.unwrap_or(("unknown", 0));
    if late_by.is_zero() {
        log_error!(
            projection,
            segment,
            epoch,
            worker,
            holder,
            holder_epoch,
            "segment taken over although this worker renewed it in time (fenced): its renewal \
             under the old epoch was refused; stopped handling it, claiming again as a newcomer"
        );
    } else {
        log_error!(
            projection,
            segment,
            epoch,
            worker,
            late_ms,
            holder,
            holder_epoch,
            "segment taken over while this worker stalled past its claim timeout (fenced): its \
             renewal under the old epoch was refused, as is any write under it; stopped \
             handling it, claiming again as a newcomer"
        );
    }
}

/// A save or a fenced write `worker` made under `claim` was refused: another worker holds
/// the segment now.
pub(super) fn fenced(projection: &str, worker: &str, claim: Claim) {
    count(projection, claim.segment, Change::Fenced);
    let segment = claim.segment.to_string();
    let epoch = claim.epoch;
    log_error!(
        projection,
        segment,
        epoch,
        worker,
        "write refused under an old epoch (fenced): another worker holds the segment; \
         stopped handling it, claiming again as a newcomer"
    );
}

/// `claim` lapsed (by `late_by` when renewed) and the store still had it at its epoch: no
/// other worker took it, and `worker` resumes it at once. After a loss told as `lost` it is
/// counted as claimed again.
pub(super) fn resumed(
    projection: &str,
    worker: &str,
    claim: Claim,
    late_by: Duration,
    after_lost: bool,
) {
    if after_lost {
        count(projection, claim.segment, Change::Claimed);
    }
    let segment = claim.segment.to_string();
    let epoch = claim.epoch;
    let late_ms = millis(late_by);
    log_warn!(
        projection,
        segment,
        epoch,
        worker,
        late_ms,
        "segment claim resumed: renewed late (the worker stalled or lost the database), but \
         no other worker had taken it; handling it again at the same epoch"
    );
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
