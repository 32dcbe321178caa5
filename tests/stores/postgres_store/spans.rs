//! The PostgreSQL stores: spans.

use super::*;

#[tokio::test]
async fn spans_are_client_spans_with_the_database_attributes() {
    let Some(db) = db!("spans_are_client_spans_with_the_database_attributes") else {
        return;
    };
    let pool = db.pool(2).await;
    let store = db.store_on(&pool).await;
    let options: PgConnectOptions = db.url.parse().unwrap();
    let s = StreamId::new("Order", "span-1");

    let capture = capture();
    store
        .append(&s, ExpectedVersion::NoStream, events(0..2))
        .await
        .unwrap();
    store.load(&s, 1).await.unwrap();
    store.read_all(0, 10).await.unwrap();
    let _ = store
        .append(&s, ExpectedVersion::NoStream, events(2..3))
        .await;
    let spans = capture.spans();

    for (name, operation) in [
        (SPAN_STORE_APPEND, "append"),
        (SPAN_STORE_LOAD, "load"),
        (SPAN_STORE_READ_ALL, "read_all"),
    ] {
        let span = spans.all(name)[0];
        assert_eq!(kind(span), SpanKind::Client, "{name}");
        assert_eq!(
            attribute(span, attr::DB_SYSTEM_NAME),
            Some(&string("postgresql"))
        );
        assert_eq!(
            attribute(span, attr::DB_OPERATION_NAME),
            Some(&string(operation))
        );
        assert_eq!(
            attribute(span, attr::DB_COLLECTION_NAME),
            Some(&string("events"))
        );
        assert_eq!(
            attribute(span, attr::SERVER_ADDRESS),
            Some(&string(options.get_host()))
        );
        assert_eq!(
            attribute(span, attr::SERVER_PORT),
            Some(&Value::I64(i64::from(options.get_port())))
        );
        assert_eq!(
            attribute(span, attr::DB_QUERY_TEXT),
            None,
            "query text is opt-in"
        );
        let database = options.get_database().unwrap_or(options.get_username());
        assert_eq!(
            attribute(span, attr::DB_NAMESPACE),
            Some(&string(&format!("{database}.{}", store.schema()))),
            "the database and the store's schema"
        );
    }
    let appends = spans.all(SPAN_STORE_APPEND);
    assert_eq!(appends.len(), 2);
    assert_eq!(attribute(appends[0], attr::VERSION), Some(&Value::I64(2)));
    assert_eq!(
        appends[1].status,
        opentelemetry::trace::Status::error(
            "version conflict on Order-span-1: expected no stream, stream is at version 2"
        ),
        "a conflict is an error on the span"
    );
    assert_eq!(
        attribute(appends[1], attr::ERROR_TYPE),
        Some(&string("VersionConflict")),
        "the class of error, as on the exception event"
    );
    assert_eq!(attribute(appends[0], attr::ERROR_TYPE), None);
    assert_eq!(
        attribute(spans.get(SPAN_STORE_READ_ALL), attr::EVENTS_LOADED),
        Some(&Value::I64(2))
    );
    capture.clear();

    // Opt-in query text; the switch.
    let verbose = store.clone().record_query_text(true);
    verbose.load(&s, 1).await.unwrap();
    verbose.read_all(0, 1).await.unwrap();
    let spans = capture.spans();
    let text = attribute(spans.get(SPAN_STORE_LOAD), attr::DB_QUERY_TEXT)
        .expect("query text when opted in")
        .to_string();
    assert!(text.starts_with("SELECT") && text.contains("$1"), "{text}");
    let text = attribute(spans.get(SPAN_STORE_READ_ALL), attr::DB_QUERY_TEXT)
        .unwrap()
        .to_string();
    assert!(text.contains("eventsource_read_all($1, $2)"), "{text}");
    capture.clear();
    let quiet = store.clone().enable_tracing(false);
    quiet.load(&s, 1).await.unwrap();
    assert!(capture.spans().is_empty());

    // The snapshot store's spans.
    let snapshots = store.snapshot_store();
    snapshots
        .save(conformance::snapshots::snapshot(&s, 2))
        .await
        .unwrap();
    snapshots.get(&s).await.unwrap();
    let spans = capture.spans();
    for name in [SPAN_SNAPSHOT_STORE_SAVE, SPAN_SNAPSHOT_STORE_GET] {
        let span = spans.get(name);
        assert_eq!(kind(span), SpanKind::Client, "{name}");
        assert_eq!(
            attribute(span, attr::DB_SYSTEM_NAME),
            Some(&string("postgresql"))
        );
        assert_eq!(
            attribute(span, attr::DB_COLLECTION_NAME),
            Some(&string("snapshots"))
        );
        assert_eq!(
            attribute(span, attr::SERVER_PORT),
            Some(&Value::I64(i64::from(options.get_port())))
        );
        assert_eq!(attribute(span, attr::VERSION), Some(&Value::I64(2)));
    }
    drop(capture);
    pool.close().await;
    db.cleanup().await;
}
