//! The registry's checks and the door, on envelopes built here (the stores, the runner and
//! the brokers are tested in the workspace's tests).

use serde_json::{Value, json};

use super::{RegistrationError, SplitPart, UpcastFailure, Upcasted, Upcasters};
use crate::event::{EventEnvelope, Metadata, StreamId};

fn stored(event_type: &'static str, version: u32, payload: Value) -> EventEnvelope {
    EventEnvelope {
        event_id: uuid::Uuid::now_v7(),
        stream: StreamId::new("Customer", "c-1"),
        version: 1,
        position: 1,
        event_type: event_type.into(),
        schema_version: version,
        timestamp: chrono::Utc::now(),
        payload: payload.into(),
        metadata: Metadata::new(),
    }
}

fn add_field(name: &'static str) -> impl Fn(&mut Value) -> Result<(), &'static str> {
    move |payload| {
        payload[name] = json!(true);
        Ok(())
    }
}

fn bound(upcasters: Upcasters) -> Upcasters {
    upcasters.for_event_types(&[
        ("AddressChanged", 3),
        ("EmailChanged", 1),
        ("PhoneChanged", 1),
    ])
}

#[test]
fn a_chain_brings_an_old_event_to_the_current_version() {
    let upcasters = bound(
        Upcasters::new()
            .step("AddressChanged", 1, add_field("v2"))
            .step("AddressChanged", 2, add_field("v3")),
    );
    upcasters.check().unwrap();
    let old = stored("AddressChanged", 1, json!({}));
    let Upcasted::Changed {
        from_version,
        events,
    } = upcasters.upcast(&old).unwrap()
    else {
        panic!("not upcast");
    };
    assert_eq!(from_version, 1);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].schema_version, 3);
    assert_eq!(events[0].event_id, old.event_id);
    assert_eq!(events[0].payload, json!({"v2": true, "v3": true}));
    assert_eq!(events[0].payload.upcast_from(), Some(1));

    let middle = stored("AddressChanged", 2, json!({}));
    let upcast = upcasters.upcast(&middle).unwrap();
    assert_eq!(upcast.events()[0].payload, json!({"v3": true}));

    let current = stored("AddressChanged", 3, json!({"x": 1}));
    assert!(matches!(
        upcasters.upcast(&current).unwrap(),
        Upcasted::Unchanged(_)
    ));
    let other = stored("SomethingElse", 7, json!({}));
    assert!(matches!(
        upcasters.upcast(&other).unwrap(),
        Upcasted::Unchanged(_)
    ));
}

#[test]
fn a_rename_and_a_split_make_the_current_types() {
    let upcasters = bound(
        Upcasters::new()
            .step("AddressChanged", 1, add_field("v2"))
            .step("AddressChanged", 2, add_field("v3"))
            .rename("CustomerMoved", "AddressChanged")
            .split("ContactChanged", 1, |payload: Value| {
                Ok::<_, &str>(vec![
                    SplitPart::new("EmailChanged", 1, json!({"email": payload["email"]})),
                    SplitPart::new("PhoneChanged", 1, json!({"phone": payload["phone"]})),
                ])
            }),
    );
    upcasters.check().unwrap();
    let moved = stored("CustomerMoved", 1, json!({}));
    let upcast = upcasters.upcast(&moved).unwrap();
    assert_eq!(upcast.events()[0].event_type, "AddressChanged");
    assert_eq!(upcast.events()[0].schema_version, 3);

    let contact = stored("ContactChanged", 1, json!({"email": "a@b", "phone": "1"}));
    let upcast = upcasters.upcast(&contact).unwrap();
    let events = upcast.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].event_type, "EmailChanged");
    assert_eq!(events[0].payload, json!({"email": "a@b"}));
    assert_eq!(events[1].event_type, "PhoneChanged");
    assert_eq!(events[0].event_id, contact.event_id);
    assert_ne!(
        events[1].event_id, contact.event_id,
        "parts get ids of their own"
    );
    assert_eq!(
        events[1].event_id,
        upcasters.upcast(&contact).unwrap().events()[1].event_id,
        "the same at every read"
    );
    assert_eq!(events[1].position, contact.position);
}

#[test]
fn misregistrations_name_the_fix() {
    let gap = bound(Upcasters::new().step("AddressChanged", 1, add_field("v2")));
    let error = gap.check().unwrap_err();
    assert_eq!(
        error,
        RegistrationError::Gap {
            event_type: "AddressChanged".into(),
            missing: 2,
            next: 3
        }
    );
    assert!(
        error
            .to_string()
            .contains(".step(\"AddressChanged\", 2, ..)"),
        "{error}"
    );

    let duplicate = bound(
        Upcasters::new()
            .step("AddressChanged", 1, add_field("a"))
            .step("AddressChanged", 1, add_field("b"))
            .step("AddressChanged", 2, add_field("c")),
    );
    assert!(matches!(
        duplicate.check(),
        Err(RegistrationError::DuplicateStep { from: 1, .. })
    ));

    let beyond = bound(Upcasters::new().step("EmailChanged", 1, add_field("a")));
    assert!(matches!(
        beyond.check(),
        Err(RegistrationError::BeyondCurrent {
            from: 1,
            current: 1,
            ..
        })
    ));

    let unknown = bound(Upcasters::new().step("Nope", 1, add_field("a")));
    assert!(matches!(
        unknown.check(),
        Err(RegistrationError::UnknownType { .. })
    ));

    let rename_to_nothing = bound(Upcasters::new().rename("Old", "Missing"));
    assert!(matches!(
        rename_to_nothing.check(),
        Err(RegistrationError::BadRename { .. })
    ));

    let split_current =
        bound(Upcasters::new().split("EmailChanged", 1, |_| Ok::<_, &str>(Vec::new())));
    assert!(matches!(
        split_current.check(),
        Err(RegistrationError::SplitOfCurrent { .. })
    ));

    // Every event the registry concerns fails with the registration error, never decoded
    // as if it were current.
    let error = gap
        .upcast(&stored("AddressChanged", 1, json!({})))
        .unwrap_err();
    assert!(matches!(error.reason, UpcastFailure::Registration(_)));
}

#[test]
fn failures_name_the_event_its_type_and_versions() {
    let upcasters = bound(
        Upcasters::new()
            .step("AddressChanged", 1, |_: &mut Value| {
                Err("no city in the address")
            })
            .step("AddressChanged", 2, add_field("v3")),
    );
    let old = stored("AddressChanged", 1, json!({}));
    let error = upcasters.upcast(&old).unwrap_err();
    // `to` is the version this code reads (3), not the failed step's target (2).
    assert_eq!((error.from, error.to), (1, 3));
    assert_eq!(error.event_id, old.event_id);
    let chain = crate::telemetry::values::Chain(&error).to_string();
    assert!(chain.contains(&old.event_id.to_string()), "{chain}");
    assert!(
        chain.contains("`AddressChanged` from version 1 to 3"),
        "{chain}"
    );
    assert!(
        chain.contains("the upcaster of `AddressChanged` from version 1 failed"),
        "{chain}"
    );
    assert!(chain.ends_with("no city in the address"), "{chain}");

    let newer = upcasters
        .upcast(&stored("AddressChanged", 4, json!({})))
        .unwrap_err();
    assert!(matches!(
        newer.reason,
        UpcastFailure::Newer {
            stored: 4,
            current: 3,
            ..
        }
    ));

    let chain_starts_at_two = bound(Upcasters::new().step("AddressChanged", 2, add_field("v3")));
    let error = chain_starts_at_two
        .upcast(&stored("AddressChanged", 1, json!({})))
        .unwrap_err();
    assert!(matches!(
        error.reason,
        UpcastFailure::NoStep { from: 1, .. }
    ));
}

#[test]
fn registries_merge_once_each() {
    let one = bound(Upcasters::new().rename("CustomerMoved", "AddressChanged"));
    let merged = Upcasters::merge([&one, &one, Upcasters::none()]);
    merged.check().unwrap();
    assert!(merged.renames_or_splits("CustomerMoved"));
    let other = Upcasters::new()
        .rename("Relocated", "Moved")
        .for_event_types(&[("Moved", 1)]);
    let merged = Upcasters::merge([&one, &other]);
    merged.check().unwrap();
    assert!(merged.renames_or_splits("Relocated") && merged.renames_or_splits("CustomerMoved"));
    assert!(Upcasters::merge([Upcasters::none()]).is_empty());
}

#[derive(serde::Deserialize)]
struct AddressV1 {
    address: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct AddressV2 {
    street: String,
    city: String,
}

#[test]
fn a_typed_conversion_hands_over_the_event_it_made() {
    let upcasters = Upcasters::new()
        .convert("AddressChanged", 1, |old: AddressV1| {
            let (street, city) = old.address.split_once(", ").ok_or("no city")?;
            Ok::<_, &str>(AddressV2 {
                street: street.into(),
                city: city.into(),
            })
        })
        .step("AddressChanged", 2, add_field("v3"))
        .for_event_types(&[("AddressChanged", 3)]);
    upcasters.check().unwrap();
    let old = stored(
        "AddressChanged",
        1,
        json!({"address": "1 Main St, Springfield"}),
    );
    let upcast = upcasters.upcast(&old).unwrap();
    assert_eq!(
        upcast.events()[0].payload,
        json!({"street": "1 Main St", "city": "Springfield", "v3": true}),
        "a JSON step after a typed one sees its value written out"
    );

    let last = Upcasters::new()
        .convert("AddressChanged", 1, |old: AddressV1| {
            Ok::<_, &str>(AddressV2 {
                street: old.address,
                city: "?".into(),
            })
        })
        .for_event_types(&[("AddressChanged", 2)]);
    let upcast = last.upcast(&old).unwrap();
    let event = &upcast.events()[0];
    assert_eq!(
        event.payload,
        json!({"street": "1 Main St, Springfield", "city": "?"})
    );
    assert_eq!(
        event.payload.recorded::<AddressV2>(),
        Some(&AddressV2 {
            street: "1 Main St, Springfield".into(),
            city: "?".into()
        }),
        "the event made travels with its payload"
    );
    assert_eq!(event.payload.upcast_from(), Some(1));

    let unfit = stored("AddressChanged", 1, json!({"street": 3}));
    let error = last.upcast(&unfit).unwrap_err();
    assert!(matches!(error.reason, UpcastFailure::Json(_)), "{error:?}");
}
