//! A split projection's telemetry: the `eventsource.projection.segment.changes` counter
//! and the log lines of segments changing hands.

use super::claims::Claim;
use crate::store::Segment;
use crate::telemetry::attributes as attr;
use crate::telemetry::otel::log::{log_error, log_info, log_warn};
use crate::telemetry::otel::metrics;
use crate::telemetry::values::{Attr, Counter};

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
    metrics::add(
        Counter::SegmentChanges,
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

/// `worker` found at renewal that `claim` was taken over.
pub(super) fn lost(projection: &str, worker: &str, claim: Claim) {
    count(projection, claim.segment, Change::Lost);
    let segment = claim.segment.to_string();
    let epoch = claim.epoch;
    log_error!(
        projection,
        segment,
        epoch,
        worker,
        "segment claim lost (not renewed in time: the worker stalled or lost the database); \
         stopped handling it"
    );
}

/// A save or a write under `claim` was refused: another worker holds the segment now.
pub(super) fn fenced(projection: &str, claim: Claim) {
    count(projection, claim.segment, Change::Fenced);
    let segment = claim.segment.to_string();
    let epoch = claim.epoch;
    log_error!(
        projection,
        segment,
        epoch,
        "write refused under an old epoch (fenced): another worker holds the segment; \
         stopped handling it"
    );
}
