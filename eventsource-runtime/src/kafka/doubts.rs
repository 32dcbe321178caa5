//! A group consumer's doubts: the connection failures it saw, and which of them a commit
//! made after them answered (see `membership`, which asks before a record is handled).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rdkafka::error::KafkaError;

/// The connection failures a consumer saw, and how many of them a commit made after them
/// answered; clones share the counts.
#[derive(Clone, Default)]
pub(super) struct Doubts {
    seen: Arc<AtomicU64>,
    answered: Arc<AtomicU64>,
}

impl Doubts {
    /// A connection of the consumer failed, or a request of its timed out: the group may
    /// have gone on without it.
    pub(super) fn lost_touch(&self) {
        self.seen.fetch_add(1, Ordering::AcqRel);
    }

    /// The failures seen so far, when a commit made after them has not answered them yet.
    pub(super) fn unanswered(&self) -> Option<u64> {
        let seen = self.seen.load(Ordering::Acquire);
        (seen > self.answered.load(Ordering::Acquire)).then_some(seen)
    }

    /// A commit sent after the first `seen` failures was accepted.
    pub(super) fn answered(&self, seen: u64) {
        self.answered.fetch_max(seen, Ordering::AcqRel);
    }
}

/// Whether `error`, from a consumer's queue or its error callback, means it may have lost
/// touch with its group (a partition's end does not).
pub(super) fn loses_touch(error: &KafkaError) -> bool {
    !matches!(error, KafkaError::PartitionEOF(_))
}

#[cfg(test)]
mod tests {
    use rdkafka::error::RDKafkaErrorCode;

    use super::*;

    #[test]
    fn a_failure_stays_in_doubt_until_a_commit_made_after_it_answers() {
        let doubts = Doubts::default();
        assert_eq!(doubts.unanswered(), None);
        doubts.lost_touch();
        let seen = doubts.unanswered().expect("in doubt after a failure");
        // A second failure while the commit for the first was under way.
        doubts.lost_touch();
        doubts.answered(seen);
        let still = doubts
            .unanswered()
            .expect("the later failure is not answered");
        doubts.clone().answered(still);
        assert_eq!(doubts.unanswered(), None, "clones share the counts");
    }

    #[test]
    fn only_the_end_of_a_partition_is_no_doubt() {
        assert!(!loses_touch(&KafkaError::PartitionEOF(0)));
        assert!(loses_touch(&KafkaError::MessageConsumption(
            RDKafkaErrorCode::AllBrokersDown
        )));
    }
}
