//! The wire format ([`crate::bus::wire`]) in NATS terms: the body as it is, every header as
//! text ([`wire::text_headers`]), plus `Nats-Msg-Id` (the event id) on a first publish so
//! that JetStream's duplicate window drops a republish; and back.

use async_nats::HeaderMap;
use async_nats::header::NATS_MESSAGE_ID;

use crate::bus::wire::{self, DeliveryState};
use crate::bus::{BusError, BusMessage};
use crate::event::Metadata;

/// The body of `message` ([`wire::encode`]).
pub(super) fn body(message: &BusMessage) -> Result<Vec<u8>, BusError> {
    wire::encode(&message.event).map_err(|error| BusError::Rejected {
        message_id: message.message_id,
        reason: format!("cannot serialize the event: {error}"),
    })
}

/// The headers of `message` with `state`; `Nats-Msg-Id` = the message id when `dedup`
/// (a first publish; a retried or dead-lettered copy goes without, or the duplicate window
/// would drop it).
pub(super) fn headers(message: &BusMessage, state: &DeliveryState, dedup: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (key, value) in wire::text_headers(message, state) {
        headers.insert(key, value.as_str());
    }
    if dedup {
        headers.insert(NATS_MESSAGE_ID, message.message_id.to_string().as_str());
    }
    headers
}

/// The headers as `(name, value)` pairs, the first value of each name.
pub(super) fn pairs(headers: Option<&HeaderMap>) -> Vec<(&str, &[u8])> {
    headers
        .into_iter()
        .flat_map(HeaderMap::iter)
        .filter_map(|(name, values)| {
            let value = values.first()?;
            Some((name.as_ref(), value.as_str().as_bytes()))
        })
        .collect()
}

/// The trace context and the delivery state in a received message's headers.
pub(super) fn read_headers(headers: Option<&HeaderMap>) -> (Metadata, DeliveryState) {
    wire::read_text_headers(pairs(headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_round_trips() {
        let (message, state) = wire::test_delivery("eventsource.Order.OrderPlaced");
        let headers = headers(&message, &state, true);
        let (trace, read) = read_headers(Some(&headers));
        assert_eq!(read, state);
        assert_eq!(trace, message.headers);
        let id = headers.get(NATS_MESSAGE_ID).map(|v| v.as_str().to_owned());
        assert_eq!(id, Some(message.message_id.to_string()));
        assert_eq!(
            wire::read_message_id(pairs(Some(&headers))),
            Some(message.message_id)
        );
        let copy = super::headers(&message, &state, false);
        assert!(copy.get(NATS_MESSAGE_ID).is_none());
        let decoded = wire::decode(&body(&message).unwrap()).unwrap();
        assert_eq!(decoded, message.event);
    }

    #[test]
    fn foreign_messages_read_as_first_deliveries_without_context() {
        let (trace, state) = read_headers(None);
        assert!(trace.is_empty());
        assert_eq!(state, DeliveryState::first());
        let mut headers = HeaderMap::new();
        headers.insert(wire::HEADER_ATTEMPT, "lots");
        let (_, state) = read_headers(Some(&headers));
        assert_eq!(state.attempt, 1);
    }
}
