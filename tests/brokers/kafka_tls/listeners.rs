//! The listeners of the Kafka node `.ci/run` starts, as its variables describe them, and
//! buses on them.

use crate::pki;

use std::path::PathBuf;
use std::time::Duration;

use eventsource_runtime::broker::BrokerTls;
use eventsource_runtime::kafka::KafkaBus;

/// A password planted where the real one goes: it must never show.
pub(super) const SECRET: &str = "s3cret-planted-4711";

/// A listener of the node `.ci/run` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Listener {
    /// TLS (`security.protocol=ssl`).
    Tls,
    /// SCRAM-SHA-512 over TLS (`security.protocol=sasl_ssl`).
    SaslSsl,
}

/// The node's TLS listeners, as `.ci/run` describes them.
pub(super) struct KafkaTls {
    /// `localhost:9094`.
    pub(super) tls: String,
    /// `localhost:9095`.
    pub(super) sasl: String,
    pub(super) ca: PathBuf,
    pub(super) other_ca: PathBuf,
    pub(super) user: String,
    pub(super) password: String,
}

impl KafkaTls {
    /// The listeners, or `None` (with a `skipped:` line) when `.ci/run` did not say where.
    pub(super) fn open(test: &str) -> Option<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let (Some(tls), Some(sasl), Some(ca), Some(other_ca), Some(user), Some(password)) = (
            var("EVENTSOURCE_KAFKA_TLS_BROKERS"),
            var("EVENTSOURCE_KAFKA_SASL_BROKERS"),
            var("EVENTSOURCE_KAFKA_CA"),
            var("EVENTSOURCE_KAFKA_OTHER_CA"),
            var("EVENTSOURCE_KAFKA_SASL_USER"),
            var("EVENTSOURCE_KAFKA_SASL_PASSWORD"),
        ) else {
            pki::skip(
                test,
                "EVENTSOURCE_KAFKA_TLS_BROKERS and the other EVENTSOURCE_KAFKA_* TLS variables \
                 not set (eval \"$(.ci/run --kafka-tls-only)\")",
            );
            return None;
        };
        Some(Self {
            tls,
            sasl,
            ca: ca.into(),
            other_ca: other_ca.into(),
            user,
            password,
        })
    }

    /// The listener's `host:port`.
    pub(super) fn server(&self, listener: Listener) -> &str {
        match listener {
            Listener::Tls => &self.tls,
            Listener::SaslSsl => &self.sasl,
        }
    }

    /// A bus on the listener, trusting the node's CA, signed in with the right password
    /// (SASL_SSL), under a topic prefix of the test's own.
    pub(super) fn bus(&self, listener: Listener, test: &str) -> KafkaBus {
        let prefix = format!("{test}-{listener:?}-{}", uuid::Uuid::now_v7().simple());
        self.bus_with_prefix(listener, &prefix)
    }

    /// [`bus`](Self::bus) under the topic prefix `es-tls-{prefix}`.
    pub(super) fn bus_with_prefix(&self, listener: Listener, prefix: &str) -> KafkaBus {
        let bus = KafkaBus::new(&format!("kafka://{}", self.server(listener)))
            .expect("a Kafka address")
            .with_topic_prefix(format!("es-tls-{prefix}"))
            .with_delivery_timeout(Duration::from_secs(10))
            .with_tls(BrokerTls::new().with_ca_file(&self.ca));
        match listener {
            Listener::Tls => bus,
            Listener::SaslSsl => sasl(bus, &self.user, &self.password),
        }
    }
}

/// `bus` signing in with SCRAM-SHA-512 over TLS as `user` with `password`.
pub(super) fn sasl(bus: KafkaBus, user: &str, password: &str) -> KafkaBus {
    bus.with_setting("security.protocol", "sasl_ssl")
        .with_setting("sasl.mechanism", "SCRAM-SHA-512")
        .with_setting("sasl.username", user)
        .with_setting("sasl.password", password)
}
