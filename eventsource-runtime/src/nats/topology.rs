//! The server's topology, declared idempotently: three streams per bus (live events, retry
//! copies, dead letters) and, per consumer group, two durable pull consumers (its live
//! events, its retry copies).

use std::time::Duration;

use async_nats::jetstream::consumer::pull::Config as PullConfig;
use async_nats::jetstream::consumer::{AckPolicy, Consumer, DeliverPolicy};
use async_nats::jetstream::stream::{Config as StreamConfig, RetentionPolicy, StorageType};
use async_nats::jetstream::{Context, stream::Stream};

use super::error::unavailable;
use crate::bus::BusError;

/// How long JetStream remembers a `Nats-Msg-Id` to drop a duplicate publish.
pub(super) const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// A bus's streams and subjects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Streams {
    /// The live stream: `{stream}`, subjects `{prefix}.>`.
    pub(super) live: String,
    /// Retry copies: `{stream}_RETRY`, subjects `{prefix}-retry.>` (work queue: a copy is
    /// gone once its group acknowledged it).
    pub(super) retry: String,
    /// Dead letters: `{stream}_DEAD`, subjects `{prefix}-dead.>`.
    pub(super) dead: String,
    /// The subject prefix.
    pub(super) prefix: String,
}

impl Streams {
    pub(super) fn new(stream: &str, prefix: &str) -> Self {
        Self {
            live: stream.to_owned(),
            retry: format!("{stream}_RETRY"),
            dead: format!("{stream}_DEAD"),
            prefix: prefix.to_owned(),
        }
    }

    /// Declares the three streams (created, or updated to this configuration).
    pub(super) async fn declare(&self, context: &Context) -> Result<(), BusError> {
        let prefix = &self.prefix;
        declare_stream(
            context,
            &self.live,
            format!("{prefix}.>"),
            RetentionPolicy::Limits,
        )
        .await?;
        let retry = format!("{prefix}-retry.>");
        declare_stream(context, &self.retry, retry, RetentionPolicy::WorkQueue).await?;
        let dead = format!("{prefix}-dead.>");
        declare_stream(context, &self.dead, dead, RetentionPolicy::Limits).await
    }
}

/// Creates or updates a file-backed stream over `subject` with the duplicate window.
async fn declare_stream(
    context: &Context,
    name: &str,
    subject: String,
    retention: RetentionPolicy,
) -> Result<(), BusError> {
    let config = StreamConfig {
        name: name.to_owned(),
        subjects: vec![subject],
        retention,
        storage: StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        ..StreamConfig::default()
    };
    context
        .create_or_update_stream(config)
        .await
        .map(drop)
        .map_err(unavailable)
}

/// A token for a subject or a consumer name: the group's name without the characters
/// NATS gives a meaning to (`.`, `*`, `>`, whitespace, path separators).
pub(super) fn token(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '.' | '*' | '>' | '/' | '\\' => '_',
            c if c.is_whitespace() => '_',
            c => c,
        })
        .collect()
}

/// A consumer group's names on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GroupNames {
    /// The durable consumer of the live stream: `{prefix}-{group}`.
    pub(super) durable: String,
    /// The durable consumer of the group's retry copies: `{prefix}-{group}-retry`.
    pub(super) retry_durable: String,
    /// The subject of the group's retry copies: `{prefix}-retry.{group}`.
    pub(super) retry_subject: String,
    /// The subject of the group's dead letters: `{prefix}-dead.{group}`.
    pub(super) dead_subject: String,
    /// The waits before each redelivery.
    pub(super) delays: Vec<Duration>,
}

impl GroupNames {
    pub(super) fn new(prefix: &str, group: &str, delays: &[Duration]) -> Self {
        let group = token(group);
        let durable = format!("{}-{group}", token(prefix));
        Self {
            retry_durable: format!("{durable}-retry"),
            durable,
            retry_subject: format!("{prefix}-retry.{group}"),
            dead_subject: format!("{prefix}-dead.{group}"),
            delays: delays.to_vec(),
        }
    }

    /// How long after it was stored a retry copy for delivery number `attempt` is due: the
    /// first delay for the second delivery, the last one for every later delivery, none
    /// for a first delivery (a message moved back from the dead letters).
    pub(super) fn delay_before(&self, attempt: u32) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        let index = usize::try_from(attempt - 2).unwrap_or(usize::MAX);
        self.delays
            .get(index)
            .or(self.delays.last())
            .copied()
            .unwrap_or_default()
    }
}

/// A durable pull consumer's settings.
pub(super) fn consumer_config(
    durable: &str,
    filter: String,
    ack_wait: Duration,
    max_ack_pending: u16,
) -> PullConfig {
    PullConfig {
        durable_name: Some(durable.to_owned()),
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait,
        filter_subject: filter,
        max_ack_pending: i64::from(max_ack_pending),
        ..PullConfig::default()
    }
}

/// The durable consumer `config` on `stream`: created, or updated when it exists with
/// other settings (JetStream's create is idempotent and updates what may change).
pub(super) async fn declare_consumer(
    stream: &Stream,
    config: PullConfig,
) -> Result<Consumer<PullConfig>, BusError> {
    stream.create_consumer(config).await.map_err(unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_tokens_and_retries_wait_longer_then_stay_at_the_last_delay() {
        let delays = [Duration::from_millis(100), Duration::from_secs(2)];
        let names = GroupNames::new("shop", "mail.er *", &delays);
        assert_eq!(names.durable, "shop-mail_er__");
        assert_eq!(names.retry_durable, "shop-mail_er__-retry");
        assert_eq!(names.retry_subject, "shop-retry.mail_er__");
        assert_eq!(names.dead_subject, "shop-dead.mail_er__");
        assert_eq!(names.delay_before(1), Duration::ZERO);
        assert_eq!(names.delay_before(2), Duration::from_millis(100));
        assert_eq!(names.delay_before(3), Duration::from_secs(2));
        assert_eq!(names.delay_before(9), Duration::from_secs(2));
        assert_eq!(
            GroupNames::new("p", "g", &[]).delay_before(2),
            Duration::ZERO
        );
        let streams = Streams::new("SHOP", "shop");
        assert_eq!(
            (streams.retry.as_str(), streams.dead.as_str()),
            ("SHOP_RETRY", "SHOP_DEAD")
        );
    }
}
