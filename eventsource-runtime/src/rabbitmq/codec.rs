//! Messages on the wire: a stored event as a JSON body, its identity, delivery state and
//! trace context in the AMQP properties and headers; and back.

use chrono::{DateTime, Utc};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::bus::{BusError, BusMessage};
use crate::event::{EventEnvelope, Metadata, Payload, StreamId};

/// The content type of every message body.
pub(super) const CONTENT_TYPE: &str = "application/json";

/// Header: the event's type name.
pub const HEADER_EVENT_TYPE: &str = "eventsource-event-type";
/// Header: the event's schema version (integer).
pub const HEADER_SCHEMA_VERSION: &str = "eventsource-schema-version";
/// Header: the aggregate's type.
pub const HEADER_AGGREGATE_TYPE: &str = "eventsource-aggregate-type";
/// Header: the aggregate's id.
pub const HEADER_AGGREGATE_ID: &str = "eventsource-aggregate-id";
/// Header: the event's version in its stream (integer).
pub const HEADER_VERSION: &str = "eventsource-version";
/// Header: the event's global position in its store (integer).
pub const HEADER_POSITION: &str = "eventsource-position";
/// Header: which delivery of the message this is, 1 for the first (integer).
pub const HEADER_ATTEMPT: &str = "x-eventsource-attempt";
/// Header: the handlers a retried message is for (the ones that failed; array of strings).
pub const HEADER_HANDLERS: &str = "x-eventsource-handlers";
/// Header: why a dead-lettered message is there (the last failure).
pub const HEADER_ERROR: &str = "x-eventsource-error";

/// The W3C trace headers copied between a message's headers and the AMQP headers.
const TRACE_HEADERS: [&str; 3] = [
    Metadata::TRACEPARENT,
    Metadata::TRACESTATE,
    Metadata::BAGGAGE,
];

/// The body: the stored event, whole.
#[derive(Serialize)]
struct Outgoing<'a> {
    event_id: Uuid,
    stream: &'a StreamId,
    version: u64,
    position: u64,
    event_type: &'a str,
    schema_version: u32,
    timestamp: DateTime<Utc>,
    payload: &'a Payload,
    metadata: &'a Metadata,
}

#[derive(Deserialize)]
struct Incoming {
    event_id: Uuid,
    stream: StreamId,
    version: u64,
    position: u64,
    event_type: String,
    schema_version: u32,
    timestamp: DateTime<Utc>,
    payload: Payload,
    #[serde(default)]
    metadata: Metadata,
}

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

/// The body of `message`.
pub(super) fn body(message: &BusMessage) -> Result<Vec<u8>, BusError> {
    let event = &message.event;
    serde_json::to_vec(&Outgoing {
        event_id: event.event_id,
        stream: &event.stream,
        version: event.version,
        position: event.position,
        event_type: &event.event_type,
        schema_version: event.schema_version,
        timestamp: event.timestamp,
        payload: &event.payload,
        metadata: &event.metadata,
    })
    .map_err(|error| BusError::Rejected {
        message_id: message.message_id,
        reason: format!("cannot serialize the event: {error}"),
    })
}

/// The delivery state a message carries on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct DeliveryState {
    /// Which delivery this is (1: the first).
    pub(super) attempt: u32,
    /// The handlers to run (empty: all of the group's).
    pub(super) handlers: Vec<String>,
    /// The last failure, for dead letters.
    pub(super) error: Option<String>,
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

/// Why a received message cannot be handled: kept with it in the dead-letter queue.
#[derive(Debug, thiserror::Error)]
#[error("undecodable message body")]
pub(super) struct Undecodable(#[source] pub(super) serde_json::Error);

/// A received body as the stored event it carries.
pub(super) fn event(body: &[u8]) -> Result<EventEnvelope, Undecodable> {
    let incoming: Incoming = serde_json::from_slice(body).map_err(Undecodable)?;
    Ok(EventEnvelope {
        event_id: incoming.event_id,
        stream: incoming.stream,
        version: incoming.version,
        position: incoming.position,
        event_type: incoming.event_type.into(),
        schema_version: incoming.schema_version,
        timestamp: incoming.timestamp,
        payload: incoming.payload,
        metadata: incoming.metadata,
    })
}

/// The trace headers and the delivery state of a received message's headers. Anything
/// missing or of another type reads as absent (a first delivery, no trace context).
pub(super) fn read_headers(headers: Option<&FieldTable>) -> (Metadata, DeliveryState) {
    let mut trace = Metadata::new();
    let mut state = DeliveryState {
        attempt: 1,
        ..DeliveryState::default()
    };
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

    fn message() -> BusMessage {
        let event = EventEnvelope {
            event_id: Uuid::now_v7(),
            stream: StreamId::new("Order", "o-1"),
            version: 3,
            position: 42,
            event_type: "OrderPlaced".into(),
            schema_version: 2,
            timestamp: Utc::now(),
            payload: serde_json::json!({ "total": 12 }).into(),
            metadata: Metadata::new().with("correlation_id", "c-1"),
        };
        let headers = Metadata::new().with(
            Metadata::TRACEPARENT,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        BusMessage::new("eventsource:Order.OrderPlaced", event).with_headers(headers)
    }

    #[test]
    fn a_message_round_trips() {
        let message = message();
        let state = DeliveryState {
            attempt: 2,
            handlers: vec!["mailer".into()],
            error: Some("smtp down".into()),
        };
        let properties = properties(&message, &state).unwrap();
        let decoded = event(&body(&message).unwrap()).unwrap();
        assert_eq!(decoded, message.event);
        let (trace, read) = read_headers(properties.headers().as_ref());
        assert_eq!(read, state);
        assert_eq!(trace, message.headers);
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
        assert!(event(b"{not json").is_err());
    }
}
