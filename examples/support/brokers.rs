//! The `distributed` example's brokers: the one `--broker` names, connected, and its
//! consumer groups, whichever features the example was built with.

use std::sync::Arc;

use eventsource_runtime::bus::{Dispatcher, EventBus, Subscribe};
use eventsource_runtime::health::HealthRegistry;
#[cfg(feature = "kafka")]
use eventsource_runtime::kafka::{self, KafkaBus};
#[cfg(feature = "nats")]
use eventsource_runtime::nats::{self, NatsBus};
#[cfg(feature = "rabbitmq")]
use eventsource_runtime::rabbitmq::{self, RabbitMqBus};
use eventsource_runtime::telemetry::secrets::redact_url;

use super::{AnyError, Options, support};

/// The broker named by `--broker`, connected.
pub(crate) enum Broker {
    /// Built without any broker feature: no broker can be named.
    #[allow(dead_code)]
    Without(std::convert::Infallible),
    #[cfg(feature = "rabbitmq")]
    RabbitMq(RabbitMqBus),
    #[cfg(feature = "kafka")]
    Kafka(KafkaBus),
    #[cfg(feature = "nats")]
    Nats(NatsBus),
}

/// A consumer group on one of the brokers.
#[derive(Clone)]
pub(crate) enum Group {
    /// Built without any broker feature.
    #[allow(dead_code)]
    Without(std::convert::Infallible),
    #[cfg(feature = "rabbitmq")]
    RabbitMq(rabbitmq::ConsumerGroup),
    #[cfg(feature = "kafka")]
    Kafka(kafka::ConsumerGroup),
    #[cfg(feature = "nats")]
    Nats(nats::ConsumerGroup),
}

impl Broker {
    /// The broker of `url`, reachable, or why not (in one line, the password hidden).
    pub(crate) async fn connect(options: &Options) -> Result<Self, AnyError> {
        let url = options.broker.as_str();
        let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
        let failed = |error: AnyError| -> AnyError {
            format!(
                "cannot use the broker at {}: {}",
                redact_url(url),
                support::chain(&*error)
            )
            .into()
        };
        match scheme {
            #[cfg(feature = "rabbitmq")]
            "amqp" | "amqps" => {
                let bus = RabbitMqBus::new(url)
                    .map_err(|e| failed(e.into()))?
                    .with_exchange(&options.prefix);
                bus.declare().await.map_err(|e| failed(e.into()))?;
                Ok(Self::RabbitMq(bus))
            }
            #[cfg(feature = "kafka")]
            "kafka" => {
                let mut bus = KafkaBus::new(url)
                    .map_err(|e| failed(e.into()))?
                    .with_topic_prefix(&options.prefix);
                if let Some(partitions) = options.partitions {
                    bus = bus.with_partitions(partitions);
                }
                bus.declare(["Order"]).await.map_err(|e| failed(e.into()))?;
                Ok(Self::Kafka(bus))
            }
            #[cfg(feature = "nats")]
            "nats" | "tls" => {
                // One stream per prefix: `eventsource` -> `EVENTSOURCE`.
                let stream = options.prefix.to_uppercase().replace(['.', '-', ' '], "_");
                let bus = NatsBus::new(url)
                    .map_err(|e| failed(e.into()))?
                    .with_subject_prefix(&options.prefix)
                    .with_stream(stream);
                bus.declare().await.map_err(|e| failed(e.into()))?;
                Ok(Self::Nats(bus))
            }
            // Reached only in builds without that broker's feature.
            #[allow(unreachable_patterns)]
            "amqp" | "amqps" | "kafka" | "nats" | "tls" => Err(format!(
                "--broker {}: this build has no {scheme} support: run it with \
                 `--features {}`",
                redact_url(url),
                match scheme {
                    "kafka" => "kafka",
                    "nats" | "tls" => "nats",
                    _ => "rabbitmq",
                }
            )
            .into()),
            _ => Err(format!(
                "--broker {}: expected `amqp://...`, `kafka://host:port`, `nats://host:port` \
                 or `memory`",
                redact_url(url)
            )
            .into()),
        }
    }

    pub(crate) fn consumer_group(&self, name: &str, pattern: &str) -> Group {
        match self {
            Self::Without(never) => match *never {},
            #[cfg(feature = "rabbitmq")]
            Self::RabbitMq(bus) => Group::RabbitMq(bus.consumer_group(name).bind(pattern)),
            #[cfg(feature = "kafka")]
            Self::Kafka(bus) => Group::Kafka(bus.consumer_group(name).bind(pattern)),
            #[cfg(feature = "nats")]
            Self::Nats(bus) => Group::Nats(bus.consumer_group(name).bind(pattern)),
        }
    }

    pub(crate) fn event_bus(&self) -> Arc<dyn EventBus> {
        match self {
            Self::Without(never) => match *never {},
            #[cfg(feature = "rabbitmq")]
            Self::RabbitMq(bus) => Arc::new(bus.clone()),
            #[cfg(feature = "kafka")]
            Self::Kafka(bus) => Arc::new(bus.clone()),
            #[cfg(feature = "nats")]
            Self::Nats(bus) => Arc::new(bus.clone()),
        }
    }
}

/// Handlers subscribe to the group the broker's own way.
impl Subscribe for Group {
    fn dispatcher(&self) -> &Dispatcher {
        match self {
            Self::Without(never) => match *never {},
            #[cfg(feature = "rabbitmq")]
            Self::RabbitMq(group) => group.dispatcher(),
            #[cfg(feature = "kafka")]
            Self::Kafka(group) => group.dispatcher(),
            #[cfg(feature = "nats")]
            Self::Nats(group) => group.dispatcher(),
        }
    }
}

impl Group {
    pub(crate) async fn declare(&self) -> Result<(), AnyError> {
        match self {
            Self::Without(never) => match *never {},
            #[cfg(feature = "rabbitmq")]
            Self::RabbitMq(group) => group.declare().await.map_err(Into::into),
            #[cfg(feature = "kafka")]
            Self::Kafka(group) => group.declare().await.map_err(Into::into),
            #[cfg(feature = "nats")]
            Self::Nats(group) => group.declare().await.map_err(Into::into),
        }
    }

    /// Puts the group in `health`'s report.
    pub(crate) fn watch(&self, health: &HealthRegistry) {
        match self {
            Self::Without(never) => match *never {},
            #[cfg(feature = "rabbitmq")]
            Self::RabbitMq(group) => health.watch(group),
            #[cfg(feature = "kafka")]
            Self::Kafka(group) => health.watch(group),
            #[cfg(feature = "nats")]
            Self::Nats(group) => health.watch(group),
        }
    }

    pub(crate) async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), AnyError> {
        match self {
            Self::Without(never) => match never {},
            #[cfg(feature = "rabbitmq")]
            Self::RabbitMq(group) => group.run(shutdown).await.map_err(Into::into),
            #[cfg(feature = "kafka")]
            Self::Kafka(group) => group.run(shutdown).await.map_err(Into::into),
            #[cfg(feature = "nats")]
            Self::Nats(group) => group.run(shutdown).await.map_err(Into::into),
        }
    }
}
