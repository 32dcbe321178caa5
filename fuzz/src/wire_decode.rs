//! A received message: its text headers (`key: value` lines, as Kafka and NATS carry
//! them), an empty line, then its body.
//!
//! The body is decoded (`bus::wire::decode`); a stored event read from it is encoded again
//! as a relay would publish it, which reads back as the same event, in the same bytes. The
//! headers' trace context and delivery state (`bus::wire::read_text_headers`) are written
//! again with the event (`bus::wire::text_headers`, as a retry publishes them) and read back
//! the same, with the message id.

use eventsource_runtime::bus::BusMessage;
use eventsource_runtime::bus::wire;
use eventsource_runtime::event::{EventEnvelope, Metadata, StreamId};

/// Runs the checks on one input; a failed one panics.
pub fn check(data: &[u8]) {
    let (headers, body) = crate::headers_and_body(data);

    let event = match wire::decode(body) {
        Ok(event) => {
            let encoded = wire::encode(&event).expect("a decoded event encodes");
            let again = wire::decode(&encoded).expect("an encoded event decodes");
            assert_eq!(again, event);
            assert_eq!(wire::encode(&again).expect("encodes"), encoded);
            event
        }
        Err(_) => placeholder(),
    };

    let (trace, state) = wire::read_text_headers(headers.iter().copied());
    assert!(state.attempt >= 1);
    let _ = wire::read_message_id(headers.iter().copied());

    let message = BusMessage::new("orders", event).with_headers(trace.clone());
    let written = wire::text_headers(&message, &state);
    let pairs = || written.iter().map(|(key, value)| (*key, value.as_bytes()));
    assert_eq!(wire::read_text_headers(pairs()), (trace, state));
    assert_eq!(wire::read_message_id(pairs()), Some(message.message_id));
}

/// The event a message whose body is not one is sent with.
fn placeholder() -> EventEnvelope {
    EventEnvelope {
        event_id: uuid::Uuid::from_u128(0x0190_c4b4_2f5a_7cc3_9a41_5d2f_4b8e_9a10),
        stream: StreamId::new("Order", "o-1"),
        version: 1,
        position: 1,
        event_type: "OrderPlaced".into(),
        schema_version: 1,
        timestamp: chrono::DateTime::UNIX_EPOCH,
        payload: serde_json::json!({}).into(),
        metadata: Metadata::new(),
    }
}
