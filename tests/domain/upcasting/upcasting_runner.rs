//! Schema evolution through the projection runner, on every store (the second half of
//! `upcasting.rs`, run by `tests/domain/upcasting.rs`): upcast events handed to a `#[projection]`
//! of the current types, and a failing upcaster stopped at or parked.

use std::sync::Arc;

use eventsource_runtime::event::{EventEnvelope, NewEvent, StreamId};
use eventsource_runtime::projection::runner::{ProjectionRunner, RunnerError, UnreadablePolicy};
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::{attribute, capture};
use opentelemetry::Value;
use serde_json::json;

use super::customer::*;
use super::upcasting::{Backend, assert_one_exception, customer, ints, names, write};
use eventsource_test_support::errors::chain;

// ---- the projection runner ----------------------------------------------------------------------

fn runner(b: &Backend, policy: UnreadablePolicy) -> ProjectionRunner<Directory> {
    ProjectionRunner::new(
        Arc::clone(&b.events),
        Arc::clone(&b.checkpoints),
        Directory::default(),
    )
    .batch_size(3)
    .on_unreadable(policy)
}

/// A `#[projection]` of the current types sees events written at version 1, renamed and
/// split, upcast; its spans say which.
pub async fn a_projection_sees_upcast_events(b: &Backend) {
    let capture = capture();
    let stored = write(
        b,
        customer("c-1"),
        vec![
            address_v1("1 Main St", "Paris"),
            contact_v1("ada@example.com", "+33 1 23"),
            relocated_v1("2 Elm St", "Springfield"),
            address_v3("3 Oak St", "Berlin", "DE"),
        ],
    )
    .await;
    write(
        b,
        StreamId::new("Gauge", "g-p"),
        vec![NewEvent::new("LevelSet", 1, json!({ "level": 1 }))],
    )
    .await;
    let runner = runner(b, UnreadablePolicy::Stop);
    let last = runner.run_until_caught_up().await.unwrap();
    assert_eq!(last, stored[3].position + 1, "the gauge's event too");
    {
        let seen = runner.projection().lock().await;
        let positions: Vec<u64> = stored.iter().map(|e| e.position).collect();
        assert_eq!(
            seen.addresses,
            [
                (positions[0], "1 Main St, Paris, FR".to_owned()),
                (positions[2], "2 Elm St, Springfield, US".to_owned()),
                (positions[3], "3 Oak St, Berlin, DE".to_owned()),
            ]
        );
        assert_eq!(
            seen.versions,
            [3, 3, 3],
            "handed over at the current version"
        );
        assert_eq!(seen.emails, ["ada@example.com"]);
        assert_eq!(seen.phones, ["+33 1 23"]);
    }
    assert_eq!(b.checkpoints.load("Directory").await.unwrap(), last);

    // The handled events' spans: four events upcast (the split's two), from version 1.
    let spans = capture.spans();
    let projection = spans.with_attribute(attr::PROJECTION_NAME, "Directory");
    assert!(!projection.is_empty(), "{}", spans.tree());
    let mut upcast = 0;
    for span in &projection {
        match attribute(span, attr::UPCAST_COUNT) {
            Some(Value::I64(n)) => {
                upcast += n;
                assert_eq!(
                    attribute(span, attr::UPCAST_FROM_VERSIONS),
                    Some(&ints(&[1]))
                );
            }
            None => assert_eq!(attribute(span, attr::UPCAST_FROM_VERSIONS), None),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(upcast, 4, "{}", spans.tree_with_attributes());
}

/// A projection whose own spans are off: the runner's reads say what it upcast.
pub async fn an_untraced_projections_reads_say_what_they_upcast(b: &Backend) {
    let capture = capture();
    write(
        b,
        customer("c-u"),
        vec![
            address_v1("1 Main St", "Paris"),
            contact_v1("ada@example.com", "+33 1 23"),
            relocated_v1("2 Elm St", "Springfield"),
            address_v3("3 Oak St", "Berlin", "DE"),
        ],
    )
    .await;
    let runner = ProjectionRunner::new(
        Arc::clone(&b.events),
        Arc::clone(&b.checkpoints),
        Addresses::default(),
    )
    .batch_size(3);
    runner.run_until_caught_up().await.unwrap();
    assert_eq!(runner.projection().lock().await.count, 3);

    let spans = capture.spans();
    assert!(
        spans
            .with_attribute(attr::PROJECTION_NAME, "Addresses")
            .is_empty(),
        "the projection's own spans are off"
    );
    // Three stored events are upcast (the split's one, before it is split), from version 1.
    let reads = spans.all(attr::SPAN_STORE_READ_ALL);
    let mut upcast = 0;
    for read in &reads {
        if let Some(Value::I64(n)) = attribute(read, attr::UPCAST_COUNT) {
            upcast += n;
            assert_eq!(
                attribute(read, attr::UPCAST_FROM_VERSIONS),
                Some(&ints(&[1]))
            );
        }
    }
    assert_eq!(upcast, 3, "{}", spans.tree_with_attributes());
}

/// The events of a test of the unreadable policy: the second cannot be upcast.
async fn with_atlantis(b: &Backend) -> Vec<EventEnvelope> {
    write(
        b,
        customer("c-2"),
        vec![
            address_v1("1 Main St", "Paris"),
            address_v1("1 Sunken Way", "Atlantis"),
            address_v3("3 Oak St", "Berlin", "DE"),
        ],
    )
    .await
}

/// A failing upcaster with `UnreadablePolicy::Stop`: a typed stop, the checkpoint just
/// before the event, and a stop span with status ERROR naming the event.
pub async fn a_failing_upcaster_stops_the_runner(b: &Backend) {
    let capture = capture();
    let stored = with_atlantis(b).await;
    let runner = runner(b, UnreadablePolicy::Stop);
    let error = runner.run_until_caught_up().await.unwrap_err();
    let spans = capture.spans();
    let stop = spans.get(attr::SPAN_PROJECTION_STOP);
    assert_one_exception(
        stop,
        "RunnerError::UpcastFailed",
        &[&names(&stored[1], 1, 3), "no country known for Atlantis"],
    );
    assert_eq!(
        attribute(stop, attr::EVENT_POSITION),
        Some(&Value::I64(i64::try_from(stored[1].position).unwrap()))
    );
    assert_eq!(
        attribute(stop, attr::EVENT_TYPE),
        Some(&Value::String("AddressChanged".into()))
    );
    let RunnerError::UpcastFailed {
        projection,
        position,
        source,
    } = &error
    else {
        panic!("expected UpcastFailed, got {error:?}");
    };
    assert_eq!(
        (projection.as_str(), *position),
        ("Directory", stored[1].position)
    );
    assert_eq!(
        (
            source.event_id,
            source.event_type.as_str(),
            source.from,
            source.to
        ),
        (stored[1].event_id, "AddressChanged", 1, 3)
    );
    assert!(
        chain(&error).contains("no country known for Atlantis"),
        "{}",
        chain(&error)
    );
    assert_eq!(
        b.checkpoints.load("Directory").await.unwrap(),
        stored[0].position
    );
    assert_eq!(runner.projection().lock().await.addresses.len(), 1);
    assert!(runner.parked().await.unwrap().is_empty());
    // The next run stops there again: nothing is skipped.
    assert!(matches!(
        runner.run_until_caught_up().await,
        Err(RunnerError::UpcastFailed { position, .. }) if position == stored[1].position
    ));
}

/// A failing upcaster with `UnreadablePolicy::Park`: the event is parked with the reason,
/// the runner goes on, the park span is ERROR with one exception naming the event.
pub async fn a_failing_upcaster_is_parked(b: &Backend) {
    let capture = capture();
    let stored = with_atlantis(b).await;
    let runner = runner(b, UnreadablePolicy::Park);
    assert_eq!(
        runner.run_until_caught_up().await.unwrap(),
        stored[2].position
    );
    let positions: Vec<u64> = runner
        .projection()
        .lock()
        .await
        .addresses
        .iter()
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(positions, [stored[0].position, stored[2].position]);
    let parked = runner.parked().await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].position, stored[1].position);
    let named = names(&stored[1], 1, 3);
    assert!(parked[0].error.contains(&named), "{}", parked[0].error);
    assert!(
        parked[0].error.contains("no country known for Atlantis"),
        "{}",
        parked[0].error
    );
    assert_eq!(
        b.checkpoints.load("Directory").await.unwrap(),
        stored[2].position
    );

    let spans = capture.spans();
    let park = spans.get(attr::SPAN_PROJECTION_PARK);
    assert_one_exception(park, "UpcastError", &[&named]);
    assert_eq!(
        attribute(park, attr::EVENT_POSITION),
        Some(&Value::I64(i64::try_from(stored[1].position).unwrap()))
    );
}
