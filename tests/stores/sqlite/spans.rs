//! The event store's spans: client spans with the database attributes, query text.

use super::*;

// ---- spans -----------------------------------------------------------------------------------

#[tokio::test]
async fn spans_are_client_spans_with_the_database_attributes() {
    let store = open(":memory:").await;
    let capture = eventsource_runtime::testing::capture();
    let s = StreamId::new("Order", "o-1");
    async {
        store
            .append(&s, ExpectedVersion::NoStream, batch(0..2))
            .await
            .unwrap();
        store.load(&s, 1).await.unwrap();
        store.read_all(0, 10).await.unwrap();
    }
    .instrument(tracing::info_span!("command"))
    .await;

    let spans = capture.spans();
    for (name, operation) in [
        (SPAN_STORE_APPEND, "append"),
        (SPAN_STORE_LOAD, "load"),
        (SPAN_STORE_READ_ALL, "read_all"),
    ] {
        spans.assert_child_of(name, "command");
        let span = spans.get(name);
        assert_eq!(kind(span), SpanKind::Client, "{name}");
        assert_eq!(
            attribute(span, attr::DB_SYSTEM_NAME),
            Some(&string("sqlite"))
        );
        assert_eq!(
            attribute(span, attr::DB_COLLECTION_NAME),
            Some(&string("events"))
        );
        assert_eq!(
            attribute(span, attr::DB_OPERATION_NAME),
            Some(&string(operation))
        );
        assert_eq!(
            attribute(span, attr::DB_QUERY_TEXT),
            None,
            "query text is opt-in"
        );
    }
    let append = spans.get(SPAN_STORE_APPEND);
    assert_eq!(events(append, "event_persisted").len(), 2);
    assert_eq!(attribute(append, attr::VERSION), Some(&Value::I64(2)));
    assert_eq!(
        attribute(spans.get(SPAN_STORE_LOAD), attr::EVENTS_LOADED),
        Some(&Value::I64(2))
    );

    // The append's trace context is stored with each event, and read back from the table.
    let stored = store.load(&s, 1).await.unwrap();
    let trace_id = append.span_context.trace_id().to_string();
    for event in &stored {
        let traceparent = event.metadata.traceparent().expect("traceparent stored");
        assert!(traceparent.contains(&trace_id), "{traceparent}");
    }
}

#[tokio::test]
async fn query_text_names_and_switch() {
    let store = open(":memory:").await;
    let s = StreamId::new("Order", "o-1");

    let capture = eventsource_runtime::testing::capture();
    let recording = store.clone().record_query_text(true);
    recording
        .append(&s, ExpectedVersion::NoStream, batch(0..1))
        .await
        .unwrap();
    recording.load(&s, 1).await.unwrap();
    recording.read_all(0, 10).await.unwrap();
    let spans = capture.spans();
    let text = |name| match attribute(spans.get(name), attr::DB_QUERY_TEXT) {
        Some(Value::String(text)) => text.as_str().to_owned(),
        other => panic!("{name}: no query text ({other:?})"),
    };
    assert!(text(SPAN_STORE_APPEND).contains("INSERT INTO events"));
    assert!(text(SPAN_STORE_LOAD).starts_with("SELECT"));
    assert!(text(SPAN_STORE_READ_ALL).contains("ORDER BY position LIMIT"));
    assert!(!text(SPAN_STORE_APPEND).contains("Counted"), "no values");
    drop(capture);

    // Switched off: no span, and the query text does not land on the caller's span.
    let capture = eventsource_runtime::testing::capture();
    let silent = store.clone().record_query_text(true).enable_tracing(false);
    async {
        silent.load(&s, 1).await.unwrap();
    }
    .instrument(tracing::info_span!("caller"))
    .await;
    let spans = capture.spans();
    assert_eq!(spans.names(), ["caller"]);
    assert_eq!(attribute(spans.get("caller"), attr::DB_QUERY_TEXT), None);
    drop(capture);

    // Renamed.
    let capture = eventsource_runtime::testing::capture();
    let renamed = store.clone().with_span_names(StoreSpanNames {
        load: "event_store.load",
        append: "event_store.append",
        read_all: "event_store.read_all",
        events_by_correlation: "event_store.events_by_correlation",
    });
    renamed.load(&s, 1).await.unwrap();
    renamed
        .append(&s, ExpectedVersion::Any, batch(1..2))
        .await
        .unwrap();
    let spans = capture.spans();
    assert_eq!(spans.names(), ["event_store.load", "event_store.append"]);
}
