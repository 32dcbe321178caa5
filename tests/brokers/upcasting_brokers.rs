//! Schema evolution across a broker: a consumer built with the v2 types handles the v1
//! messages an older producer published (upcast before its handler sees them, the consume
//! span says so), and a message its upcaster cannot bring up to date is retried then
//! dead-lettered, never dropped, its failure an ERROR span with one exception naming the
//! event. On RabbitMQ, NATS JetStream and (with the `kafka` feature) Kafka.
//!
//! The brokers come from `EVENTSOURCE_AMQP_URL`, `EVENTSOURCE_NATS_URL` and
//! `EVENTSOURCE_KAFKA_BROKERS`; without one, its test prints `skipped: ... not set` and
//! passes, unless `EVENTSOURCE_REQUIRE_RABBITMQ=1` / `EVENTSOURCE_REQUIRE_NATS=1` /
//! `EVENTSOURCE_REQUIRE_KAFKA=1`. Every test works on destinations of its own.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventsource_runtime::bus::{DeadLetterEntry, EventHandler, HandlerError, handler_fn};
use eventsource_runtime::event::upcast::Upcasters;
use eventsource_runtime::event::{EventEnvelope, Metadata, StreamId};
use eventsource_runtime::prelude::*;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::{CapturedSpans, SpanData, Status, attribute, events};
use opentelemetry::{Array, Value};
use serde::{Deserialize, Serialize};
use serde_json::json;

// ---- the consumer's types: version 2 ---------------------------------------------------------

/// Version 2; version 1 was `{"celsius": n}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetSet {
    pub millicelsius: i64,
}

fn thermostat_upcasters() -> Upcasters {
    Upcasters::new().step("TargetSet", 1, |payload: &mut serde_json::Value| {
        let celsius = payload["celsius"]
            .as_i64()
            .ok_or_else(|| format!("celsius is not a number: {}", payload["celsius"]))?;
        *payload = json!({ "millicelsius": celsius * 1000 });
        Ok::<_, String>(())
    })
}

#[derive(Debug, Default, Aggregate)]
#[allow(
    dead_code,
    reason = "declares the event enum; the consumers here decode events, never load one"
)]
#[aggregate(
    type = "Thermostat",
    events(TargetSet(version = 2)),
    upcasters = thermostat_upcasters
)]
pub struct Thermostat {
    pub millicelsius: i64,
}

impl Apply<TargetSet> for Thermostat {
    fn apply(&mut self, e: &TargetSet) {
        self.millicelsius = e.millicelsius;
    }
}

const HANDLER: &str = "thermostat-v2";

/// What the handler saw: the message id, the schema version it was handed, the event.
type Seen = Arc<Mutex<Vec<(uuid::Uuid, u32, ThermostatEvent)>>>;

/// The v2 consumer's handler: decodes the v2 types, upcast by the set's upcasters.
fn v2_handler(seen: &Seen) -> impl EventHandler {
    let seen = Arc::clone(seen);
    handler_fn(HANDLER, move |event: EventEnvelope| {
        let seen = Arc::clone(&seen);
        async move {
            let decoded: ThermostatEvent = event.decode()?;
            seen.lock()
                .unwrap()
                .push((event.event_id, event.schema_version, decoded));
            Ok::<(), HandlerError>(())
        }
    })
    .upcasting(ThermostatEvent::upcasters())
}

/// A `TargetSet` as the older producer published it: schema version 1.
fn v1_message(id: &str, celsius: serde_json::Value) -> EventEnvelope {
    EventEnvelope {
        event_id: uuid::Uuid::now_v7(),
        stream: StreamId::new("Thermostat", id),
        version: 1,
        position: 1,
        event_type: "TargetSet".into(),
        schema_version: 1,
        timestamp: chrono::Utc::now(),
        payload: json!({ "celsius": celsius }).into(),
        metadata: Metadata::new(),
    }
}

/// The older producer's two messages: one the consumer can upcast, one it cannot.
fn published() -> (EventEnvelope, EventEnvelope) {
    (
        v1_message("t-1", json!(21)),
        v1_message("t-2", json!("warm")),
    )
}

/// What the failure says of the message: its id, type and both versions.
fn names(event: &EventEnvelope) -> String {
    format!(
        "cannot upcast event {} `TargetSet` from version 1 to 2",
        event.event_id
    )
}

/// Waits (up to `secs`) until `done` holds.
async fn until(what: &str, secs: u64, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..secs * 20 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

fn by_message<'a>(spans: &'a CapturedSpans, name: &str, id: uuid::Uuid) -> Vec<&'a SpanData> {
    let id = id.to_string();
    spans
        .all(name)
        .into_iter()
        .filter(|s| {
            attribute(s, attr::MESSAGING_MESSAGE_ID) == Some(&Value::String(id.clone().into()))
        })
        .collect()
}

/// The handler saw the good message upcast, never the bad one; the good one's consume
/// span says it was upcast from version 1; the bad one was delivered `attempts` times,
/// each consume span ERROR, each failure one exception naming the event, and it is the
/// one dead letter.
fn check(
    spans: &CapturedSpans,
    seen: &Seen,
    (good, bad): &(EventEnvelope, EventEnvelope),
    letters: &[DeadLetterEntry],
    attempts: u32,
) {
    assert_eq!(
        *seen.lock().unwrap(),
        [(
            good.event_id,
            2,
            ThermostatEvent::TargetSet(TargetSet {
                millicelsius: 21_000
            })
        )],
        "the v1 message, upcast; never the one that cannot be"
    );

    let consumed = by_message(spans, attr::SPAN_BUS_CONSUME, good.event_id);
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

    let failed = by_message(spans, attr::SPAN_BUS_CONSUME, bad.event_id);
    assert_eq!(failed.len(), attempts as usize, "{}", spans.tree());
    for consume in &failed {
        assert!(
            matches!(&consume.status, Status::Error { description } if description.contains(&names(bad))),
            "{:?}",
            consume.status
        );
    }
    // Each failure is reported once: one exception event per delivery, naming the event.
    let mut exceptions = Vec::new();
    for span in spans.matching(|s| {
        by_message(spans, &s.name, bad.event_id)
            .iter()
            .any(|m| m.span_context == s.span_context)
    }) {
        exceptions.extend(events(span, attr::SPAN_EVENT_EXCEPTION));
    }
    assert_eq!(
        exceptions.len(),
        attempts as usize,
        "one exception per failed delivery: {}",
        spans.tree_with_attributes()
    );
    for exception in exceptions {
        let message = exception
            .iter()
            .find(|kv| kv.key.as_str() == attr::EXCEPTION_MESSAGE)
            .map(|kv| kv.value.as_str().into_owned())
            .unwrap_or_default();
        assert!(message.contains(&names(bad)), "{message}");
        assert!(message.contains("celsius is not a number"), "{message}");
    }

    let [letter] = letters else {
        panic!("one dead letter: {letters:?}");
    };
    let letter = letter.as_failed().expect("a failed letter");
    assert_eq!(letter.message.message_id, bad.event_id);
    assert_eq!(letter.message.event.schema_version, 1, "kept as published");
    assert_eq!(letter.handler, HANDLER);
    assert_eq!(letter.attempts, attempts);
    assert!(letter.error.contains(&names(bad)), "{}", letter.error);
}

#[path = "upcasting_brokers/rabbitmq.rs"]
mod rabbitmq;

#[path = "upcasting_brokers/nats.rs"]
mod nats;

#[cfg(feature = "kafka")]
#[path = "upcasting_brokers/kafka.rs"]
mod kafka;
