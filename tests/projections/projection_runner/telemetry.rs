//! The runner's spans and metrics.

use super::*;

// ---- Telemetry. ----------------------------------------------------------------------------

#[tokio::test]
async fn after_a_restart_the_projection_span_is_a_new_root_linked_to_the_append() {
    register_callsites();
    let capture = capture();
    let store = InMemoryEventStore::new();
    let stream = StreamId::new("Order", "o-1");
    let appended = store
        .append(
            &stream,
            ExpectedVersion::NoStream,
            vec![event("OrderPlaced", 1)],
        )
        .instrument(tracing::info_span!("POST /orders"))
        .await
        .unwrap();
    let spans = capture.spans();
    let append_span = spans
        .get("eventsource.event_store.append")
        .span_context
        .clone();
    let request_trace = spans.get("POST /orders").span_context.trace_id();
    assert_eq!(
        propagation::stored_span_context(&appended.events[0].metadata)
            .unwrap()
            .span_id(),
        append_span.span_id()
    );

    // "Restart": the append's spans are gone; a fresh runner reads the event back.
    capture.clear();
    let mut recorder = Recorder::new("Audit");
    recorder.traced = true;
    let runner = runner(&store, &InMemoryCheckpointStore::new(), recorder.clone());
    runner.run_until_caught_up().await.unwrap();

    let spans = capture.spans();
    let projection = spans.get("projection.Audit");
    assert!(spans.is_root(projection), "{}", spans.tree());
    assert_eq!(kind(projection), SpanKind::Consumer);
    assert_ne!(projection.span_context.trace_id(), request_trace);
    let links = &projection.links.links;
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].span_context.span_id(), append_span.span_id());
    assert_eq!(links[0].span_context.trace_id(), request_trace);
    assert_eq!(
        attribute(projection, attr::PROJECTION_NAME),
        Some(&Value::String("Audit".into()))
    );
    assert_eq!(
        attribute(projection, attr::EVENT_POSITION),
        Some(&Value::I64(1))
    );
    assert!(
        matches!(attribute(projection, attr::PROJECTION_LAG_MS), Some(Value::I64(lag)) if *lag >= 0)
    );
}
