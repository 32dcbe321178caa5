//! The producer side a transport uses: the publish span's context in the message headers.

use super::*;

#[tokio::test]
async fn instrument_publish_puts_the_publish_span_context_in_the_headers() {
    let _global = GLOBAL.read().await;
    let capture = capture();
    let store = InMemoryEventStore::new();
    CommandService::<Order>::new(store.clone())
        .execute(place("o-1"))
        .await
        .unwrap();
    let event = store.read_all(1, 1).await.unwrap().into_events().remove(0);
    capture.clear();

    let sent = async {
        instrument::publish(
            &BusTelemetry::new("rabbitmq"),
            BusMessage::new("orders", event.clone()),
            |message| async move { Ok::<_, BusError>(message) },
        )
        .await
        .unwrap()
    }
    .instrument(tracing::info_span!("outbox relay"))
    .await;

    let spans = capture.spans();
    spans.assert_child_of(PUBLISH, "outbox relay");
    let publish = spans.get(PUBLISH);
    assert_eq!(
        traceparent_span(&sent.headers),
        publish.span_context.span_id()
    );
    assert_ne!(
        traceparent_span(&sent.headers),
        traceparent_span(&sent.event.metadata)
    );
    assert_eq!(sent.event, event, "the stored event is untouched");
}
