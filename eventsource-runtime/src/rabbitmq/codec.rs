//! The wire format ([`crate::bus::wire`]) in AMQP terms: the body as it is, the identity,
//! delivery state and trace context in the AMQP properties and typed headers; and back.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};

use crate::bus::wire::{
    self, CONTENT_TYPE, DeliveryState, HEADER_AGGREGATE_ID, HEADER_AGGREGATE_TYPE, HEADER_ATTEMPT,
    HEADER_ERROR, HEADER_EVENT_TYPE, HEADER_HANDLERS, HEADER_POSITION, HEADER_SCHEMA_VERSION,
    HEADER_VERSION, TRACE_HEADERS,
};
use crate::bus::{BusError, BusMessage};
use crate::event::Metadata;

/// A short string the broker accepts (at most 255 bytes), or the message's rejection.
pub(super) fn short(
    message: &BusMessage,
    what: &str,
    value: String,
) -> Result<ShortString, BusError> {
    ShortString::try_new(value).map_err(|error| BusError::Rejected {
        message_id: message.message_id,
        reason: format!("{what} too long for AMQP: {error}"),
    })
}

/// The body of `message` ([`wire::encode`]).
pub(super) fn body(message: &BusMessage) -> Result<Vec<u8>, BusError> {
    wire::encode(&message.event).map_err(|error| BusError::Rejected {
        message_id: message.message_id,
        reason: format!("cannot serialize the event: {error}"),
    })
}

/// The properties of `message`: persistent, its id, its type, its timestamp, and the
/// headers (identity, trace context, delivery state).
pub(super) fn properties(
    message: &BusMessage,
    state: &DeliveryState,
) -> Result<BasicProperties, BusError> {
    let event = &message.event;
    let mut headers = FieldTable::default();
    let mut text = |key: &'static str, value: &str| {
        headers.insert(key.into(), AMQPValue::LongString(LongString::from(value)));
    };
    text(HEADER_EVENT_TYPE, &event.event_type);
    text(HEADER_AGGREGATE_TYPE, event.aggregate_type());
    text(HEADER_AGGREGATE_ID, event.aggregate_id());
    for (header, id) in wire::lineage_headers(event) {
        text(header, id);
    }
    for key in TRACE_HEADERS {
        if let Some(value) = message.headers.get(key) {
            text(key, value);
        }
    }
    if let Some(error) = &state.error {
        text(HEADER_ERROR, error);
    }
    let mut int = |key: &'static str, value: i64| {
        headers.insert(key.into(), AMQPValue::LongLongInt(value));
    };
    int(HEADER_SCHEMA_VERSION, i64::from(event.schema_version));
    int(
        HEADER_VERSION,
        i64::try_from(event.version).unwrap_or(i64::MAX),
    );
    int(
        HEADER_POSITION,
        i64::try_from(event.position).unwrap_or(i64::MAX),
    );
    int(HEADER_ATTEMPT, i64::from(state.attempt.max(1)));
    if !state.handlers.is_empty() {
        let names: Vec<AMQPValue> = state
            .handlers
            .iter()
            .map(|name| AMQPValue::LongString(LongString::from(name.as_str())))
            .collect();
        headers.insert(
            HEADER_HANDLERS.into(),
            AMQPValue::FieldArray(FieldArray::from(names)),
        );
    }
    let event_type = short(message, "the event type", event.event_type.to_string())?;
    Ok(BasicProperties::default()
        .with_content_type(CONTENT_TYPE.into())
        .with_delivery_mode(2)
        .with_message_id(message.message_id.to_string().into())
        .with_type(event_type)
        .with_timestamp(u64::try_from(event.timestamp.timestamp()).unwrap_or(0))
        .with_headers(headers))
}

/// The trace headers and the delivery state of a received message's headers. Anything
/// missing or of another type reads as absent (a first delivery, no trace context).
pub(crate) fn read_headers(headers: Option<&FieldTable>) -> (Metadata, DeliveryState) {
    let mut trace = Metadata::new();
    let mut state = DeliveryState::first();
    let Some(headers) = headers else {
        return (trace, state);
    };
    for (key, value) in headers {
        match key.as_str() {
            key if TRACE_HEADERS.contains(&key) => {
                if let Some(text) = as_text(value) {
                    trace.insert(key, text);
                }
            }
            HEADER_ATTEMPT => {
                state.attempt = as_int(value)
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(1)
                    .max(1);
            }
            HEADER_HANDLERS => {
                if let AMQPValue::FieldArray(names) = value {
                    state.handlers = names.as_slice().iter().filter_map(as_text).collect();
                }
            }
            HEADER_ERROR => state.error = as_text(value),
            _ => {}
        }
    }
    (trace, state)
}

/// A header's text, if it is one.
pub(super) fn as_text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// A header's integer, if it is one.
fn as_int(value: &AMQPValue) -> Option<i64> {
    match *value {
        AMQPValue::ShortShortInt(n) => Some(i64::from(n)),
        AMQPValue::ShortShortUInt(n) => Some(i64::from(n)),
        AMQPValue::ShortInt(n) => Some(i64::from(n)),
        AMQPValue::ShortUInt(n) => Some(i64::from(n)),
        AMQPValue::LongInt(n) => Some(i64::from(n)),
        AMQPValue::LongUInt(n) => Some(i64::from(n)),
        AMQPValue::LongLongInt(n) => Some(n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_round_trips() {
        let (message, state) = wire::test_delivery("eventsource:Order.OrderPlaced");
        let properties = properties(&message, &state).unwrap();
        let decoded = wire::decode(&body(&message).unwrap()).unwrap();
        assert_eq!(decoded, message.event);
        let (trace, read) = read_headers(properties.headers().as_ref());
        assert_eq!(read, state);
        assert_eq!(trace, message.headers);
        let correlation = properties
            .headers()
            .as_ref()
            .into_iter()
            .flatten()
            .find(|(key, _)| key.as_str() == wire::HEADER_CORRELATION_ID)
            .and_then(|(_, value)| as_text(value));
        assert_eq!(correlation.as_deref(), Some("c-1"));
        assert_eq!(
            properties.message_id().as_ref().map(ShortString::as_str),
            Some(message.message_id.to_string().as_str())
        );
    }

    #[test]
    fn foreign_messages_read_as_first_deliveries_without_context() {
        assert_eq!(read_headers(None).1.attempt, 1);
        let mut headers = FieldTable::default();
        headers.insert(HEADER_ATTEMPT.into(), AMQPValue::Boolean(true));
        headers.insert(Metadata::TRACEPARENT.into(), AMQPValue::LongInt(7));
        let (trace, state) = read_headers(Some(&headers));
        assert!(trace.is_empty());
        assert_eq!(state.attempt, 1);
    }
}
