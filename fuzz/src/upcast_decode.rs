//! A stored event, three lines: its type, its schema version, its payload (JSON; the rest
//! of the input), read through an event set's upcasters as every reader reads it.
//!
//! The set (`Customer`'s events) has a JSON step, typed conversions (one that refuses), a
//! rename, a split of a retired type, and a split whose parts the payload lists (any type,
//! any version, itself again). The event is decoded every way there is
//! (`EventEnvelope::decode`, `decode_all`, `decode_as`, `Upcasters::upcast`); checked: the
//! ways agree, and an error is an error, never a panic.

use eventsource_runtime::event::upcast::{SplitPart, Upcasters};
use eventsource_runtime::event::{DecodeError, EventEnvelope, EventType, Metadata, StreamId};
use eventsource_runtime::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerRegistered {
    pub name: String,
}

/// Version 3: street, city and country (version 1 was one string, version 2 had no country).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddressChanged {
    pub street: String,
    pub city: String,
    pub country: String,
}

/// Version 2: `email` (version 1 called it `address`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailChanged {
    pub email: String,
}

#[derive(Deserialize)]
struct AddressV2 {
    street: String,
    city: String,
}

#[derive(Deserialize)]
struct EmailV1 {
    address: String,
}

/// A part of a `ContactsImported` event, as its payload lists it.
#[derive(Deserialize)]
struct ImportedPart {
    #[serde(rename = "type")]
    event_type: String,
    version: u32,
    payload: Value,
}

fn customer_upcasters() -> Upcasters {
    Upcasters::new()
        .split("CustomerSignedUp", 1, |mut payload: Value| {
            let address = payload["address"].take();
            let name = payload["name"].take();
            Ok::<_, &str>(vec![
                SplitPart::new("CustomerRegistered", 1, json!({ "name": name })),
                SplitPart::new("AddressChanged", 1, json!({ "address": address })),
            ])
        })
        .split("ContactsImported", 1, |payload: Value| {
            let parts: Vec<ImportedPart> = serde_json::from_value(payload)?;
            Ok::<_, serde_json::Error>(
                parts
                    .into_iter()
                    .map(|part| SplitPart::new(part.event_type, part.version, part.payload))
                    .collect(),
            )
        })
        .rename("CustomerMoved", "AddressChanged")
        .step("AddressChanged", 1, |payload: &mut Value| {
            let address = payload["address"].as_str().ok_or("no address")?;
            let (street, city) = address.rsplit_once(", ").ok_or("no city in the address")?;
            *payload = json!({ "street": street, "city": city });
            Ok::<_, &str>(())
        })
        .convert("AddressChanged", 2, |old: AddressV2| {
            Ok::<_, &str>(AddressChanged {
                street: old.street,
                city: old.city,
                country: "US".to_owned(),
            })
        })
        .convert("EmailChanged", 1, |old: EmailV1| {
            if old.address.contains('@') {
                Ok(EmailChanged { email: old.address })
            } else {
                Err("not an email address")
            }
        })
}

#[derive(Debug, Default, Aggregate)]
#[aggregate(
    type = "Customer",
    events(CustomerRegistered, AddressChanged(version = 3), EmailChanged(version = 2)),
    upcasters = customer_upcasters
)]
pub struct Customer {
    events: usize,
}

impl Apply<CustomerRegistered> for Customer {
    fn apply(&mut self, _: &CustomerRegistered) {
        self.events += 1;
    }
}

impl Apply<AddressChanged> for Customer {
    fn apply(&mut self, _: &AddressChanged) {
        self.events += 1;
    }
}

impl Apply<EmailChanged> for Customer {
    fn apply(&mut self, _: &EmailChanged) {
        self.events += 1;
    }
}

/// Runs the checks on one input; a failed one panics.
pub fn check(data: &[u8]) {
    let Some(envelope) = stored(data) else {
        return;
    };
    CustomerEvent::upcasters()
        .check()
        .expect("the set's upcasters");

    let all = envelope.decode_all::<CustomerEvent>();
    let one = envelope.decode::<CustomerEvent>();
    let upcast = CustomerEvent::upcasters().upcast(&envelope);
    match &all {
        Ok(events) => {
            let upcast = upcast.expect("decoded, so upcast");
            assert_eq!(upcast.events().len(), events.len());
            match &one {
                Ok(event) => assert_eq!(std::slice::from_ref(event), &events[..]),
                Err(DecodeError::Split { parts, .. }) => assert_eq!(*parts, events.len()),
                Err(error) => panic!("decode_all succeeded, decode failed: {error}"),
            }
            same_as::<AddressChanged>(&envelope, events, |event| match event {
                CustomerEvent::AddressChanged(event) => Some(event),
                _ => None,
            });
            same_as::<EmailChanged>(&envelope, events, |event| match event {
                CustomerEvent::EmailChanged(event) => Some(event),
                _ => None,
            });
        }
        Err(_) => assert!(one.is_err()),
    }
}

/// `decode_as::<T>` gives the first `T` of the events `decode_all` made, or none.
fn same_as<T: EventType + PartialEq + std::fmt::Debug>(
    envelope: &EventEnvelope,
    events: &[CustomerEvent],
    as_t: impl Fn(&CustomerEvent) -> Option<&T>,
) {
    let first = events.iter().find_map(as_t);
    match (envelope.decode_as::<T>(), first) {
        (None, None) => {}
        (Some(Ok(decoded)), Some(first)) => assert_eq!(&decoded, first),
        (decoded, first) => panic!(
            "decode_as::<{}> gave {decoded:?}, decode_all {first:?}",
            T::EVENT_TYPE
        ),
    }
}

/// The stored event the input writes, if it is one (a store holds valid JSON only).
fn stored(data: &[u8]) -> Option<EventEnvelope> {
    let text = std::str::from_utf8(data).ok()?;
    let mut lines = text.splitn(3, '\n');
    let event_type = lines.next()?.to_owned();
    let schema_version = lines.next()?.trim().parse().ok()?;
    let payload = eventsource_runtime::event::Payload::from_json(lines.next()?).ok()?;
    Some(EventEnvelope {
        event_id: uuid::Uuid::from_u128(0x0190_c4b4_2f5a_7cc3_9a41_5d2f_4b8e_9a10),
        stream: StreamId::new("Customer", "c-1"),
        version: 1,
        position: 1,
        event_type: event_type.into(),
        schema_version,
        timestamp: chrono::DateTime::UNIX_EPOCH,
        payload,
        metadata: Metadata::new(),
    })
}
