//! The RabbitMQ adapter's reading of a received message's AMQP headers.

use lapin::types::FieldTable;

use crate::bus::wire::DeliveryState;
use crate::event::Metadata;

/// The trace context and the delivery state the RabbitMQ consumer reads from a message's
/// headers (typed AMQP values; anything missing or of another type reads as absent).
#[must_use]
pub fn read_headers(headers: Option<&FieldTable>) -> (Metadata, DeliveryState) {
    crate::rabbitmq::read_headers(headers)
}
