//! Schema evolution on every store: events written by older code (raw `NewEvent`s at old
//! schema versions, old names, types since split) read by code at the newest versions, the
//! same whatever the store (`tests/domain/upcasting.rs` runs each case on the in-memory, SQLite
//! and PostgreSQL stores).
//!
//! Repository loads (state, stream versions, a save after the load, the load span's
//! `eventsource.upcast.*` attributes, the `eventsource.events.upcast` counter), failures
//! (a failing upcaster, a registry with a gap, a stored version newer than the code's: a
//! typed error, an ERROR span with one exception naming the event), and the projection
//! runner (upcast events handed over; a failing upcaster stops the runner or is parked).
//!
//! The projection runner's cases are in `upcasting_runner.rs`. Uses the domain of `customer.rs` (as `super::customer`).

use std::sync::{Arc, LazyLock};

use eventsource_runtime::event::upcast::{RegistrationError, UpcastError, UpcastFailure};
use eventsource_runtime::event::{DecodeError, EventEnvelope, NewEvent, StreamId};
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::CheckpointStore;
use eventsource_runtime::store::{EventStore, ExpectedVersion};
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::{
    CapturedSpans, MetricCapture, SpanData, Status, attribute, capture, capture_metrics, events,
};
use eventsource_test_support::errors::chain;
use opentelemetry::{Array, Value};
use serde_json::json;

use super::customer::*;

/// The stores a case runs on: events, and checkpoints on the same database.
pub struct Backend {
    pub events: Arc<dyn EventStore>,
    pub checkpoints: Arc<dyn CheckpointStore>,
}

// ---- helpers ----------------------------------------------------------------------------------

/// Appends `events` to `Customer`/`id` (or another type's stream) as older code did; returns
/// them as stored.
pub async fn write(b: &Backend, stream: StreamId, events: Vec<NewEvent>) -> Vec<EventEnvelope> {
    b.events
        .append(&stream, ExpectedVersion::Any, events)
        .await
        .unwrap()
        .events
}

pub fn customer(id: &str) -> StreamId {
    StreamId::new("Customer", id)
}

/// A repository of its own (its cache starts empty: every load reads the stream).
fn repository<A: Aggregate>(b: &Backend) -> Repository<A> {
    Repository::from_arc(Arc::clone(&b.events))
}

/// The load span of aggregate `id`.
fn load_span<'a>(spans: &'a CapturedSpans, id: &str) -> &'a SpanData {
    spans.get_with(attr::SPAN_REPOSITORY_LOAD, attr::AGGREGATE_ID, id)
}

pub fn ints(values: &[i64]) -> Value {
    Value::Array(Array::I64(values.to_vec()))
}

/// Asserts that `span` says `count` events were upcast, from `from` (or says nothing of
/// upcasting when `count` is 0).
#[track_caller]
fn assert_upcasts(span: &SpanData, count: i64, from: &[i64]) {
    if count == 0 {
        assert_eq!(attribute(span, attr::UPCAST_COUNT), None, "{span:?}");
        assert_eq!(
            attribute(span, attr::UPCAST_FROM_VERSIONS),
            None,
            "{span:?}"
        );
    } else {
        assert_eq!(
            attribute(span, attr::UPCAST_COUNT),
            Some(&Value::I64(count)),
            "{span:?}"
        );
        assert_eq!(
            attribute(span, attr::UPCAST_FROM_VERSIONS),
            Some(&ints(from))
        );
    }
}

/// Asserts that `span` ended in ERROR with exactly one exception event, whose message
/// contains every one of `parts`.
#[track_caller]
pub fn assert_one_exception(span: &SpanData, error_type: &str, parts: &[&str]) {
    assert!(
        matches!(span.status, Status::Error { .. }),
        "{}: {:?}",
        span.name,
        span.status
    );
    let exceptions = events(span, attr::SPAN_EVENT_EXCEPTION);
    let [exception] = exceptions.as_slice() else {
        panic!("{}: {} exception events", span.name, exceptions.len());
    };
    let field = |key: &str| {
        exception
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.as_str().into_owned())
            .unwrap_or_default()
    };
    assert_eq!(field(attr::EXCEPTION_TYPE), error_type);
    let message = field(attr::EXCEPTION_MESSAGE);
    for part in parts {
        assert!(message.contains(part), "{part:?} not in {message:?}");
    }
}

/// The upcast error a failed load carries, checked to name the stream's event `version`.
#[track_caller]
fn upcast_error<'a>(error: &'a RepositoryError, stream: &StreamId, at: u64) -> &'a UpcastError {
    match error {
        RepositoryError::Decode {
            stream: s,
            version,
            source: DecodeError::Upcast(upcast),
        } if s == stream && *version == at => upcast,
        other => panic!("expected an upcast error at {stream} v{at}, got {other:?}"),
    }
}

/// What `UpcastError`'s message says of the stored event.
pub fn names(event: &EventEnvelope, from: u32, to: u32) -> String {
    format!(
        "cannot upcast event {} `{}` from version {from} to {to}",
        event.event_id, event.event_type
    )
}

// ---- repository loads ---------------------------------------------------------------------------

/// Version 1 events, read by code at version 3 through two upcasters; a load of current
/// events only says nothing of upcasting.
pub async fn v1_events_load_through_two_steps(b: &Backend) {
    let capture = capture();
    write(
        b,
        customer("c-old"),
        vec![
            address_v1("1 Main St", "Paris"),
            address_v1("2 Elm St", "Springfield"),
        ],
    )
    .await;
    write(
        b,
        customer("c-new"),
        vec![address_v3("3 Oak St", "Berlin", "DE")],
    )
    .await;

    let old = repository::<Customer>(b).load("c-old").await.unwrap();
    assert_eq!(old.version(), 2);
    assert_eq!(
        old.state().addresses,
        ["1 Main St, Paris, FR", "2 Elm St, Springfield, US"]
    );
    let new = repository::<Customer>(b).load("c-new").await.unwrap();
    assert_eq!(new.state().addresses, ["3 Oak St, Berlin, DE"]);

    let spans = capture.spans();
    let span = load_span(&spans, "c-old");
    spans.assert_ok(span);
    assert_upcasts(span, 2, &[1]);
    assert_upcasts(load_span(&spans, "c-new"), 0, &[]);
}

/// Versions 1, 2 and 3 interleaved in one stream.
pub async fn mixed_versions_in_one_stream(b: &Backend) {
    let capture = capture();
    write(
        b,
        customer("c-mixed"),
        vec![
            address_v1("1 Main St", "Paris"),
            address_v3("2 Elm St", "Springfield", "US"),
            address_v2("3 Oak St", "Berlin"),
            address_v1("4 Quai", "Paris"),
            address_v3("5 Unter den Linden", "Berlin", "DE"),
        ],
    )
    .await;
    let root = repository::<Customer>(b).load("c-mixed").await.unwrap();
    assert_eq!(root.version(), 5);
    assert_eq!(
        root.state().addresses,
        [
            "1 Main St, Paris, FR",
            "2 Elm St, Springfield, US",
            "3 Oak St, Berlin, DE",
            "4 Quai, Paris, FR",
            "5 Unter den Linden, Berlin, DE",
        ]
    );
    assert_upcasts(load_span(&capture.spans(), "c-mixed"), 3, &[1, 2]);
}

/// A type stored under its old name and one since split, in one stream: the stream's
/// versions stay the stored ones, so a save after the load appends after them.
pub async fn renamed_and_split_types_keep_stream_versions(b: &Backend) {
    let capture = capture();
    let stored = write(
        b,
        customer("c-renamed"),
        vec![
            relocated_v1("9 Rue Royale", "Paris"),
            contact_v1("ada@example.com", "+33 1 23"),
            address_v2("1 Main St", "Springfield"),
        ],
    )
    .await;
    // Read alone, the split event is two events, the first keeping the stored id.
    let parts = stored[1].decode_all::<CustomerEvent>().unwrap();
    assert_eq!(
        parts,
        [
            CustomerEvent::EmailChanged(EmailChanged {
                email: "ada@example.com".into()
            }),
            CustomerEvent::PhoneChanged(PhoneChanged {
                phone: "+33 1 23".into()
            }),
        ]
    );

    let repository = repository::<Customer>(b);
    let mut root = repository.load("c-renamed").await.unwrap();
    assert_eq!(root.version(), 3, "three stored events, four applied");
    let state = root.state();
    assert_eq!(
        state.addresses,
        ["9 Rue Royale, Paris, FR", "1 Main St, Springfield, US"]
    );
    assert_eq!(state.email.as_deref(), Some("ada@example.com"));
    assert_eq!(state.phone.as_deref(), Some("+33 1 23"));
    assert_upcasts(load_span(&capture.spans(), "c-renamed"), 3, &[1, 2]);

    root.record(EmailChanged {
        email: "ada@new.example".into(),
    });
    let saved = repository
        .save(&mut root)
        .await
        .expect("no version conflict");
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].version, 4);

    let reread = self::repository::<Customer>(b)
        .load("c-renamed")
        .await
        .unwrap();
    assert_eq!(reread.version(), 4);
    assert_eq!(reread.state().email.as_deref(), Some("ada@new.example"));
    assert_eq!(reread.state().addresses.len(), 2);
    let raw = b.events.load(&customer("c-renamed"), 1).await.unwrap();
    let raw: Vec<(u64, &str, u32)> = raw
        .iter()
        .map(|e| (e.version, e.event_type.as_ref(), e.schema_version))
        .collect();
    assert_eq!(
        raw,
        [
            (1, "CustomerRelocated", 1),
            (2, "ContactChanged", 1),
            (3, "AddressChanged", 2),
            (4, "EmailChanged", 1),
        ],
        "stored events are never rewritten"
    );
}

/// The binary's metric capture (metrics are process-global).
static METRICS: LazyLock<MetricCapture> = LazyLock::new(capture_metrics);
/// One counter check at a time: the counter has no attribute telling stores apart.
static COUNTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `eventsource.events.upcast` by event type and from/to version (the gauge's events, read
/// by no other test).
pub async fn upcasts_are_counted_by_type_and_versions(b: &Backend) {
    let metrics = &*METRICS;
    let _one_at_a_time = COUNTER.lock().await;
    let total = |event_type: &str, from: &str, to: &str| {
        metrics.total(
            attr::METRIC_EVENTS_UPCAST,
            &[
                (attr::METRIC_ATTR_EVENT_TYPE, event_type),
                (attr::METRIC_ATTR_UPCAST_FROM, from),
                (attr::METRIC_ATTR_UPCAST_TO, to),
            ],
        )
    };
    let before = [
        total("LevelSet", "1", "2"),
        total("LevelRecorded", "1", "2"),
        metrics.total(
            attr::METRIC_EVENTS_UPCAST,
            &[(attr::METRIC_ATTR_EVENT_TYPE, "LevelSet")],
        ),
    ];
    write(
        b,
        StreamId::new("Gauge", "g-1"),
        vec![
            NewEvent::new("LevelSet", 1, json!({ "level": 1 })),
            NewEvent::new("LevelSet", 1, json!({ "level": 2 })),
            NewEvent::new("LevelRecorded", 1, json!({ "level": 3 })),
            NewEvent::new("LevelSet", 2, json!({ "value": 4 })),
        ],
    )
    .await;
    let root = repository::<Gauge>(b).load("g-1").await.unwrap();
    assert_eq!(root.state().values, [1, 2, 3, 4]);
    let after = [
        total("LevelSet", "1", "2"),
        total("LevelRecorded", "1", "2"),
        metrics.total(
            attr::METRIC_EVENTS_UPCAST,
            &[(attr::METRIC_ATTR_EVENT_TYPE, "LevelSet")],
        ),
    ];
    assert_eq!(after[0] - before[0], 2, "two LevelSet from 1 to 2");
    assert_eq!(after[1] - before[1], 1, "one under its old name");
    assert_eq!(after[2] - before[2], 2, "the current one is not counted");
    let keys = metrics.attribute_keys(attr::METRIC_EVENTS_UPCAST);
    for key in [
        attr::METRIC_ATTR_EVENT_TYPE,
        attr::METRIC_ATTR_UPCAST_FROM,
        attr::METRIC_ATTR_UPCAST_TO,
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} in {keys:?}");
    }
}

// ---- failures -----------------------------------------------------------------------------------

/// An upcaster that fails: the load fails with the typed error naming the event, its type
/// and both versions, and its span ends in ERROR with one exception saying so.
pub async fn a_failing_upcaster_fails_the_load(b: &Backend) {
    let capture = capture();
    let stream = customer("c-atlantis");
    let stored = write(
        b,
        stream.clone(),
        vec![
            address_v1("1 Main St", "Paris"),
            address_v1("1 Sunken Way", "Atlantis"),
        ],
    )
    .await;
    let error = repository::<Customer>(b)
        .load("c-atlantis")
        .await
        .unwrap_err();
    let upcast = upcast_error(&error, &stream, 2);
    assert_eq!(
        (
            upcast.event_id,
            upcast.event_type.as_str(),
            upcast.from,
            upcast.to
        ),
        (stored[1].event_id, "AddressChanged", 1, 3)
    );
    assert!(
        matches!(&upcast.reason, UpcastFailure::Step { from: 2, .. }),
        "{:?}",
        upcast.reason
    );
    let text = chain(&error);
    assert!(text.contains(&names(&stored[1], 1, 3)), "{text}");
    assert!(text.contains("no country known for Atlantis"), "{text}");

    let spans = capture.spans();
    assert_one_exception(
        load_span(&spans, "c-atlantis"),
        "RepositoryError",
        &[&names(&stored[1], 1, 3), "no country known for Atlantis"],
    );
}

/// A registry with a gap: `check` says so with the fix, and every load of an event that
/// needs it fails with it (a current event still loads).
pub async fn a_registration_error_fails_every_load_that_needs_it(b: &Backend) {
    let problem = LedgerEvent::upcasters().check().unwrap_err();
    assert_eq!(
        problem,
        RegistrationError::Gap {
            event_type: "Credited".into(),
            missing: 2,
            next: 3
        }
    );
    assert!(
        problem
            .to_string()
            .contains(r#"register `.step("Credited", 2, ..)` to go from 2 to 3"#),
        "{problem}"
    );
    let ledger = |id: &str| StreamId::new("Ledger", id);
    write(
        b,
        ledger("l-3"),
        vec![NewEvent::new("Credited", 3, json!({ "cents": 5 }))],
    )
    .await;
    let current = repository::<Ledger>(b).load("l-3").await.unwrap();
    assert_eq!(current.state().cents, 5);
    for (id, version, payload) in [
        ("l-1", 1, json!({ "euros": 1 })),
        ("l-2", 2, json!({ "cents": 100 })),
    ] {
        let stored = write(
            b,
            ledger(id),
            vec![NewEvent::new("Credited", version, payload)],
        )
        .await;
        let error = repository::<Ledger>(b).load(id).await.unwrap_err();
        let upcast = upcast_error(&error, &ledger(id), 1);
        assert_eq!(
            (upcast.event_id, upcast.from, upcast.to),
            (stored[0].event_id, version, 3)
        );
        assert!(
            matches!(&upcast.reason, UpcastFailure::Registration(p) if *p == problem),
            "{:?}",
            upcast.reason
        );
        assert!(
            chain(&error).contains("skip version 2"),
            "{}",
            chain(&error)
        );
    }
}

/// A stored version newer than the code's (v4 stored, code at v3; v2 of a type at v1): a
/// typed error saying so, never a decode of what this code does not know.
pub async fn a_newer_stored_version_is_a_typed_error(b: &Backend) {
    for (id, event, current) in [
        (
            "c-future",
            NewEvent::new(
                "AddressChanged",
                4,
                json!({ "street": "1 Main St", "city": "Paris", "country": "FR", "zip": "75001" }),
            ),
            3,
        ),
        (
            "c-future-email",
            NewEvent::new("EmailChanged", 2, json!({ "email": "ada@example.com" })),
            1,
        ),
    ] {
        let stream = customer(id);
        let stored = write(
            b,
            stream.clone(),
            vec![address_v3("a", "Paris", "FR"), event],
        )
        .await;
        let error = repository::<Customer>(b).load(id).await.unwrap_err();
        let upcast = upcast_error(&error, &stream, 2);
        assert_eq!(
            (upcast.event_id, upcast.from, upcast.to),
            (stored[1].event_id, stored[1].schema_version, current)
        );
        assert!(
            matches!(&upcast.reason, UpcastFailure::Newer { stored: s, current: c, .. }
                if *s == stored[1].schema_version && *c == current),
            "{:?}",
            upcast.reason
        );
        let text = chain(&error);
        assert!(
            text.contains(&format!("is newer than this code's version {current}")),
            "{text}"
        );
    }
}

// The projection runner's cases: `upcasting_runner.rs`.
