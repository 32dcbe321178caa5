//! What the bus's spans say of a bus and a message: the attributes every span about one
//! message carries, and the links to the messages a span is about.

use crate::bus::{AttributeValue, BusMessage, BusTelemetry};
use crate::telemetry::attributes as attr;
use crate::telemetry::otel::SpanStart;
use crate::telemetry::values::Attr;

/// The bus's own attributes: `messaging.system` and the broker's `server.*`.
pub(super) fn with_bus(span: &mut SpanStart<'_>, telemetry: &BusTelemetry) {
    span.static_str(attr::MESSAGING_SYSTEM, telemetry.system);
    if let Some((address, port)) = &telemetry.server {
        span.str(attr::SERVER_ADDRESS, address)
            .int(attr::SERVER_PORT, *port);
    }
}

/// A messaging operation: its `messaging.operation.type` and `messaging.operation.name`.
pub(super) type Operation = (&'static str, &'static str);

/// `messaging.operation.type` and `messaging.operation.name`.
pub(super) fn with_operation<'s, 'a>(
    span: &'s mut SpanStart<'a>,
    (kind, name): Operation,
) -> &'s mut SpanStart<'a> {
    span.static_str(attr::MESSAGING_OPERATION_TYPE, kind)
        .static_str(attr::MESSAGING_OPERATION_NAME, name)
}

/// The attributes of a publish span: the bus's, then the message's.
pub(super) fn describe(
    span: &mut SpanStart<'_>,
    telemetry: &BusTelemetry,
    message: &BusMessage,
    operation: Operation,
) {
    with_bus(span, telemetry);
    describe_message(span, message, operation);
}

/// The attributes of a span about one message: destination, operation (type and name),
/// message id, event type, aggregate type and id, and the transport's own.
pub(super) fn describe_message(
    span: &mut SpanStart<'_>,
    message: &BusMessage,
    operation: Operation,
) {
    let id = Attr::Display(&message.message_id);
    span.str(attr::MESSAGING_DESTINATION_NAME, &message.destination);
    with_operation(span, operation)
        .attr(attr::MESSAGING_MESSAGE_ID, id)
        .str(attr::EVENT_TYPE, &message.event.event_type)
        .str(attr::AGGREGATE_TYPE, message.event.aggregate_type())
        .str(attr::AGGREGATE_ID, message.event.aggregate_id());
    with_correlation(span, message);
    for (key, value) in &message.attributes {
        let value = match value {
            AttributeValue::String(s) => Attr::Str(s),
            AttributeValue::Int(n) => Attr::Int(*n),
        };
        span.attr(key, value);
    }
}

/// `eventsource.correlation.id`, when the message's event carries one (its metadata is
/// not read for a span that records nothing).
pub(super) fn with_correlation(span: &mut SpanStart<'_>, message: &BusMessage) {
    if span.is_inert() {
        return;
    }
    if let Some(correlation_id) = message.event.metadata.correlation_id() {
        span.str(attr::CORRELATION_ID, correlation_id);
    }
}

/// Links the span to a source message's context (in `carrier`), naming the message on the
/// link.
pub(super) fn link(
    span: &mut SpanStart<'_>,
    carrier: &crate::event::Metadata,
    message: &BusMessage,
) {
    let id = Attr::Display(&message.message_id);
    span.link(carrier, &[(attr::MESSAGING_MESSAGE_ID, id)]);
}
