//! The two consumer group protocols Apache Kafka speaks, and which of a group's settings
//! each one takes: librdkafka refuses to make a consumer of the new protocol given a
//! setting of the classic one, so the group decides, and says so, before it asks.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

use crate::telemetry::otel::log::log_warn;

/// How a [`ConsumerGroup`](super::ConsumerGroup) joins its group on the broker: what its
/// code says ([`ConsumerGroup::protocol`](super::ConsumerGroup::protocol)), else the
/// process's [`GROUP_PROTOCOL_VARIABLE`] (`EVENTSOURCE_KAFKA_GROUP_PROTOCOL=classic`), else
/// [`Consumer`](Self::Consumer); a `group.protocol` given to the bus's `with_setting` wins
/// over all three.
///
/// | | [`Consumer`](Self::Consumer) (default) | [`Classic`](Self::Classic) |
/// |---|---|---|
/// | brokers | Apache Kafka 4.0 and later | every Kafka-API broker |
/// | who assigns partitions | the broker (`group.remote.assignor=range`: a share of each topic) | the members (`range,roundrobin`: a share of each topic) |
/// | a member joins or leaves | only the partitions that change hands stop, each member on its own | every member's partitions stop until the group formed again |
/// | a dead member's partitions move after | the broker's `group.consumer.session.timeout.ms` (45 s unless set; the group's own `consumer.session.timeout.ms` when an operator set one) | [`session_timeout`](super::ConsumerGroup::session_timeout) (10 s) |
///
/// A broker that does not speak the consumer protocol (older than 4.0, or one that turned
/// it off) makes the group join with the classic protocol instead: the group says so once
/// in a WARN line, and goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum GroupProtocol {
    /// KIP-848 (`group.protocol=consumer`): assignment and liveness are the broker's, and a
    /// rebalance never stops the whole group.
    #[default]
    Consumer,
    /// The original protocol (`group.protocol=classic`): the members assign partitions
    /// among themselves, their liveness set by the consumer.
    Classic,
}

/// The environment variable that sets the protocol of a process's groups unless their code
/// does ([`ConsumerGroup::protocol`](super::ConsumerGroup::protocol)): `consumer` or `classic`.
pub const GROUP_PROTOCOL_VARIABLE: &str = "EVENTSOURCE_KAFKA_GROUP_PROTOCOL";

/// Whether an unreadable [`GROUP_PROTOCOL_VARIABLE`] was logged yet (once a process).
static BAD_VARIABLE_LOGGED: AtomicBool = AtomicBool::new(false);

impl GroupProtocol {
    /// What [`GROUP_PROTOCOL_VARIABLE`] says, else the default ([`Consumer`](Self::Consumer));
    /// a value it cannot read is logged once (WARN) and ignored.
    #[must_use]
    pub fn from_environment() -> Self {
        let Ok(value) = std::env::var(GROUP_PROTOCOL_VARIABLE) else {
            return Self::default();
        };
        Self::from_setting(&value).unwrap_or_else(|| {
            if !BAD_VARIABLE_LOGGED.swap(true, Ordering::Relaxed) {
                log_warn!(
                    variable = GROUP_PROTOCOL_VARIABLE,
                    value = value.as_str(),
                    "not a Kafka group protocol (`consumer` or `classic`): the default, \
                     `consumer`, applies"
                );
            }
            Self::default()
        })
    }

    /// The value of librdkafka's `group.protocol` for it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Consumer => "consumer",
            Self::Classic => "classic",
        }
    }

    /// The protocol a `group.protocol` setting names (case as librdkafka takes it).
    fn from_setting(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "consumer" => Some(Self::Consumer),
            "classic" => Some(Self::Classic),
            _ => None,
        }
    }
}

impl fmt::Display for GroupProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The settings of the classic protocol that librdkafka refuses under the consumer
/// protocol, each with what takes its place there.
pub(super) const CLASSIC_ONLY: [(&str, &str); 4] = [
    (
        "session.timeout.ms",
        "the broker's `group.consumer.session.timeout.ms`, or the group's own \
         `consumer.session.timeout.ms` (a dynamic group config)",
    ),
    (
        "heartbeat.interval.ms",
        "the broker's `group.consumer.heartbeat.interval.ms`, or the group's own \
         `consumer.heartbeat.interval.ms`",
    ),
    (
        "partition.assignment.strategy",
        "the broker's assignor: `group.remote.assignor` (`uniform` or `range`)",
    ),
    (
        "group.protocol.type",
        "nothing: it names the classic protocol's type",
    ),
];

/// The assignors, classic and the broker's: `range` gives each member a share of **each**
/// topic. A group that reads several topics (one per aggregate type, `bind("#")`) of
/// different volumes stays balanced; one that balances all partitions together
/// (`cooperative-sticky`, the broker's `uniform`) can give a member only the partitions of
/// a quiet topic, and measured so (one of three consumers held the six partitions of an
/// empty topic and handled nothing). Under the classic protocol `range` is eager (a
/// rebalance stops every member's partitions); under the consumer protocol every assignor
/// moves only what must move.
const CLASSIC_ASSIGNOR: &str = "range,roundrobin";
const REMOTE_ASSIGNOR: &str = "range";

/// The protocol a group joins with: a `group.protocol` the user set on the bus wins over
/// `chosen`; `fallen_back` (the broker refused the consumer protocol) makes it classic.
pub(super) fn effective(
    settings: &[(String, String)],
    chosen: GroupProtocol,
    fallen_back: bool,
) -> GroupProtocol {
    let set = settings
        .iter()
        .rev()
        .find(|(key, _)| key == "group.protocol")
        .and_then(|(_, value)| GroupProtocol::from_setting(value));
    match set.unwrap_or(chosen) {
        GroupProtocol::Consumer if fallen_back => GroupProtocol::Classic,
        protocol => protocol,
    }
}

/// A setting the group's protocol does not take, left out of its consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LeftOut {
    /// The setting.
    pub(super) key: &'static str,
    /// What applies under the protocol instead.
    pub(super) instead: &'static str,
}

/// Sets `protocol` and its own settings in `config` (the group's consumer, the user's
/// settings already in it): under the classic protocol the session timeout, heartbeats and
/// assignor unless the user set them; under the consumer protocol none of them, and those
/// the user set are taken out again (returned, for the group to say so).
pub(super) fn configure(
    config: &mut ClientConfig,
    protocol: GroupProtocol,
    session_timeout: Duration,
) -> Vec<LeftOut> {
    config.set("group.protocol", protocol.as_str());
    match protocol {
        GroupProtocol::Classic => {
            let ours = [
                (
                    "session.timeout.ms",
                    session_timeout.as_millis().to_string(),
                ),
                ("heartbeat.interval.ms", heartbeat_interval(session_timeout)),
                ("partition.assignment.strategy", CLASSIC_ASSIGNOR.to_owned()),
            ];
            for (key, value) in ours {
                if config.get(key).is_none() {
                    config.set(key, value);
                }
            }
            Vec::new()
        }
        GroupProtocol::Consumer => {
            if config.get("group.remote.assignor").is_none() {
                config.set("group.remote.assignor", REMOTE_ASSIGNOR);
            }
            CLASSIC_ONLY
                .iter()
                .filter(|(key, _)| {
                    let set = config.get(key).is_some();
                    config.remove(key);
                    set
                })
                .map(|&(key, instead)| LeftOut { key, instead })
                .collect()
        }
    }
}

/// The heartbeat interval of the classic protocol for `session`: a tenth of it, at most
/// 3 s (Kafka's default).
fn heartbeat_interval(session: Duration) -> String {
    (session / 10)
        .clamp(Duration::from_millis(100), Duration::from_secs(3))
        .as_millis()
        .to_string()
}

/// Whether a consumer's fatal error `code` says the broker does not speak the consumer
/// protocol (its `ConsumerGroupHeartbeat` was refused as unknown).
pub(super) fn refused_by_broker(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::UnsupportedVersion | RDKafkaErrorCode::UnsupportedFeature
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_group_protocol_set_on_the_bus_wins_and_a_refusal_falls_back_to_classic() {
        use GroupProtocol::{Classic, Consumer};
        assert_eq!(effective(&[], Consumer, false), Consumer);
        assert_eq!(effective(&[], Classic, false), Classic);
        assert_eq!(effective(&[], Consumer, true), Classic);
        let classic = settings(&[("group.protocol", "Classic")]);
        assert_eq!(effective(&classic, Consumer, false), Classic);
        let consumer = settings(&[
            ("group.protocol", "classic"),
            ("group.protocol", "consumer"),
        ]);
        assert_eq!(effective(&consumer, Classic, false), Consumer);
        let unknown = settings(&[("group.protocol", "streams")]);
        assert_eq!(effective(&unknown, Classic, false), Classic);
    }

    #[test]
    fn the_classic_protocol_gets_its_settings_unless_the_user_set_them() {
        let mut config = ClientConfig::new();
        config.set("heartbeat.interval.ms", "500");
        let left_out = configure(&mut config, GroupProtocol::Classic, Duration::from_secs(10));
        assert!(left_out.is_empty());
        assert_eq!(config.get("group.protocol"), Some("classic"));
        assert_eq!(config.get("session.timeout.ms"), Some("10000"));
        assert_eq!(
            config.get("heartbeat.interval.ms"),
            Some("500"),
            "the user's"
        );
        assert_eq!(
            config.get("partition.assignment.strategy"),
            Some("range,roundrobin")
        );
    }

    #[test]
    fn the_consumer_protocol_takes_none_of_the_classic_settings_and_says_which_it_left_out() {
        let mut config = ClientConfig::new();
        config
            .set("session.timeout.ms", "6000")
            .set("partition.assignment.strategy", "range")
            .set("fetch.min.bytes", "1");
        let left_out = configure(
            &mut config,
            GroupProtocol::Consumer,
            Duration::from_secs(10),
        );
        let keys: Vec<&str> = left_out.iter().map(|l| l.key).collect();
        assert_eq!(
            keys,
            ["session.timeout.ms", "partition.assignment.strategy"]
        );
        assert!(left_out[1].instead.contains("group.remote.assignor"));
        assert_eq!(config.get("group.protocol"), Some("consumer"));
        assert_eq!(config.get("group.remote.assignor"), Some("range"));
        for (key, _) in CLASSIC_ONLY {
            assert_eq!(config.get(key), None, "{key}");
        }
        assert_eq!(config.get("fetch.min.bytes"), Some("1"), "others kept");
        // What librdkafka would refuse is gone: it makes the consumer.
        config
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("group.id", "g");
        let made: Result<rdkafka::consumer::BaseConsumer, _> = config.create();
        assert!(made.is_ok(), "{:?}", made.err());
    }

    #[test]
    fn heartbeats_are_a_tenth_of_the_session_within_bounds() {
        assert_eq!(heartbeat_interval(Duration::from_secs(10)), "1000");
        assert_eq!(heartbeat_interval(Duration::from_secs(60)), "3000");
        assert_eq!(heartbeat_interval(Duration::from_millis(500)), "100");
    }
}
