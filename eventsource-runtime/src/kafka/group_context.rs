//! The context of a group's consumer: what librdkafka says of its membership (the join
//! state, the rebalances, the partitions assigned, from its statistics), kept for the
//! group's health; settled offsets committed before partitions are taken away; and its
//! connection errors, recorded as the bus's other clients record them.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::statistics::ConsumerGroup as GroupStatistics;

use super::context::LastError;
use super::doubts::{self, CommitAnswer, Doubts};
use super::protocol::GroupProtocol;
use crate::telemetry::otel::log::{log_info, log_warn};
use crate::telemetry::values::Chain;

/// A group's consumer, with the context that keeps its view of the group.
pub(super) type GroupConsumer = rdkafka::consumer::StreamConsumer<GroupContext>;

/// How often librdkafka reports a consumer's statistics (its view of the group), in ms.
pub(super) const STATISTICS_INTERVAL_MS: &str = "5000";

/// A group consumer's context; clones share what it keeps.
#[derive(Clone)]
pub(super) struct GroupContext {
    errors: LastError,
    membership: Arc<Mutex<Option<GroupStatistics>>>,
    group: Arc<str>,
    /// The consumer's `group.id` (the group's, or a retry topic's own).
    group_id: Arc<str>,
    protocol: GroupProtocol,
    /// How many times partitions were taken from the consumer (revoked or lost).
    revocations: Arc<AtomicU64>,
    /// Its connection failures, and which of them a commit answered.
    doubts: Doubts,
}

impl GroupContext {
    /// The context of a consumer of the group `group` (its `group.id`: `group_id`) joining
    /// with `protocol`, recording errors in `errors`; it confirms its membership once the
    /// group was silent for `quiet_limit` ([`Doubts::quiet_limit`]).
    pub(super) fn new(
        group: &str,
        group_id: &str,
        protocol: GroupProtocol,
        errors: LastError,
        quiet_limit: std::time::Duration,
    ) -> Self {
        Self {
            errors,
            membership: Arc::default(),
            group: group.into(),
            group_id: group_id.into(),
            protocol,
            revocations: Arc::default(),
            doubts: Doubts::new(quiet_limit),
        }
    }

    /// The consumer's connection failures, which of them a commit answered, and when the
    /// group last answered: in doubt, it confirms it is still a member before it hands more
    /// records over.
    pub(super) fn doubts(&self) -> &Doubts {
        &self.doubts
    }

    /// How many times partitions were taken from the consumer so far: what a session
    /// recorded before the count moved may be of a partition another member owns now.
    pub(super) fn revocations(&self) -> u64 {
        self.revocations.load(Ordering::Acquire)
    }

    /// The protocol the consumer joins with.
    pub(super) fn protocol(&self) -> GroupProtocol {
        self.protocol
    }

    /// What librdkafka last said of this consumer's membership, as one line:
    /// `state up, join state steady (for 812 ms), 2 rebalances (last: ...)`; `None` before
    /// its first statistics.
    pub(super) fn membership(&self) -> Option<String> {
        let membership = self
            .membership
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let group = membership.as_ref()?;
        let mut line = format!(
            "state {}, join state {} (for {} ms), {} rebalances",
            group.state, group.join_state, group.stateage, group.rebalance_cnt
        );
        if !group.rebalance_reason.is_empty() {
            let _ = write!(line, " (last: {})", group.rebalance_reason);
        }
        Some(line)
    }
}

/// Only the group's part of librdkafka's statistics is read.
#[derive(serde::Deserialize)]
struct Statistics {
    cgrp: Option<GroupStatistics>,
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.errors.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if doubts::loses_touch(&error) {
            self.doubts.lost_touch();
        }
        self.errors.error(error, reason);
    }

    fn stats_raw(&self, statistics: &[u8]) {
        if let Ok(Statistics { cgrp: Some(group) }) = serde_json::from_slice(statistics) {
            *self
                .membership
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(group);
        }
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            self.revocations.fetch_add(1, Ordering::AcqRel);
        }
        match rebalance {
            Rebalance::Revoke(partitions) if consumer.assignment_lost() => {
                // The group gave them to another member while this one could not be heard
                // (its session expired): the next owner has handled past what this one
                // settled, and a commit now would move the group's offsets back over its
                // work. What this one settled since its last commit is handled again.
                log_warn!(
                    group = &*self.group,
                    group_id = &*self.group_id,
                    partitions = partitions.count(),
                    "kafka partitions lost: the group handed them on while this consumer \
                     could not reach it; nothing committed for them"
                );
            }
            Rebalance::Revoke(partitions) => {
                // Offsets are committed on a cadence: what was settled since the last
                // commit is committed now, or the partitions' next owner handles it again.
                if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
                    log_warn!(
                        group = &*self.group,
                        group_id = &*self.group_id,
                        error = %Chain(&error),
                        "kafka commit before partitions were revoked failed; their next \
                         owner handles again what this consumer settled since its last commit"
                    );
                }
                log_info!(
                    group = &*self.group,
                    group_id = &*self.group_id,
                    partitions = partitions.count(),
                    "kafka partitions revoked"
                );
            }
            Rebalance::Assign(partitions) => {
                log_info!(
                    group = &*self.group,
                    group_id = &*self.group_id,
                    partitions = partitions.count(),
                    "kafka partitions assigned"
                );
            }
            Rebalance::Error(error) => {
                log_warn!(
                    group = &*self.group,
                    group_id = &*self.group_id,
                    error = %Chain(error),
                    "kafka rebalance failed"
                );
            }
        }
    }

    /// A commit's answer: the group heard the consumer, or not; one that failed is said
    /// (records settled since the last commit that succeeded come again to the partition's
    /// next owner).
    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        offsets: &rdkafka::TopicPartitionList,
    ) {
        let answer = match &result {
            Ok(()) => CommitAnswer::Accepted,
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {
                CommitAnswer::NothingToCommit
            }
            Err(_) => CommitAnswer::Refused,
        };
        self.doubts.commit_answered(answer);
        if let Err(error) = result {
            log_warn!(
                group = &*self.group,
                group_id = &*self.group_id,
                partitions = offsets.count(),
                error = %Chain(&error),
                "kafka commit failed; what was settled since the last commit comes again"
            );
        }
    }
}
