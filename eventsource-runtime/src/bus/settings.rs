//! A bus's telemetry settings, and the builder methods every bus and dispatcher shares over
//! them.

use crate::telemetry::attributes::{SPAN_BUS_CONSUME, SPAN_BUS_HANDLE, SPAN_BUS_PUBLISH};
use crate::telemetry::values::span_names;

span_names! {
    /// Span names of an event bus's operations.
    pub struct BusSpanNames {
        /// Publishing one message (PRODUCER).
        publish = SPAN_BUS_PUBLISH,
        /// Delivering messages to the handlers (CONSUMER).
        consume = SPAN_BUS_CONSUME,
        /// One handler handling one message (INTERNAL).
        handle = SPAN_BUS_HANDLE,
    }
}

/// An event bus's telemetry settings. The destination is not here: each
/// [`BusMessage`](super::BusMessage) names its own.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BusTelemetry {
    /// The component switch for the bus's spans (on by default). The bus metrics follow
    /// the process switch only, like the command metrics.
    pub enabled: bool,
    /// `messaging.system` (`in_memory`, `rabbitmq`, `nats`, ...).
    pub system: &'static str,
    /// `server.address` and `server.port` of a networked broker, on every span.
    pub server: Option<(String, u16)>,
    /// `messaging.consumer.group.name`, on consume spans: the group as the broker knows it
    /// (a broker adapter's consumer groups set their id, durable consumer or queue).
    pub consumer_group: Option<String>,
    /// `messaging.operation.name` of the publish spans (`messaging.operation.type` =
    /// `send`): the system's own name for the operation, `publish` on RabbitMQ and NATS,
    /// `send` on Kafka and any other system.
    pub publish_operation: &'static str,
    /// `messaging.operation.name` of the consume spans (`messaging.operation.type` =
    /// `process`): `consume` on RabbitMQ, `process` on any other system.
    pub consume_operation: &'static str,
    /// Span names.
    pub names: BusSpanNames,
}

impl BusTelemetry {
    /// Spans on, for a bus of `system`, with the default names and `system`'s operation
    /// names (see [`publish_operation`](Self::publish_operation)).
    #[must_use]
    pub fn new(system: &'static str) -> Self {
        let (publish_operation, consume_operation) = operation_names(system);
        Self {
            enabled: true,
            system,
            server: None,
            consumer_group: None,
            publish_operation,
            consume_operation,
            names: BusSpanNames::default(),
        }
    }
}

/// The `messaging.operation.name` of a publish and of a consume span on `system`: the names
/// the OpenTelemetry conventions' examples give RabbitMQ (AMQP's `basic.publish` and
/// `basic.consume`) and Kafka; NATS publishes (`PUB`, JetStream's `publish`) and has no name
/// of its own for handing a pulled message over; otherwise the operation types' own names.
fn operation_names(system: &str) -> (&'static str, &'static str) {
    match system {
        "rabbitmq" => ("publish", "consume"),
        "nats" => ("publish", "process"),
        _ => ("send", "process"),
    }
}

/// The telemetry builders every bus shares: the [`InMemoryEventBus`](super::InMemoryEventBus),
/// each broker's bus and a [`Dispatcher`](super::Dispatcher). In the
/// [prelude](crate::prelude).
///
/// A bus implements [`configure_telemetry`](Self::configure_telemetry); the builders come
/// with it. A bus's settings reach the groups made from it afterwards.
///
/// ```
/// use eventsource_runtime::bus::BusSpanNames;
/// use eventsource_runtime::prelude::*;
///
/// let bus = InMemoryEventBus::new().enable_tracing(false);
/// assert!(!bus.dispatcher().telemetry().enabled);
///
/// let names = BusSpanNames { publish: "orders.publish", ..BusSpanNames::default() };
/// let bus = InMemoryEventBus::new().with_span_names(names);
/// assert_eq!(bus.dispatcher().telemetry().names.publish, "orders.publish");
/// ```
pub trait WithBusTelemetry: Sized {
    /// This bus with its telemetry settings changed by `change` (this handle's: clones
    /// made before keep theirs).
    #[must_use]
    fn configure_telemetry(self, change: impl FnOnce(&mut BusTelemetry)) -> Self;

    /// Builder: switches the bus's spans (publish, consume, handle; a broker's groups'
    /// too) on or off (on by default). Handlers run either way; the bus metrics follow the
    /// process switch only.
    #[must_use]
    fn enable_tracing(self, enabled: bool) -> Self {
        self.configure_telemetry(|telemetry| telemetry.enabled = enabled)
    }

    /// Builder: overrides the span names.
    #[must_use]
    fn with_span_names(self, names: BusSpanNames) -> Self {
        self.configure_telemetry(|telemetry| telemetry.names = names)
    }
}
