//! Topic names: where an event is published, which topics a consumer group reads, its retry,
//! requeue and dead-letter topics; and their creation, idempotent.

use std::future::Future;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use super::context::LastError;
use super::error::unavailable;
use crate::bus::{BrokerUnreachable, BusError, UnavailableReason};

/// Which topics a [`KafkaBus`](super::KafkaBus) publishes to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Topics {
    /// One topic per aggregate type, `{prefix}.{aggregate_type}` (the default): a group
    /// interested in orders reads the order topic only.
    #[default]
    PerAggregateType,
    /// Every event on one topic of this name.
    One(String),
}

/// A name Kafka accepts as (part of) a topic or group name: ASCII letters, digits, `_` and
/// `-`; anything else (dots included, which separate our names' parts) becomes `_`.
pub(super) fn sanitize(name: &str) -> String {
    name.chars().map(sanitized).collect()
}

/// One character of a [`sanitize`]d name.
fn sanitized(c: char) -> char {
    if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
        c
    } else {
        '_'
    }
}

impl Topics {
    /// The topic of an event of `aggregate_type`.
    pub(super) fn topic(&self, prefix: &str, aggregate_type: &str) -> String {
        match self {
            Self::PerAggregateType => format!("{prefix}.{}", sanitize(aggregate_type)),
            Self::One(name) => name.clone(),
        }
    }

    /// Whether `topic` is [`topic`](Self::topic)`(prefix, aggregate_type)`, without making
    /// the name: asked of every record a group receives.
    pub(super) fn is_topic_of(&self, topic: &str, prefix: &str, aggregate_type: &str) -> bool {
        match self {
            Self::PerAggregateType => topic
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|name| name.chars().eq(aggregate_type.chars().map(sanitized))),
            Self::One(name) => name == topic,
        }
    }
}

/// A consumer group's own topics and consumer-group ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GroupTopics {
    /// The group's id on the broker: `{prefix}.{group}`.
    pub(super) group_id: String,
    /// One per retry delay: `{prefix}.{group}.retry.{delay}ms`.
    pub(super) retries: Vec<(Duration, String)>,
    /// Dead letters moved back: `{prefix}.{group}.requeue`, read at once.
    pub(super) requeue: String,
    /// The dead letters: `{prefix}.{group}.dead`.
    pub(super) dead: String,
}

impl GroupTopics {
    pub(super) fn new(prefix: &str, group: &str, delays: &[Duration]) -> Self {
        let group_id = format!("{prefix}.{}", sanitize(group));
        Self {
            retries: delays
                .iter()
                .map(|delay| (*delay, format!("{group_id}.retry.{}ms", delay.as_millis())))
                .collect(),
            requeue: format!("{group_id}.requeue"),
            dead: format!("{group_id}.dead"),
            group_id,
        }
    }

    /// The retry topic of the redelivery after `attempt` (1-based): the first delay after
    /// the first failure, the last one for every later failure.
    pub(super) fn retry_after(&self, attempt: u32) -> Option<&str> {
        let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        self.retries
            .get(index)
            .or(self.retries.last())
            .map(|(_, topic)| topic.as_str())
    }

    /// The group's topics that wait before handing a record over, with their wait: the
    /// retry topics and the requeue topic (no wait).
    pub(super) fn delayed(&self) -> Vec<(Duration, String)> {
        let mut topics = self.retries.clone();
        topics.push((Duration::ZERO, self.requeue.clone()));
        topics
    }

    /// Every topic of the group's own.
    pub(super) fn all(&self) -> Vec<String> {
        let mut topics: Vec<String> = self.delayed().into_iter().map(|(_, t)| t).collect();
        topics.push(self.dead.clone());
        topics
    }
}

/// Whether a topic-exchange style `pattern` (`*` one word, `#` zero or more, words
/// separated by dots) matches the key `{aggregate_type}.{event_type}` (without making it).
pub(super) fn matches_event(pattern: &str, aggregate_type: &str, event_type: &str) -> bool {
    go(Some(pattern), Words(Some(aggregate_type), Some(event_type)))
}

/// The words left of a key: those of the first part, then those of the second.
#[derive(Clone, Copy)]
struct Words<'a>(Option<&'a str>, Option<&'a str>);

impl<'a> Words<'a> {
    /// The next word and the words after it, if any is left.
    fn next(self) -> Option<(&'a str, Self)> {
        match self {
            Words(Some(words), second) => {
                let (word, rest) = first(words);
                Some((word, Words(rest, second)))
            }
            Words(None, Some(words)) => Words(Some(words), None).next(),
            Words(None, None) => None,
        }
    }

    fn is_empty(self) -> bool {
        matches!(self, Words(None, None))
    }
}

/// The first word of `words` and the words after it, if any.
fn first(words: &str) -> (&str, Option<&str>) {
    // A byte scan: words are short, and `split_once`'s searcher costs more to set up than
    // the scan itself.
    match words.bytes().position(|byte| byte == b'.') {
        Some(dot) => (&words[..dot], Some(&words[dot + 1..])),
        None => (words, None),
    }
}

/// Word by word over the strings, without splitting them into vectors: asked of every
/// record a group receives.
fn go(pattern: Option<&str>, key: Words<'_>) -> bool {
    let Some(words) = pattern else {
        return key.is_empty();
    };
    let (word, rest) = first(words);
    match key.next() {
        _ if word == "#" && go(rest, key) => true,
        Some((_, key_rest)) if word == "#" => go(pattern, key_rest),
        Some((part, key_rest)) => (word == "*" || word == part) && go(rest, key_rest),
        None => false,
    }
}

/// Creates `topics` unless they exist, with the broker's default partition count and
/// replication (`-1` for both, KIP-464) unless `partitions` says otherwise. Fails at once
/// with what `turned_away` says when it completes first (every broker refused the
/// connection, the TLS handshake or the credentials: see [`LastError::turned_away`]).
pub(super) async fn create(
    admin: &AdminClient<LastError>,
    topics: &[String],
    partitions: i32,
    timeout: Duration,
    server: &str,
    (why, turned_away): (&LastError, impl Future<Output = BrokerUnreachable>),
) -> Result<(), BusError> {
    if topics.is_empty() {
        return Ok(());
    }
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|name| NewTopic::new(name, partitions, TopicReplication::Fixed(-1)))
        .collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    let created = tokio::select! {
        created = admin.create_topics(&new, &options) => created,
        unreachable = turned_away => return Err(BusError::unavailable(unreachable)),
    };
    let results = created.map_err(|error| match error {
        // No broker answered: what librdkafka said of the connection (a refused
        // connection, a failed TLS handshake), else a wrong address or a broker down.
        KafkaError::AdminOp(RDKafkaErrorCode::OperationTimedOut)
        | KafkaError::AdminOp(RDKafkaErrorCode::MessageTimedOut) => {
            BusError::unavailable(why.unreachable(server).unwrap_or_else(|| {
                BrokerUnreachable::new(UnavailableReason::TimedOut, server, Some(Box::new(error)))
            }))
        }
        _ => unavailable(error),
    })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(BusError::unavailable(format!(
                    "cannot create topic `{topic}`: {code}"
                )));
            }
        }
    }
    Ok(())
}

/// `text` with the characters a regular expression treats specially escaped.
pub(super) fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kept_apart_by_dots_and_sanitized() {
        assert_eq!(
            Topics::PerAggregateType.topic("shop", "Order"),
            "shop.Order"
        );
        assert_eq!(
            Topics::PerAggregateType.topic("shop", "a.b c"),
            "shop.a_b_c"
        );
        assert_eq!(Topics::One("all".into()).topic("shop", "Order"), "all");
        let topics = GroupTopics::new("shop", "mail.er", &[Duration::from_millis(100)]);
        assert_eq!(topics.group_id, "shop.mail_er");
        assert_eq!(topics.retry_after(1), Some("shop.mail_er.retry.100ms"));
        assert_eq!(topics.retry_after(5), Some("shop.mail_er.retry.100ms"));
        assert_eq!(topics.dead, "shop.mail_er.dead");
        assert_eq!(GroupTopics::new("s", "g", &[]).retry_after(1), None);
    }

    #[test]
    fn patterns_match_as_a_topic_exchange_does() {
        assert!(matches("#", "Order.OrderPlaced"));
        assert!(matches("Order.*", "Order.OrderPlaced"));
        assert!(matches("*.OrderPlaced", "Order.OrderPlaced"));
        assert!(matches("Order.#", "Order.OrderPlaced"));
        assert!(!matches("Order.*", "Cart.OrderPlaced"));
        assert!(!matches("Order", "Order.OrderPlaced"));
        assert!(matches("Order.OrderPlaced", "Order.OrderPlaced"));
    }

    #[test]
    fn prefixes_are_escaped_for_the_subscription_pattern() {
        assert_eq!(regex_escape("shop.v1"), "shop\\.v1");
        assert_eq!(regex_escape("a+b"), "a\\+b");
    }

    /// A pattern against a whole key.
    fn matches(pattern: &str, key: &str) -> bool {
        go(Some(pattern), Words(Some(key), None))
    }

    /// The vector-splitting matcher this one replaced, as the reference.
    fn matches_by_vectors(pattern: &str, key: &str) -> bool {
        fn go(pattern: &[&str], key: &[&str]) -> bool {
            match (pattern.first(), key.first()) {
                (None, None) => true,
                (Some(&"#"), _) => {
                    go(&pattern[1..], key) || (!key.is_empty() && go(pattern, &key[1..]))
                }
                (Some(&"*"), Some(_)) => go(&pattern[1..], &key[1..]),
                (Some(word), Some(part)) => word == part && go(&pattern[1..], &key[1..]),
                _ => false,
            }
        }
        let pattern: Vec<&str> = pattern.split('.').collect();
        let key: Vec<&str> = key.split('.').collect();
        go(&pattern, &key)
    }

    #[test]
    fn matching_word_by_word_agrees_with_splitting_into_vectors() {
        let words = ["#", "*", "Order", "OrderPlaced", ""];
        let mut patterns = Vec::new();
        for a in words {
            patterns.push(a.to_owned());
            for b in words {
                patterns.push(format!("{a}.{b}"));
                for c in words {
                    patterns.push(format!("{a}.{b}.{c}"));
                }
            }
        }
        let keys = [
            "Order.OrderPlaced",
            "Order",
            "",
            "Order.",
            "Cart.OrderPlaced",
            "Order.v2.OrderPlaced",
            "a.b.c.d",
        ];
        for pattern in &patterns {
            for key in keys {
                assert_eq!(
                    matches(pattern, key),
                    matches_by_vectors(pattern, key),
                    "{pattern} against {key}"
                );
            }
            for (aggregate_type, event_type) in [
                ("Order", "OrderPlaced"),
                ("Order", ""),
                ("", "OrderPlaced"),
                ("Order.v2", "OrderPlaced"),
                ("Cart", "Order.Placed"),
            ] {
                assert_eq!(
                    matches_event(pattern, aggregate_type, event_type),
                    matches_by_vectors(pattern, &format!("{aggregate_type}.{event_type}")),
                    "{pattern} against {aggregate_type} and {event_type}"
                );
            }
        }
    }

    #[test]
    fn a_topic_is_recognised_as_an_aggregate_types_without_making_its_name() {
        let topics = Topics::PerAggregateType;
        for (topic, aggregate_type) in [
            ("shop.Order", "Order"),
            ("shop.Order", "Cart"),
            ("shop.my_Order", "my.Order"),
            ("shop.Order", "Orde"),
            ("shopOrder", "Order"),
            ("shop.", ""),
        ] {
            assert_eq!(
                topics.is_topic_of(topic, "shop", aggregate_type),
                topics.topic("shop", aggregate_type) == topic,
                "{topic} of {aggregate_type}"
            );
        }
        let one = Topics::One("all".to_owned());
        assert!(one.is_topic_of("all", "shop", "Order"));
        assert!(!one.is_topic_of("shop.Order", "shop", "Order"));
    }
}
