//! A customer whose events changed shape over time, as code at their newest versions reads
//! them (`upcasting.rs`):
//!
//! - `AddressChanged` is at version 3: v1 was one string (`{"address": "1 Main St,
//!   Paris"}`), v2 split it (`{"street", "city"}`), v3 added the country, found from the
//!   city (an upcaster that fails for a city it does not know);
//! - `CustomerRelocated` (v1) was renamed `AddressChanged`;
//! - `ContactChanged` (v1, `{"email", "phone"}`) was split into `EmailChanged` and
//!   `PhoneChanged`.
//!
//! Also a ledger whose upcasters skip a version (a registration error), and a gauge whose
//! events no other test reads (its upcast counter is exact).
#![allow(dead_code)]

use eventsource_runtime::event::NewEvent;
use eventsource_runtime::event::upcast::{SplitPart, Upcasters};
use eventsource_runtime::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

// ---- the customer ---------------------------------------------------------------------------

/// Version 3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddressChanged {
    pub street: String,
    pub city: String,
    pub country: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailChanged {
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhoneChanged {
    pub phone: String,
}

/// The countries the v2 -> v3 upcaster knows.
fn country_of(city: &str) -> Option<&'static str> {
    match city {
        "Paris" => Some("FR"),
        "Springfield" => Some("US"),
        "Berlin" => Some("DE"),
        _ => None,
    }
}

pub fn customer_upcasters() -> Upcasters {
    Upcasters::new()
        .step("AddressChanged", 1, |payload: &mut Value| {
            let address = payload["address"].as_str().ok_or("no address")?.to_owned();
            let (street, city) = address
                .split_once(", ")
                .ok_or_else(|| format!("no city in {address:?}"))?;
            *payload = json!({ "street": street, "city": city });
            Ok::<_, String>(())
        })
        .step("AddressChanged", 2, |payload: &mut Value| {
            let city = payload["city"].as_str().ok_or("no city")?;
            let country = country_of(city).ok_or_else(|| format!("no country known for {city}"))?;
            payload["country"] = json!(country);
            Ok::<_, String>(())
        })
        .rename("CustomerRelocated", "AddressChanged")
        .split("ContactChanged", 1, |payload: Value| {
            Ok::<_, &str>(vec![
                SplitPart::new("EmailChanged", 1, json!({ "email": payload["email"] })),
                SplitPart::new("PhoneChanged", 1, json!({ "phone": payload["phone"] })),
            ])
        })
}

#[derive(Debug, Default, Aggregate)]
#[aggregate(
    type = "Customer",
    events(AddressChanged(version = 3), EmailChanged, PhoneChanged),
    upcasters = customer_upcasters
)]
pub struct Customer {
    /// `street, city, country`, oldest first.
    pub addresses: Vec<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

impl Apply<AddressChanged> for Customer {
    fn apply(&mut self, e: &AddressChanged) {
        self.addresses
            .push(format!("{}, {}, {}", e.street, e.city, e.country));
    }
}
impl Apply<EmailChanged> for Customer {
    fn apply(&mut self, e: &EmailChanged) {
        self.email = Some(e.email.clone());
    }
}
impl Apply<PhoneChanged> for Customer {
    fn apply(&mut self, e: &PhoneChanged) {
        self.phone = Some(e.phone.clone());
    }
}

/// A stored `AddressChanged` as each version's code wrote it.
pub fn address_v1(street: &str, city: &str) -> NewEvent {
    NewEvent::new(
        "AddressChanged",
        1,
        json!({ "address": format!("{street}, {city}") }),
    )
}
pub fn address_v2(street: &str, city: &str) -> NewEvent {
    NewEvent::new(
        "AddressChanged",
        2,
        json!({ "street": street, "city": city }),
    )
}
pub fn address_v3(street: &str, city: &str, country: &str) -> NewEvent {
    NewEvent::new(
        "AddressChanged",
        3,
        json!({ "street": street, "city": city, "country": country }),
    )
}
/// Under its old name (at version 1: a `{"address"}` string).
pub fn relocated_v1(street: &str, city: &str) -> NewEvent {
    NewEvent::new(
        "CustomerRelocated",
        1,
        json!({ "address": format!("{street}, {city}") }),
    )
}
/// Before the split.
pub fn contact_v1(email: &str, phone: &str) -> NewEvent {
    NewEvent::new(
        "ContactChanged",
        1,
        json!({ "email": email, "phone": phone }),
    )
}

// ---- a registry with a gap --------------------------------------------------------------------

/// Version 3, but its upcasters go from 1 to 2 only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credited {
    pub cents: i64,
}

pub fn gapped_upcasters() -> Upcasters {
    Upcasters::new().step("Credited", 1, |payload: &mut Value| {
        payload["cents"] = json!(payload["euros"].as_i64().unwrap_or(0) * 100);
        Ok::<_, &str>(())
    })
}

#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "Ledger", events(Credited(version = 3)), upcasters = gapped_upcasters)]
pub struct Ledger {
    pub cents: i64,
}

impl Apply<Credited> for Ledger {
    fn apply(&mut self, e: &Credited) {
        self.cents += e.cents;
    }
}

// ---- a gauge, for the upcast counter ----------------------------------------------------------

/// Version 2: v1 was `{"level": n}`; `LevelRecorded` is its old name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelSet {
    pub value: i64,
}

pub fn gauge_upcasters() -> Upcasters {
    Upcasters::new()
        .step("LevelSet", 1, |payload: &mut Value| {
            let level = payload["level"].as_i64().ok_or("no level")?;
            *payload = json!({ "value": level });
            Ok::<_, &str>(())
        })
        .rename("LevelRecorded", "LevelSet")
}

#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "Gauge", events(LevelSet(version = 2)), upcasters = gauge_upcasters)]
pub struct Gauge {
    pub values: Vec<i64>,
}

impl Apply<LevelSet> for Gauge {
    fn apply(&mut self, e: &LevelSet) {
        self.values.push(e.value);
    }
}

// ---- a projection of the customer's v3 types ---------------------------------------------------

/// What a `#[projection]` handling the current types saw.
#[derive(Debug, Default)]
pub struct Directory {
    /// `(position, "street, city, country")`.
    pub addresses: Vec<(u64, String)>,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
    /// Those handled envelopes that were upcast (`schema_version` is the current one, so
    /// told by their type only: a v3 `AddressChanged` envelope).
    pub versions: Vec<u32>,
}

#[projection(projection_name = "Directory", enable_tracing = true)]
impl Directory {
    fn address(&mut self, event: &AddressChanged, envelope: &EventEnvelope) {
        self.versions.push(envelope.schema_version);
        self.addresses.push((
            envelope.position,
            format!("{}, {}, {}", event.street, event.city, event.country),
        ));
    }

    fn email(&mut self, event: &EmailChanged) {
        self.emails.push(event.email.clone());
    }

    fn phone(&mut self, event: &PhoneChanged) {
        self.phones.push(event.phone.clone());
    }
}

/// The same addresses, by a projection whose spans are off (the default).
#[derive(Debug, Default)]
pub struct Addresses {
    pub count: usize,
}

#[projection(projection_name = "Addresses")]
impl Addresses {
    fn address(&mut self, _event: &AddressChanged) {
        self.count += 1;
    }

    fn email(&mut self, _event: &EmailChanged) {}
}
