//! Schema evolution across the broker: a consumer built for version 2 of an event handles
//! the version 1 messages an older producer published (upcast before its handler sees them,
//! the consume span says so), and a message its upcaster cannot bring up to date is retried
//! then dead-lettered, never dropped, each failure an ERROR span with one exception naming
//! the event.

use crate::bus::DeadLetterQueue as _;
use crate::bus::RunnableGroup as _;
use crate::bus::Subscribe as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::Array;
use serde::Deserialize;
use uuid::Uuid;

use super::{BrokerFixture, Running, dead_letters_reach, until};
use crate::bus::{EventBus as _, HandlerError, handler_fn};
use crate::event::upcast::Upcasters;
use crate::event::{EventEnvelope, Metadata, StreamId};
use crate::telemetry::attributes as attr;
use crate::testing::{CapturedSpans, SpanData, Status, Value, attribute, capture, events};

/// The event whose schema changed: version 1 was `{"total": euros}`, version 2 is
/// [`PricedV2`].
const PRICED: &str = "Priced";

/// The v2 consumer's handler.
const HANDLER: &str = "pricing-v2";

/// What the v2 consumer reads.
#[derive(Debug, PartialEq, Deserialize)]
struct PricedV2 {
    total_cents: i64,
}

/// The upcasters the v2 consumer ships, as an event set at version 2 registers them:
/// version 1 to 2, failing on a total that is not a number.
fn upcasters() -> Upcasters {
    Upcasters::new()
        .step(PRICED, 1, |payload: &mut serde_json::Value| {
            let euros = payload["total"]
                .as_i64()
                .ok_or_else(|| format!("total is not a number: {}", payload["total"]))?;
            *payload = serde_json::json!({ "total_cents": euros * 100 });
            Ok::<_, String>(())
        })
        .for_event_types(&[(PRICED, 2)])
}

/// A `Priced` event of order `aggregate_id` as the older producer published it: version 1.
fn v1_message(aggregate_id: &str, total: serde_json::Value) -> EventEnvelope {
    EventEnvelope {
        event_id: Uuid::now_v7(),
        stream: StreamId::new("Order", aggregate_id),
        version: 1,
        position: 1,
        event_type: PRICED.into(),
        schema_version: 1,
        timestamp: chrono::Utc::now(),
        payload: serde_json::json!({ "total": total }).into(),
        metadata: Metadata::new(),
    }
}

/// What a failure to upcast `event` says of it: its id, type and both versions.
fn cannot_upcast(event: &EventEnvelope) -> String {
    format!(
        "cannot upcast event {} `{PRICED}` from version 1 to 2",
        event.event_id
    )
}

/// The spans named `name` of the message `id`.
fn of_message<'a>(spans: &'a CapturedSpans, name: &str, id: Uuid) -> Vec<&'a SpanData> {
    spans
        .all(name)
        .into_iter()
        .filter(|span| is_of_message(span, id))
        .collect()
}

fn is_of_message(span: &SpanData, id: Uuid) -> bool {
    attribute(span, attr::MESSAGING_MESSAGE_ID) == Some(&Value::String(id.to_string().into()))
}

/// A consumer whose handler upcasts (version 1 to 2) gets the version 1 message it can
/// bring up to date as version 2, its consume span counting one upcast from version 1; the
/// message it cannot upcast never reaches the handler: each of its two deliveries is an
/// ERROR consume span with one exception naming the event and the upcaster's error, and it
/// is the group's one dead letter, kept at version 1, naming the handler and the failure.
pub async fn a_v2_consumer_handles_v1_messages_and_dead_letters_what_it_cannot_upcast<
    F: BrokerFixture,
>(
    fixture: &F,
) {
    let capture = capture();
    let bus = fixture.bus();
    // Two deliveries in all.
    let group = fixture.group(&bus, "pricing", &[Duration::from_millis(50)]);
    let seen: Arc<Mutex<Vec<(Uuid, u32, PricedV2)>>> = Arc::default();
    {
        let seen = Arc::clone(&seen);
        let handler = handler_fn(HANDLER, move |event: EventEnvelope| {
            let seen = Arc::clone(&seen);
            async move {
                let priced: PricedV2 = event
                    .payload
                    .decode()
                    .map_err(|error| HandlerError::new(error.to_string()))?;
                seen.lock().expect("what the handler saw").push((
                    event.event_id,
                    event.schema_version,
                    priced,
                ));
                Ok::<(), HandlerError>(())
            }
        });
        group
            .dispatcher()
            .subscribe(handler.upcasting(&upcasters()));
    }
    let running = Running::start(&group).await;

    let good = v1_message("o-1", serde_json::json!(21));
    let bad = v1_message("o-2", serde_json::json!("a lot"));
    bus.publish(&[good.clone(), bad.clone()])
        .await
        .expect("published");
    until(fixture, "the v1 message is handled", || {
        !seen.lock().expect("what the handler saw").is_empty()
    })
    .await;
    dead_letters_reach(fixture, &group, 1).await;
    running.stop().await;

    assert_eq!(
        *seen.lock().expect("what the handler saw"),
        [(good.event_id, 2, PricedV2 { total_cents: 2100 })],
        "the v1 message, upcast; never the one that cannot be"
    );

    let spans = capture.spans();
    let consumed = of_message(&spans, attr::SPAN_BUS_CONSUME, good.event_id);
    let [consume] = consumed.as_slice() else {
        panic!("one consume span: {}", spans.tree());
    };
    spans.assert_ok(consume);
    assert_eq!(
        attribute(consume, attr::UPCAST_COUNT),
        Some(&Value::I64(1)),
        "{}",
        spans.tree_with_attributes()
    );
    assert_eq!(
        attribute(consume, attr::UPCAST_FROM_VERSIONS),
        Some(&Value::Array(Array::I64(vec![1])))
    );

    let failed = of_message(&spans, attr::SPAN_BUS_CONSUME, bad.event_id);
    assert_eq!(failed.len(), 2, "{}", spans.tree());
    for consume in &failed {
        assert!(
            matches!(&consume.status, Status::Error { description } if description.contains(&cannot_upcast(&bad))),
            "{:?}",
            consume.status
        );
    }
    // Each failure is reported once: one exception per delivery, on any of its spans.
    let exceptions: Vec<_> = spans
        .matching(|span| is_of_message(span, bad.event_id))
        .into_iter()
        .flat_map(|span| events(span, attr::SPAN_EVENT_EXCEPTION))
        .collect();
    assert_eq!(
        exceptions.len(),
        2,
        "one exception per failed delivery: {}",
        spans.tree_with_attributes()
    );
    for exception in exceptions {
        let message = exception
            .iter()
            .find(|kv| kv.key.as_str() == attr::EXCEPTION_MESSAGE)
            .map(|kv| kv.value.as_str().into_owned())
            .unwrap_or_default();
        assert!(message.contains(&cannot_upcast(&bad)), "{message}");
        assert!(message.contains("total is not a number"), "{message}");
    }

    let letters = group.dead_letters().list(10).await.expect("listed");
    let [letter] = letters.as_slice() else {
        panic!("one dead letter: {letters:?}");
    };
    let letter = letter.as_failed().expect("a failed letter");
    assert_eq!(letter.message.message_id, bad.event_id);
    assert_eq!(letter.message.event.schema_version, 1, "kept as published");
    assert_eq!(letter.handler, HANDLER);
    assert_eq!(letter.attempts, 2);
    assert!(
        letter.error.contains(&cannot_upcast(&bad)),
        "{}",
        letter.error
    );
}
