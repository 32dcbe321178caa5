//! A group consumer's doubts: the connection failures it saw, which of them a commit made
//! after them answered, and how long ago the group last accepted one of its commits (see
//! `membership`, which asks before a record is handled).
//!
//! A failure is not always seen: a host or a network that drops packets without a word (a
//! black hole, an answer path that went deaf) raises no error before librdkafka's request
//! time-out, a minute by default, and the session runs out long before. So silence is a
//! doubt too: a consumer the group has not answered for [`Doubts::quiet_limit`] confirms it
//! is still a member before it hands more over, whatever librdkafka said meanwhile.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;

/// The connection failures a consumer saw, how many of them a commit made after them
/// answered, and when the group last answered; clones share them.
#[derive(Clone)]
pub(super) struct Doubts(Arc<Shared>);

struct Shared {
    /// Connection failures seen.
    seen: AtomicU64,
    /// How many of them a commit made after them answered.
    answered: AtomicU64,
    origin: Instant,
    /// When the newest commit the group accepted was sent, in µs after `origin` plus one;
    /// 0 while none was.
    sent_us: AtomicU64,
    /// The send times of the asynchronous commits not answered yet, oldest first: a
    /// coordinator answers a connection's requests in order.
    in_flight: Mutex<VecDeque<Instant>>,
    /// How long the consumer goes on without an answer before it asks.
    quiet_limit: Duration,
}

/// What became of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CommitAnswer {
    /// The coordinator accepted it: the consumer was a member when it was sent.
    Accepted,
    /// It failed: the coordinator refused it, or it could not be sent.
    Refused,
    /// It held no offset to commit, and so asked nothing.
    NothingToCommit,
}

/// What puts a consumer in doubt, taken before it asks: [`Doubts::confirmed`] clears it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Doubt {
    /// The failures seen.
    seen: u64,
    /// When it was taken: the confirming commit is sent after it.
    at: Instant,
}

impl Doubts {
    /// No doubts yet, none heard yet either: a consumer's first record is confirmed. The
    /// group may be silent for `quiet_limit` before the consumer asks.
    pub(super) fn new(quiet_limit: Duration) -> Self {
        Self(Arc::new(Shared {
            seen: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            origin: Instant::now(),
            sent_us: AtomicU64::new(0),
            in_flight: Mutex::new(VecDeque::new()),
            quiet_limit,
        }))
    }

    /// How long the group may be silent before the consumer asks: two commit intervals
    /// (a commit due and its answer on the way), and at most half the session, so a member
    /// asks before its session can have run out unheard.
    pub(super) fn quiet_limit(commit_interval: Duration, session: Duration) -> Duration {
        commit_interval.saturating_mul(2).min(session / 2)
    }

    /// A connection of the consumer failed, or a request of its timed out: the group may
    /// have gone on without it.
    pub(super) fn lost_touch(&self) {
        self.0.seen.fetch_add(1, Ordering::AcqRel);
    }

    /// What the consumer doubts now, if anything: failures a commit made after them has
    /// not answered yet, or a group silent for longer than the quiet limit.
    pub(super) fn doubt(&self) -> Option<Doubt> {
        self.doubt_at(Instant::now())
    }

    fn doubt_at(&self, at: Instant) -> Option<Doubt> {
        let seen = self.0.seen.load(Ordering::Acquire);
        let failed = seen > self.0.answered.load(Ordering::Acquire);
        (failed || self.quiet_since(at)).then_some(Doubt { seen, at })
    }

    /// The coordinator accepted a commit sent after `doubt` was taken.
    pub(super) fn confirmed(&self, doubt: Doubt) {
        self.0.answered.fetch_max(doubt.seen, Ordering::AcqRel);
        self.heard_at(doubt.at);
    }

    /// An asynchronous commit is sent now.
    pub(super) fn commit_sent(&self) {
        self.commit_sent_at(Instant::now());
    }

    fn commit_sent_at(&self, at: Instant) {
        self.in_flight().push_back(at);
    }

    /// The asynchronous commit sent last was refused before it was sent: no answer comes.
    pub(super) fn commit_not_sent(&self) {
        self.in_flight().pop_back();
    }

    /// A commit was answered. An accepted one's send time is taken as that of the oldest
    /// commit in flight: the answer of any other commit (a synchronous one) only makes that
    /// older, never newer, so the consumer asks sooner, never later.
    pub(super) fn commit_answered(&self, answer: CommitAnswer) {
        let sent = self.in_flight().pop_front();
        match (answer, sent) {
            (CommitAnswer::Accepted, Some(sent)) => self.heard_at(sent),
            (CommitAnswer::Refused, _) => self.lost_touch(),
            (CommitAnswer::Accepted | CommitAnswer::NothingToCommit, _) => {}
        }
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, VecDeque<Instant>> {
        (self.0.in_flight.lock()).unwrap_or_else(PoisonError::into_inner)
    }

    /// The group accepted a commit sent at `sent`.
    fn heard_at(&self, sent: Instant) {
        let us = sent.saturating_duration_since(self.0.origin).as_micros();
        let us = u64::try_from(us).unwrap_or(u64::MAX - 1) + 1;
        self.0.sent_us.fetch_max(us, Ordering::AcqRel);
    }

    /// Whether the group has not accepted a commit sent within the quiet limit of `now`.
    fn quiet_since(&self, now: Instant) -> bool {
        let sent_us = self.0.sent_us.load(Ordering::Acquire);
        if sent_us == 0 {
            return true;
        }
        let sent = self.0.origin + Duration::from_micros(sent_us - 1);
        now.saturating_duration_since(sent) > self.0.quiet_limit
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

    const LIMIT: Duration = Duration::from_secs(2);

    /// Doubts that heard the group at their origin, and so doubt nothing until `LIMIT`
    /// after it.
    fn heard_at_origin() -> Doubts {
        let doubts = Doubts::new(LIMIT);
        let first = doubts.doubt_at(origin(&doubts)).expect("nothing heard yet");
        doubts.confirmed(first);
        doubts
    }

    fn origin(doubts: &Doubts) -> Instant {
        doubts.0.origin
    }

    fn after(doubts: &Doubts, ms: u64) -> Instant {
        origin(doubts) + Duration::from_millis(ms)
    }

    #[test]
    fn a_consumer_that_heard_nothing_yet_asks_first() {
        let doubts = Doubts::new(LIMIT);
        let doubt = doubts.doubt_at(origin(&doubts)).expect("nothing heard yet");
        doubts.confirmed(doubt);
        assert!(doubts.doubt_at(origin(&doubts)).is_none());
    }

    #[test]
    fn a_failure_stays_in_doubt_until_a_commit_made_after_it_answers() {
        let doubts = heard_at_origin();
        let now = origin(&doubts);
        doubts.lost_touch();
        let doubt = doubts.doubt_at(now).expect("in doubt after a failure");
        // A second failure while the commit for the first was under way.
        doubts.lost_touch();
        doubts.confirmed(doubt);
        let still = doubts
            .doubt_at(now)
            .expect("the later failure is not answered");
        doubts.clone().confirmed(still);
        assert!(doubts.doubt_at(now).is_none(), "clones share the counts");
    }

    #[test]
    fn a_group_silent_past_the_quiet_limit_is_a_doubt() {
        let doubts = heard_at_origin();
        assert!(doubts.doubt_at(after(&doubts, 2_000)).is_none());
        let doubt = (doubts.doubt_at(after(&doubts, 2_001))).expect("silent past the limit");
        doubts.confirmed(doubt);
        assert!(doubts.doubt_at(after(&doubts, 4_001)).is_none());
    }

    #[test]
    fn an_accepted_commit_counts_from_when_it_was_sent() {
        let doubts = Doubts::new(LIMIT);
        doubts.commit_sent_at(after(&doubts, 1_000));
        // Its answer came late: the group heard the consumer when it was sent.
        doubts.commit_answered(CommitAnswer::Accepted);
        assert!(doubts.doubt_at(after(&doubts, 3_000)).is_none());
        assert!(doubts.doubt_at(after(&doubts, 3_001)).is_some());
    }

    #[test]
    fn an_answer_is_matched_with_the_oldest_commit_in_flight() {
        let doubts = Doubts::new(LIMIT);
        doubts.commit_sent_at(after(&doubts, 0));
        doubts.commit_sent_at(after(&doubts, 1_000));
        // The first commit's answer says nothing of the second, sent since.
        doubts.commit_answered(CommitAnswer::Accepted);
        assert!(doubts.doubt_at(after(&doubts, 2_500)).is_some());
        doubts.commit_answered(CommitAnswer::Accepted);
        assert!(doubts.doubt_at(after(&doubts, 2_500)).is_none());
    }

    #[test]
    fn a_commit_never_sent_waits_for_no_answer() {
        let doubts = Doubts::new(LIMIT);
        doubts.commit_sent_at(after(&doubts, 0));
        doubts.commit_sent_at(after(&doubts, 1_000));
        doubts.commit_not_sent();
        doubts.commit_answered(CommitAnswer::Accepted);
        doubts.commit_answered(CommitAnswer::Accepted);
        assert!(
            doubts.doubt_at(after(&doubts, 2_500)).is_some(),
            "only the first commit was answered"
        );
    }

    #[test]
    fn a_commit_with_nothing_in_it_says_nothing() {
        let doubts = heard_at_origin();
        doubts.commit_sent_at(after(&doubts, 1_000));
        doubts.commit_answered(CommitAnswer::NothingToCommit);
        assert!(doubts.doubt_at(after(&doubts, 1_000)).is_none());
        assert!(doubts.doubt_at(after(&doubts, 2_001)).is_some());
    }

    #[test]
    fn a_refused_commit_is_a_failure() {
        let doubts = heard_at_origin();
        doubts.commit_sent_at(origin(&doubts));
        doubts.commit_answered(CommitAnswer::Refused);
        assert!(doubts.doubt_at(origin(&doubts)).is_some());
    }

    #[test]
    fn the_quiet_limit_is_two_commit_intervals_within_half_the_session() {
        let second = Duration::from_secs(1);
        assert_eq!(Doubts::quiet_limit(second, 10 * second), 2 * second);
        assert_eq!(Doubts::quiet_limit(30 * second, 10 * second), 5 * second);
    }

    #[test]
    fn only_the_end_of_a_partition_is_no_doubt() {
        assert!(!loses_touch(&KafkaError::PartitionEOF(0)));
        assert!(loses_touch(&KafkaError::MessageConsumption(
            RDKafkaErrorCode::AllBrokersDown
        )));
    }
}
