//! The trace across the broker: from the publisher's span to each group's handlers, one
//! trace; a context that cannot be read starts a new one; the relay continues the trace
//! stored with each event.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use opentelemetry::trace::{SpanId, SpanKind};
use tracing::Instrument as _;

use super::{
    BrokerFixture, Mailer, RawMessage, Running, counting, event_type, order_message, stored_event,
    until,
};
use crate::bus::{EventBus as _, wire};
use crate::event::{EventEnvelope, NewEvent, StreamId};
use crate::projection::checkpoint::InMemoryCheckpointStore;
use crate::relay::Relay;
use crate::store::{EventStore, ExpectedVersion, InMemoryEventStore};
use crate::telemetry::attributes as attr;
use crate::telemetry::propagation;
use crate::testing::{CapturedSpans, MetricCapture, Value, attribute, capture, kind};

/// The name of the span the scenarios publish under (standing for a command's).
pub const PARENT: &str = "conformance.command";

/// What [`one_trace`] saw, for the adapter's test to check its own attributes on.
#[derive(Debug)]
#[non_exhaustive]
pub struct OneTrace<G> {
    /// Every span of the scenario.
    pub spans: CapturedSpans,
    /// The event published.
    pub event: EventEnvelope,
    /// The group that handled it.
    pub group: G,
}

/// A message published under a span reaches a group's handler as one trace: publish (a
/// producer span, child of the publisher's), consume (a consumer span, child of publish),
/// handle (child of consume), with the messaging conventions both sides share; the bus
/// metrics count it once each way.
pub async fn one_trace<F: BrokerFixture>(
    fixture: &F,
    metrics: &MetricCapture,
) -> OneTrace<F::Group> {
    let capture = capture();
    let (bus, mailer) = Mailer::start(fixture).await;

    let event_type = event_type();
    let event = stored_event("o-1", &event_type);
    let report = bus
        .publish(std::slice::from_ref(&event))
        .instrument(tracing::info_span!(PARENT))
        .await
        .expect("published");
    assert_eq!(report.message_ids, [event.event_id]);
    let group = mailer.stop_once_handled(fixture, 1).await;

    let spans = capture.spans();
    let parent = spans.get(PARENT);
    let publish = spans.get(attr::SPAN_BUS_PUBLISH);
    let consume = spans.get(attr::SPAN_BUS_CONSUME);
    let handle = spans.get(attr::SPAN_BUS_HANDLE);
    spans.assert_child_of(attr::SPAN_BUS_PUBLISH, PARENT);
    spans.assert_child_of(attr::SPAN_BUS_CONSUME, attr::SPAN_BUS_PUBLISH);
    spans.assert_child_of(attr::SPAN_BUS_HANDLE, attr::SPAN_BUS_CONSUME);
    assert_eq!(
        consume.span_context.trace_id(),
        parent.span_context.trace_id(),
        "one trace"
    );
    assert_eq!(kind(publish), SpanKind::Producer);
    assert_eq!(kind(consume), SpanKind::Consumer);

    let system = string(fixture.system());
    let message_id = string(&event.event_id.to_string());
    for span in [publish, consume] {
        assert_eq!(attribute(span, attr::MESSAGING_SYSTEM), Some(&system));
        assert!(attribute(span, attr::MESSAGING_DESTINATION_NAME).is_some());
        assert!(attribute(span, attr::SERVER_ADDRESS).is_some());
        assert!(matches!(
            attribute(span, attr::SERVER_PORT),
            Some(Value::I64(_))
        ));
    }
    assert_eq!(
        attribute(publish, attr::MESSAGING_MESSAGE_ID),
        Some(&message_id)
    );
    assert_eq!(
        attribute(publish, attr::MESSAGING_OPERATION_TYPE),
        Some(&string("send"))
    );
    assert_eq!(
        attribute(consume, attr::MESSAGING_OPERATION_TYPE),
        Some(&string("process"))
    );
    assert_eq!(
        attribute(consume, attr::MESSAGING_CONSUMER_GROUP_NAME),
        Some(&string(&fixture.consumer_group_name(&group)))
    );
    assert_eq!(
        attribute(handle, attr::HANDLER_NAME),
        Some(&string("send-confirmation"))
    );

    // The contract's bus metrics, told apart by this scenario's event type.
    let labels = [
        (attr::MESSAGING_SYSTEM, fixture.system()),
        (attr::METRIC_ATTR_EVENT_TYPE, event_type.as_str()),
    ];
    assert_eq!(
        metrics.total(attr::METRIC_BUS_MESSAGES_PUBLISHED, &labels),
        1
    );
    assert_eq!(
        metrics.total(attr::METRIC_BUS_MESSAGES_CONSUMED, &labels),
        1
    );
    let handler = [
        (attr::METRIC_ATTR_HANDLER_NAME, "send-confirmation"),
        (attr::METRIC_ATTR_EVENT_TYPE, event_type.as_str()),
    ];
    assert!(metrics.total(attr::METRIC_BUS_HANDLER_DURATION, &handler) >= 1);
    OneTrace {
        spans,
        event,
        group,
    }
}

/// Two groups receiving one message are two branches of its trace: a consume span each,
/// both children of the one publish span, each naming its group.
pub async fn fan_out<F: BrokerFixture>(fixture: &F) {
    let capture = capture();
    let bus = fixture.bus();
    let delays = [std::time::Duration::from_millis(50)];
    let mailer = fixture.group(&bus, "mailer", &delays);
    let shipping = fixture.group(&bus, "shipping", &delays);
    let mails = counting(&mailer, "send-confirmation", 0);
    let notes = counting(&shipping, "notify-shipping", 0);
    let running = [
        Running::start(&mailer).await,
        Running::start(&shipping).await,
    ];

    let event = stored_event("o-1", &event_type());
    bus.publish(std::slice::from_ref(&event))
        .instrument(tracing::info_span!(PARENT))
        .await
        .expect("published");
    until(fixture, "both groups handled it", || {
        mails.load(Ordering::SeqCst) == 1 && notes.load(Ordering::SeqCst) == 1
    })
    .await;
    for group in running {
        group.stop().await;
    }

    let spans = capture.spans();
    let publish = spans.get(attr::SPAN_BUS_PUBLISH);
    let consumes = spans.all(attr::SPAN_BUS_CONSUME);
    assert_eq!(consumes.len(), 2, "{}", spans.tree());
    for consume in &consumes {
        assert_eq!(consume.parent_span_id, publish.span_context.span_id());
        assert_eq!(
            consume.span_context.trace_id(),
            publish.span_context.trace_id()
        );
    }
    let mut groups: Vec<String> = consumes
        .iter()
        .filter_map(|c| attribute(c, attr::MESSAGING_CONSUMER_GROUP_NAME))
        .map(|v| v.as_str().into_owned())
        .collect();
    groups.sort();
    let mut expected = [
        fixture.consumer_group_name(&mailer),
        fixture.consumer_group_name(&shipping),
    ];
    expected.sort();
    assert_eq!(groups, expected);
}

/// A message whose `traceparent` cannot be read is handled, in a new trace, and counted.
pub async fn malformed_traceparent_starts_a_new_root<F: BrokerFixture>(fixture: &F) {
    let capture = capture();
    let (bus, mailer) = Mailer::start(fixture).await;

    // A well-formed message as the adapter would send it, its traceparent garbled.
    let event_type = event_type();
    let body = wire::encode(&stored_event("o-1", &event_type)).expect("encoded");
    let before = propagation::malformed_context_count();
    fixture
        .send_raw(
            &bus,
            &mailer.group,
            RawMessage {
                traceparent: Some("00-zzzz-not-a-context"),
                ..order_message(&event_type, &body)
            },
        )
        .await;
    mailer.stop_once_handled(fixture, 1).await;

    assert!(propagation::malformed_context_count() > before, "counted");
    let spans = capture.spans();
    let consume = spans.get(attr::SPAN_BUS_CONSUME);
    assert_eq!(consume.parent_span_id, SpanId::INVALID, "a new root");
}

/// The relay publishes events read back from the store in the trace each was stored in:
/// each group's consume and handle spans join the trace of the span the event was appended
/// under.
pub async fn relay_continues_the_stored_trace<F: BrokerFixture>(fixture: &F) {
    let capture = capture();
    let (bus, mailer) = Mailer::start(fixture).await;

    // Two appends, each under a span of its own; the relay publishes.
    let store = InMemoryEventStore::new();
    let event_type = event_type();
    for id in ["o-1", "o-2"] {
        let event = NewEvent::new(event_type.clone(), 1, serde_json::json!({ "id": id }));
        store
            .append(
                &StreamId::new("Order", id),
                ExpectedVersion::Any,
                vec![event],
            )
            .instrument(tracing::info_span!(PARENT))
            .await
            .expect("stored");
    }
    let relay = Relay::new(
        Arc::new(store),
        Arc::new(InMemoryCheckpointStore::new()),
        Arc::new(bus),
    );
    assert_eq!(relay.run_until_caught_up().await.expect("relayed"), 2);
    mailer.stop_once_handled(fixture, 2).await;

    let spans = capture.spans();
    let parents = spans.all(PARENT);
    assert_eq!(parents.len(), 2);
    for parent in parents {
        let trace = parent.span_context.trace_id();
        let in_trace: Vec<&str> = spans
            .0
            .iter()
            .filter(|s| s.span_context.trace_id() == trace)
            .map(|s| s.name.as_ref())
            .collect();
        for name in [
            attr::SPAN_STORE_APPEND,
            attr::SPAN_BUS_PUBLISH,
            attr::SPAN_BUS_CONSUME,
            attr::SPAN_BUS_HANDLE,
        ] {
            assert!(in_trace.contains(&name), "{name} in {in_trace:?}");
        }
    }
}

fn string(v: &str) -> Value {
    Value::String(v.to_owned().into())
}
