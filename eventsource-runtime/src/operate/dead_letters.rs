//! A consumer group's dead letters opened from a broker URL and the group's name, whichever
//! broker the URL names: what the command line and the console act on.

use std::fmt;

use crate::bus::{BusError, DeadLetterQueue};
use crate::telemetry::secrets::{self, HIDDEN};

/// Where one consumer group's dead letters are: the broker's URL, the group's name and, when
/// the service changed them, the bus's names. [`open`](Self::open) gives the group's
/// [`DeadLetterQueue`], connecting to nothing yet.
///
/// | URL | broker | feature |
/// |---|---|---|
/// | `amqp://user:password@host:5672/%2f`, `amqps://...` | RabbitMQ | `rabbitmq` |
/// | `kafka://host:9092[,host2:9092][?setting=value&...]` | Kafka | `kafka` (`kafka-ssl` for TLS) |
/// | `nats://[user:password@]host:4222`, `tls://...` | NATS JetStream | `nats` |
///
/// A Kafka URL's query parameters are librdkafka settings, as the bus's
/// [`with_setting`](crate::kafka::KafkaBus::with_setting) takes them: TLS and SASL are
/// `kafka://broker:9093?security.protocol=sasl_ssl&sasl.mechanism=SCRAM-SHA-512&sasl.username=app&sasl.password=...`
/// (values percent-encoded). Every text this type writes (its `Debug`, its errors,
/// [`redacted_url`](Self::redacted_url)) shows a URL's password, and the value of every
/// query parameter whose name says `password` or `secret`, as `***`.
///
/// ```
/// use eventsource_runtime::operate::DeadLetterAddress;
///
/// let address = DeadLetterAddress::new("amqp://ops:s3cret@rabbit:5672/%2f", "mailer");
/// assert_eq!(address.redacted_url(), "amqp://ops:***@rabbit:5672/%2f");
/// ```
#[derive(Clone)]
pub struct DeadLetterAddress {
    url: String,
    group: String,
    prefix: Option<String>,
    stream: Option<String>,
}

/// Why a [`DeadLetterAddress`] cannot be opened. The messages show no secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeadLetterAddressError {
    /// The URL's scheme names no broker.
    #[error(
        "unknown broker URL `{scheme}:`: give amqp:// or amqps:// (RabbitMQ), kafka:// \
         (Kafka), nats:// or tls:// (NATS)"
    )]
    UnknownScheme {
        /// The URL's scheme, as given.
        scheme: String,
    },
    /// The URL names a broker this build has no support for.
    #[error(
        "this build has no {broker} support: build eventsource-runtime with the \
         `{feature}` feature"
    )]
    NotBuiltIn {
        /// The broker the URL names.
        broker: &'static str,
        /// The feature that adds it.
        feature: &'static str,
    },
    /// The group's name is empty.
    #[error("the consumer group's name is empty")]
    EmptyGroup,
    /// The broker's adapter refused the URL.
    #[error("not a usable broker URL: {url}")]
    InvalidUrl {
        /// The URL, secrets shown as `***`.
        url: String,
        /// Why.
        #[source]
        source: BusError,
    },
}

impl DeadLetterAddress {
    /// The dead letters of consumer group `group` on the broker at `url`, under the bus's
    /// default names.
    #[must_use]
    pub fn new(url: impl Into<String>, group: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            group: group.into(),
            prefix: None,
            stream: None,
        }
    }

    /// Builder: the bus's prefix, when the service set one: the RabbitMQ exchange
    /// (`with_exchange`), the Kafka topic prefix (`with_topic_prefix`), the NATS subject
    /// prefix (`with_subject_prefix`).
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Builder: the NATS stream, when the service set one (`with_stream`); other brokers
    /// have none.
    #[must_use]
    pub fn with_stream(mut self, stream: impl Into<String>) -> Self {
        self.stream = Some(stream.into());
        self
    }

    /// The consumer group's name.
    #[must_use]
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The URL with its secrets shown as `***`.
    #[must_use]
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }

    /// The group's dead letters on the broker the URL names. Nothing is connected yet; ask
    /// [`DeadLetterQueue::group_exists`] before acting on a name a person typed.
    ///
    /// # Errors
    /// [`DeadLetterAddressError`]: an unknown scheme, a broker this build lacks, an empty
    /// group, a URL the broker's adapter refuses.
    pub fn open(&self) -> Result<Box<dyn DeadLetterQueue>, DeadLetterAddressError> {
        if self.group.trim().is_empty() {
            return Err(DeadLetterAddressError::EmptyGroup);
        }
        let scheme = self
            .url
            .split_once("://")
            .map_or(String::new(), |(scheme, _)| scheme.to_ascii_lowercase());
        let invalid = |source| DeadLetterAddressError::InvalidUrl {
            url: self.redacted_url(),
            source,
        };
        match scheme.as_str() {
            "amqp" | "amqps" => self.open_rabbitmq().map_err(invalid),
            "kafka" => self.open_kafka().map_err(invalid),
            "nats" | "tls" => self.open_nats().map_err(invalid),
            _ => {
                // Only the scheme is echoed: the rest may hold a password.
                let scheme = self.url.split_once(':').map_or("", |(scheme, _)| scheme);
                Err(DeadLetterAddressError::UnknownScheme {
                    scheme: scheme.to_owned(),
                })
            }
        }
        .and_then(|opened| opened.ok_or_else(|| Self::not_built_in(&scheme)))
    }

    fn not_built_in(scheme: &str) -> DeadLetterAddressError {
        let (broker, feature) = match scheme {
            "amqp" | "amqps" => ("RabbitMQ", "rabbitmq"),
            "kafka" => ("Kafka", "kafka"),
            _ => ("NATS", "nats"),
        };
        DeadLetterAddressError::NotBuiltIn { broker, feature }
    }

    /// `Ok(None)`: RabbitMQ is not built in.
    #[cfg(feature = "rabbitmq")]
    fn open_rabbitmq(&self) -> Result<Option<Box<dyn DeadLetterQueue>>, BusError> {
        let mut bus = crate::rabbitmq::RabbitMqBus::new(&self.url)?;
        if let Some(exchange) = &self.prefix {
            bus = bus.with_exchange(exchange);
        }
        Ok(Some(Box::new(
            bus.consumer_group(&self.group).dead_letters(),
        )))
    }

    #[cfg(not(feature = "rabbitmq"))]
    #[allow(
        clippy::unnecessary_wraps,
        reason = "the signature of the built-in twin"
    )]
    fn open_rabbitmq(&self) -> Result<Option<Box<dyn DeadLetterQueue>>, BusError> {
        Ok(None)
    }

    /// `Ok(None)`: Kafka is not built in.
    #[cfg(feature = "kafka")]
    fn open_kafka(&self) -> Result<Option<Box<dyn DeadLetterQueue>>, BusError> {
        let (servers, query) = self
            .url
            .split_once('?')
            .map_or((self.url.as_str(), ""), |(servers, query)| (servers, query));
        let mut bus = crate::kafka::KafkaBus::new(servers)?;
        for (key, value) in query_pairs(query) {
            bus = bus.with_setting(key, value);
        }
        if let Some(prefix) = &self.prefix {
            bus = bus.with_topic_prefix(prefix);
        }
        Ok(Some(Box::new(
            bus.consumer_group(&self.group).dead_letters(),
        )))
    }

    #[cfg(not(feature = "kafka"))]
    #[allow(
        clippy::unnecessary_wraps,
        reason = "the signature of the built-in twin"
    )]
    fn open_kafka(&self) -> Result<Option<Box<dyn DeadLetterQueue>>, BusError> {
        Ok(None)
    }

    /// `Ok(None)`: NATS is not built in.
    #[cfg(feature = "nats")]
    fn open_nats(&self) -> Result<Option<Box<dyn DeadLetterQueue>>, BusError> {
        let mut bus = crate::nats::NatsBus::new(&self.url)?;
        if let Some(stream) = &self.stream {
            bus = bus.with_stream(stream);
        }
        if let Some(prefix) = &self.prefix {
            bus = bus.with_subject_prefix(prefix);
        }
        Ok(Some(Box::new(
            bus.consumer_group(&self.group).dead_letters(),
        )))
    }

    #[cfg(not(feature = "nats"))]
    #[allow(
        clippy::unnecessary_wraps,
        reason = "the signature of the built-in twin"
    )]
    fn open_nats(&self) -> Result<Option<Box<dyn DeadLetterQueue>>, BusError> {
        Ok(None)
    }
}

impl fmt::Debug for DeadLetterAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetterAddress")
            .field("url", &self.redacted_url())
            .field("group", &self.group)
            .field("prefix", &self.prefix)
            .field("stream", &self.stream)
            .finish()
    }
}

/// The `key=value` pairs of a URL's query, percent-decoded (`+` is a plus: librdkafka's
/// values are not form-encoded). Kafka's settings only.
#[cfg(any(feature = "kafka", test))]
fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (secrets::decoded(key), secrets::decoded(value))
        })
}

/// Whether a setting named `key` holds a secret.
fn secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("password") || key.contains("secret")
}

/// `url` with its password and its secret query values shown as `***`.
fn redact(url: &str) -> String {
    let url = secrets::redact_url(url);
    let Some((base, query)) = url.split_once('?') else {
        return url;
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if secret_key(&secrets::decoded(key)) => format!("{key}={HIDDEN}"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_the_password_and_the_query_are_hidden() {
        assert_eq!(
            redact(
                "kafka://k1:9093,k2:9093?security.protocol=sasl_ssl&sasl.password=p%26w&sasl.username=app"
            ),
            "kafka://k1:9093,k2:9093?security.protocol=sasl_ssl&sasl.password=***&sasl.username=app"
        );
        assert_eq!(
            redact("nats://es:hunter22@127.0.0.1:4222"),
            "nats://es:***@127.0.0.1:4222"
        );
        let address = DeadLetterAddress::new("amqp://a:topsecret@h/%2f", "g");
        assert!(!format!("{address:?}").contains("topsecret"));
    }

    #[test]
    fn an_unknown_scheme_or_an_empty_group_is_refused_before_anything_connects() {
        let unknown = DeadLetterAddress::new("redis://u:topsecret@h", "g").open();
        let Err(error) = unknown else {
            panic!("redis:// opened")
        };
        assert!(
            matches!(&error, DeadLetterAddressError::UnknownScheme { scheme } if scheme == "redis")
        );
        assert!(!error.to_string().contains("topsecret"));
        assert!(matches!(
            DeadLetterAddress::new("nats://h:4222", " ").open(),
            Err(DeadLetterAddressError::EmptyGroup)
        ));
    }

    #[test]
    fn a_broker_not_built_in_is_named_with_its_feature() {
        let brokers = [
            ("amqp://h:5672/%2f", "rabbitmq", cfg!(feature = "rabbitmq")),
            ("kafka://h:9092", "kafka", cfg!(feature = "kafka")),
            ("nats://h:4222", "nats", cfg!(feature = "nats")),
        ];
        for (url, feature, built_in) in brokers {
            let opened = DeadLetterAddress::new(url, "g").open();
            match opened {
                Ok(queue) => assert!(built_in, "{url}: {queue:?}"),
                Err(DeadLetterAddressError::NotBuiltIn { feature: named, .. }) => {
                    assert!(!built_in, "{url}");
                    assert_eq!(named, feature);
                }
                Err(other) => panic!("{url}: {other}"),
            }
        }
    }

    #[test]
    fn query_values_are_percent_decoded() {
        let pairs: Vec<_> = query_pairs("sasl.password=p%26w+x&security.protocol=ssl").collect();
        assert_eq!(
            pairs,
            [
                ("sasl.password".to_owned(), "p&w+x".to_owned()),
                ("security.protocol".to_owned(), "ssl".to_owned())
            ]
        );
    }
}
