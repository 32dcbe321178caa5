//! The one wire format every broker adapter speaks: the body (the stored event as JSON), the
//! `eventsource-*` headers naming it, the W3C trace headers, and the delivery state a
//! retried or dead-lettered message carries. The RabbitMQ, Kafka and NATS adapters all
//! write and read messages through this module, and an adapter for a fourth broker written
//! outside this crate follows the same path:
//!
//! - publish: [`instrument::start_publish`](super::instrument::start_publish) writes the
//!   publish span's context into [`BusMessage::headers`]; [`encode`] makes the body and
//!   [`text_headers`] (or the broker's typed equivalent) the headers;
//! - consume: [`decode`] the body (an [`Undecodable`] one goes to the dead letters with its
//!   reason), [`read_text_headers`] the trace context and [`DeliveryState`], hand the
//!   message to [`Dispatcher::receive`](super::Dispatcher::receive), then settle it as
//!   [`DeliveryState::after`] says.
//!
//! | header | what |
//! |---|---|
//! | `traceparent`, `tracestate`, `baggage` | the W3C context of the publish span |
//! | [`HEADER_MESSAGE_ID`] | the message id (the event id), for brokers without one of their own |
//! | [`HEADER_EVENT_TYPE`], [`HEADER_SCHEMA_VERSION`] | the event's type and schema version |
//! | [`HEADER_AGGREGATE_TYPE`], [`HEADER_AGGREGATE_ID`] | its stream |
//! | [`HEADER_VERSION`], [`HEADER_POSITION`] | its version in the stream, its position in the store |
//! | [`HEADER_CORRELATION_ID`], [`HEADER_CAUSATION_ID`] | its correlation and causation ids (see [`lineage`](crate::lineage)), when it has them |
//! | [`HEADER_ATTEMPT`] | which delivery this is, 1 for the first |
//! | [`HEADER_HANDLERS`] | the handlers a retried message is for (those that failed) |
//! | [`HEADER_ERROR`] | the last failure, on a retried or dead-lettered message |
//!
//! Text headers carry integers in decimal and the handler list as a JSON array of strings.
//! Whatever is missing or malformed reads as absent: a message without delivery state is a
//! first delivery for every handler, one without a valid trace context starts a new trace.
//!
//! ```
//! use eventsource_runtime::bus::BusMessage;
//! use eventsource_runtime::bus::wire::{self, DeliveryState};
//! use eventsource_runtime::event::{EventEnvelope, Metadata, StreamId};
//!
//! # let event = EventEnvelope {
//! #     event_id: uuid::Uuid::now_v7(), stream: StreamId::new("Order", "o-1"), version: 1,
//! #     position: 1, event_type: "OrderPlaced".into(), schema_version: 1,
//! #     timestamp: chrono::Utc::now(), payload: serde_json::json!({}).into(), metadata: Metadata::new(),
//! # };
//! let message = BusMessage::new("orders", event);
//! let body = wire::encode(&message.event).unwrap();
//! let headers = wire::text_headers(&message, &DeliveryState::first());
//!
//! // ... on the wire, then received:
//! let received = wire::decode(&body).unwrap();
//! let (trace, state) =
//!     wire::read_text_headers(headers.iter().map(|(k, v)| (*k, v.as_bytes())));
//! assert_eq!(received, message.event);
//! assert_eq!(state, DeliveryState::first());
//! assert!(trace.is_empty());
//! ```

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{BusMessage, HandlerFailure};
use crate::event::{EventEnvelope, Metadata, Payload, StreamId};

/// The content type of every message body.
pub const CONTENT_TYPE: &str = "application/json";

/// Header: the message id (the event id), for brokers that have no message id of their own.
pub const HEADER_MESSAGE_ID: &str = "eventsource-message-id";
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
/// Header: the event's correlation id (its metadata's `correlation_id`; the CloudEvents
/// extension's name, `correlationid`), when it has one. A copy of what the body carries, so
/// that a broker's console or the dead letters show it without decoding the body; a
/// message without it (from an older producer) is consumed all the same.
pub const HEADER_CORRELATION_ID: &str = "eventsource-correlationid";
/// Header: the event's causation id (its metadata's `causation_id`; CloudEvents'
/// `causationid`), when it has one, as [`HEADER_CORRELATION_ID`].
pub const HEADER_CAUSATION_ID: &str = "eventsource-causationid";
/// Header: which delivery of the message this is, 1 for the first (integer).
pub const HEADER_ATTEMPT: &str = "x-eventsource-attempt";
/// Header: the handlers a retried message is for (the ones that failed; a list of names).
pub const HEADER_HANDLERS: &str = "x-eventsource-handlers";
/// Header: why a retried or dead-lettered message is there (the last failure).
pub const HEADER_ERROR: &str = "x-eventsource-error";

/// The W3C trace headers a message carries between the publish span and the consume span.
pub const TRACE_HEADERS: [&str; 3] = [
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

/// The body of a message carrying `event`: the stored event as JSON.
///
/// # Errors
/// When the event cannot be serialized (its metadata or payload is not valid JSON text).
pub fn encode(event: &EventEnvelope) -> Result<Vec<u8>, serde_json::Error> {
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
}

/// A body that does not hold a stored event: kept with the message in the dead letters.
#[derive(Debug, thiserror::Error)]
#[error("undecodable message body")]
pub struct Undecodable(#[source] serde_json::Error);

/// The stored event a received body carries.
///
/// # Errors
/// [`Undecodable`] when the body is not a stored event as [`encode`] writes it.
pub fn decode(body: &[u8]) -> Result<EventEnvelope, Undecodable> {
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

/// The delivery state a message carries on the wire: which delivery it is, for which
/// handlers, and the last failure.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryState {
    /// Which delivery this is (1: the first).
    pub attempt: u32,
    /// The handlers to run (empty: all of the group's).
    pub handlers: Vec<String>,
    /// The last failure, on a retried or dead-lettered message.
    pub error: Option<String>,
}

impl Default for DeliveryState {
    fn default() -> Self {
        Self::first()
    }
}

/// What to do with a message once its handlers ran: [`DeliveryState::after`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Settle {
    /// Every handler succeeded: acknowledge it.
    Ack,
    /// Some failed: send a copy with this state (the failed handlers, the next attempt)
    /// to the retry stage of its attempt, then acknowledge the original.
    Retry(DeliveryState),
    /// They failed on the last allowed delivery, or cannot succeed on any (a handler that
    /// is not in the group): send a copy with this state to the dead letters, then
    /// acknowledge the original.
    DeadLetter(DeliveryState),
}

impl DeliveryState {
    /// A first delivery, for every handler.
    #[must_use]
    pub fn first() -> Self {
        Self {
            attempt: 1,
            handlers: Vec::new(),
            error: None,
        }
    }

    /// Whether this is a redelivery (a later attempt, or for some handlers only): its
    /// consume span is then a new root linked to the producer's.
    #[must_use]
    pub fn is_redelivery(&self) -> bool {
        self.attempt > 1 || !self.handlers.is_empty()
    }

    /// Builder: one delivery more (the broker handed the message over again because its
    /// consumer died before settling it).
    #[must_use]
    pub fn redelivered(mut self) -> Self {
        self.attempt = self.attempt.saturating_add(1);
        self
    }

    /// How to settle the message after delivery number [`attempt`](Self::attempt) ended in
    /// `failures`, when a group allows `max_deliveries` deliveries in all.
    ///
    /// Failures retry with the failed handlers only, until the last allowed delivery, then
    /// dead-letter. When every failure is a handler the group does not have
    /// ([`UnknownHandler`](super::UnknownHandler), say renamed in a deploy), no retry can
    /// help: the message is dead-lettered at once.
    #[must_use]
    pub fn after(&self, failures: &[HandlerFailure], max_deliveries: u32) -> Settle {
        let Some(first) = failures.first() else {
            return Settle::Ack;
        };
        let next = |attempt| Self {
            attempt,
            handlers: failures.iter().map(|f| f.handler.clone()).collect(),
            error: Some(crate::telemetry::values::Chain(first).to_string()),
        };
        let hopeless = failures.iter().all(HandlerFailure::is_unknown_handler);
        if hopeless || self.attempt >= max_deliveries {
            Settle::DeadLetter(next(self.attempt))
        } else {
            Settle::Retry(next(self.attempt.saturating_add(1)))
        }
    }
}

/// The lineage headers of `event` ([`HEADER_CORRELATION_ID`], [`HEADER_CAUSATION_ID`]),
/// those it has.
pub fn lineage_headers(event: &EventEnvelope) -> impl Iterator<Item = (&'static str, &str)> {
    let ids = [
        (HEADER_CORRELATION_ID, event.metadata.correlation_id()),
        (HEADER_CAUSATION_ID, event.metadata.causation_id()),
    ];
    ids.into_iter()
        .filter_map(|(header, id)| Some((header, id?)))
}

/// The headers of `message` as text, for brokers whose header values are bytes (Kafka,
/// NATS): the message id, the event's identity and lineage, the trace context in
/// [`BusMessage::headers`], and `state` (its handler list as a JSON array; the attempt
/// always, the handlers and the error when there are any).
#[must_use]
pub fn text_headers(message: &BusMessage, state: &DeliveryState) -> Vec<(&'static str, String)> {
    let event = &message.event;
    let mut headers = vec![
        (HEADER_MESSAGE_ID, message.message_id.to_string()),
        (HEADER_EVENT_TYPE, event.event_type.to_string()),
        (HEADER_SCHEMA_VERSION, event.schema_version.to_string()),
        (HEADER_AGGREGATE_TYPE, event.aggregate_type().to_owned()),
        (HEADER_AGGREGATE_ID, event.aggregate_id().to_owned()),
        (HEADER_VERSION, event.version.to_string()),
        (HEADER_POSITION, event.position.to_string()),
        (HEADER_ATTEMPT, state.attempt.max(1).to_string()),
    ];
    for (header, id) in lineage_headers(event) {
        headers.push((header, id.to_owned()));
    }
    for key in TRACE_HEADERS {
        if let Some(value) = message.headers.get(key) {
            headers.push((key, value.to_owned()));
        }
    }
    if !state.handlers.is_empty() {
        let names = serde_json::to_string(&state.handlers).unwrap_or_default();
        headers.push((HEADER_HANDLERS, names));
    }
    if let Some(error) = &state.error {
        headers.push((HEADER_ERROR, error.clone()));
    }
    headers
}

/// The trace context and the delivery state in a received message's text headers (as
/// [`text_headers`] writes them). Anything missing, not UTF-8 or malformed reads as absent.
pub fn read_text_headers<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> (Metadata, DeliveryState) {
    let mut trace = Metadata::new();
    let mut state = DeliveryState::first();
    for (key, value) in headers {
        let wanted = TRACE_HEADERS.contains(&key)
            || matches!(key, HEADER_ATTEMPT | HEADER_HANDLERS | HEADER_ERROR);
        // Only what is read is checked as text: a message carries more headers.
        let Some(value) = wanted.then(|| std::str::from_utf8(value).ok()).flatten() else {
            continue;
        };
        match key {
            HEADER_ATTEMPT => state.attempt = value.trim().parse().unwrap_or(1).max(1),
            HEADER_HANDLERS => {
                state.handlers = serde_json::from_str(value).unwrap_or_default();
            }
            HEADER_ERROR => state.error = Some(value.to_owned()),
            key => {
                trace.insert(key, value);
            }
        }
    }
    (trace, state)
}

/// The message id in a received message's text headers ([`HEADER_MESSAGE_ID`]), if it is
/// one.
pub fn read_message_id<'a>(headers: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Option<Uuid> {
    headers
        .into_iter()
        .find(|(key, _)| *key == HEADER_MESSAGE_ID)
        .and_then(|(_, value)| std::str::from_utf8(value).ok()?.parse().ok())
}

/// A message as the codecs' tests send it, to `destination`: an event with a payload and
/// metadata, a trace context in its headers.
#[cfg(test)]
pub(crate) fn test_message(destination: &str) -> BusMessage {
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
    BusMessage::new(destination, event).with_headers(headers)
}

/// A message to `destination` and the delivery state the codecs' round-trip tests send it
/// with: a second attempt after the handler `mailer` failed.
#[cfg(all(test, any(feature = "rabbitmq", feature = "nats")))]
pub(crate) fn test_delivery(destination: &str) -> (BusMessage, DeliveryState) {
    let state = DeliveryState {
        attempt: 2,
        handlers: vec!["mailer".into()],
        error: Some("smtp down".into()),
    };
    (test_message(destination), state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{HandlerError, UnknownHandler};

    fn message() -> BusMessage {
        test_message("orders")
    }

    fn failure(handler: &str, error: HandlerError) -> HandlerFailure {
        HandlerFailure {
            handler: handler.to_owned(),
            message_id: Uuid::now_v7(),
            event_type: "OrderPlaced".to_owned(),
            error,
        }
    }

    #[test]
    fn a_message_round_trips_through_text_headers() {
        let message = message();
        let state = DeliveryState {
            attempt: 3,
            handlers: vec!["mailer".into(), "a, \"quoted\" name".into()],
            error: Some("smtp down".into()),
        };
        let headers = text_headers(&message, &state);
        let (trace, read) = read_text_headers(headers.iter().map(|(k, v)| (*k, v.as_bytes())));
        assert_eq!(read, state);
        assert_eq!(trace, message.headers);
        let id = read_message_id(headers.iter().map(|(k, v)| (*k, v.as_bytes())));
        assert_eq!(id, Some(message.message_id));
        let correlation = headers.iter().find(|(k, _)| *k == HEADER_CORRELATION_ID);
        assert_eq!(correlation.map(|(_, v)| v.as_str()), Some("c-1"));
        assert!(
            !headers.iter().any(|(k, _)| *k == HEADER_CAUSATION_ID),
            "absent: none"
        );
        assert_eq!(
            decode(&encode(&message.event).unwrap()).unwrap(),
            message.event
        );
    }

    #[test]
    fn malformed_headers_read_as_a_first_delivery_without_context() {
        let headers: [(&str, &[u8]); 4] = [
            (HEADER_ATTEMPT, b"many"),
            (HEADER_HANDLERS, b"[not json"),
            (Metadata::TRACEPARENT, b"\xff\xfe"),
            (HEADER_MESSAGE_ID, b"not-a-uuid"),
        ];
        let (trace, state) = read_text_headers(headers);
        assert!(trace.is_empty());
        assert_eq!(state, DeliveryState::first());
        assert_eq!(read_message_id(headers), None);
        assert!(decode(b"{not json").is_err());
    }

    #[test]
    fn failures_retry_until_the_last_delivery_then_dead_letter() {
        let failed = [failure("mailer", HandlerError::new("smtp down"))];
        let first = DeliveryState::first();
        assert_eq!(first.after(&[], 3), Settle::Ack);
        let Settle::Retry(second) = first.after(&failed, 3) else {
            panic!("a first failure is retried");
        };
        assert_eq!(
            (second.attempt, second.handlers.as_slice()),
            (2, &["mailer".to_owned()][..])
        );
        assert!(second.error.as_deref().unwrap().contains("smtp down"));
        let third = DeliveryState {
            attempt: 3,
            ..second
        };
        assert!(matches!(third.after(&failed, 3), Settle::DeadLetter(s) if s.attempt == 3));
    }

    #[test]
    fn a_handler_the_group_does_not_have_is_dead_lettered_at_once() {
        let unknown = [failure(
            "renamed",
            HandlerError::new(UnknownHandler::new("renamed")),
        )];
        let Settle::DeadLetter(dead) = DeliveryState::first().after(&unknown, 4) else {
            panic!("no retry can help");
        };
        assert_eq!(dead.handlers, ["renamed"]);
        assert!(
            dead.error
                .as_deref()
                .unwrap()
                .contains("no handler named `renamed`")
        );
        // Beside a failure that may pass next time, it waits for the retry.
        let mixed = [
            failure("renamed", HandlerError::new(UnknownHandler::new("renamed"))),
            failure("mailer", HandlerError::new("down")),
        ];
        assert!(matches!(
            DeliveryState::first().after(&mixed, 4),
            Settle::Retry(_)
        ));
    }
}
