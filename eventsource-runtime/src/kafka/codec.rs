//! The wire format ([`crate::bus::wire`]) in Kafka terms: the record's value is the body,
//! its key the aggregate id, its headers the text headers; and back.

use rdkafka::message::{Header, Headers as _, Message, OwnedHeaders};

use crate::bus::wire::{self, DeliveryState};
use crate::bus::{BusError, BusMessage};
use crate::event::Metadata;

/// The headers of `message` with `state`.
pub(super) fn headers(message: &BusMessage, state: &DeliveryState) -> OwnedHeaders {
    let headers = wire::text_headers(message, state);
    owned_headers(
        headers
            .iter()
            .map(|(key, value)| (&**key, value.as_bytes())),
    )
}

/// A record's headers made of (key, value) pairs.
pub(super) fn owned_headers<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> OwnedHeaders {
    pairs
        .into_iter()
        .fold(OwnedHeaders::new(), |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value),
            })
        })
}

/// The body of `message` ([`wire::encode`]).
pub(super) fn body(message: &BusMessage) -> Result<Vec<u8>, BusError> {
    wire::encode(&message.event).map_err(|error| BusError::Rejected {
        message_id: message.message_id,
        reason: format!("cannot serialize the event: {error}"),
    })
}

/// A received record's headers, as (key, value) pairs (headers without a value left out).
pub(super) fn header_pairs<M: Message>(record: &M) -> Vec<(&str, &[u8])> {
    record
        .headers()
        .map(|headers| {
            headers
                .iter()
                .filter_map(|header| Some((header.key, header.value?)))
                .collect()
        })
        .unwrap_or_default()
}

/// The trace context and delivery state of a received record (its headers read in place,
/// not collected first: this is asked of every record).
pub(super) fn read<M: Message>(record: &M) -> (Metadata, DeliveryState) {
    let headers = record.headers();
    let pairs = headers
        .iter()
        .flat_map(|headers| headers.iter())
        .filter_map(|header| Some((header.key, header.value?)));
    wire::read_text_headers(pairs)
}
