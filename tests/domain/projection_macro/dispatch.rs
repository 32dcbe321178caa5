//! Dispatch: each event to the handler of its type, handled types only, failures.

use super::*;

#[tokio::test]
async fn each_event_goes_to_the_handler_of_its_type() {
    let events = stored(
        "o-1",
        &[placed("ada", 100), shipped(), cancelled("too late")],
    )
    .await;
    let registry = ProjectionRegistry::new();
    let journal = registry.register(Journal::default());
    assert!(registry.deliver(&events).await.is_empty());
    assert_eq!(
        journal.lock().await.calls,
        [
            "placed by ada",
            "shipped o-1 v2 by dhl",
            "cancelled o-1: too late"
        ]
    );
}

#[tokio::test]
async fn the_impl_block_stays_as_written() {
    let mut journal = Journal::with_call("by hand");
    journal.placed(&OrderPlaced {
        customer_id: "bob".into(),
        items: vec![],
        shipping_address: String::new(),
        total_cents: 1,
    });
    assert_eq!(journal.count(), 2);
    assert_eq!(journal.calls[1], "placed by bob");
    assert_eq!(Projection::name(&journal), "Journal");
}

#[tokio::test]
async fn only_handled_event_types_are_delivered() {
    let journal = Journal::default();
    assert!(journal.handles("OrderPlaced"));
    assert!(journal.handles("OrderShipped"));
    assert!(journal.handles("OrderCancelled"));
    assert!(!journal.handles("Deposited"));
    assert_eq!(<Account as Aggregate>::TYPE, "Account");
    let totals = Totals::default();
    assert!(totals.handles("OrderPlaced"));
    assert!(!totals.handles("OrderShipped"));

    // An account's event reaches no order projection (and a `Totals` sees no shipment).
    let store = InMemoryEventStore::new().enable_tracing(false);
    let deposit = NewEvent::from_event(&AccountEvent::from(Deposited { cents: 5 })).unwrap();
    let mut events = store
        .append(
            &StreamId::new("Account", "a-1"),
            ExpectedVersion::NoStream,
            vec![deposit],
        )
        .await
        .unwrap()
        .events;
    events.extend(stored("o-1", &[placed("ada", 100), shipped()]).await);
    let registry = ProjectionRegistry::new();
    let journal = registry.register(Journal::default());
    let totals = registry.register(Totals::default());
    assert!(registry.deliver(&events).await.is_empty());
    assert_eq!(
        journal.lock().await.calls,
        ["placed by ada", "shipped o-1 v2 by dhl"]
    );
    assert_eq!(
        totals.lock().await.cents,
        BTreeMap::from([("o-1".into(), 100)])
    );
}

#[tokio::test]
async fn a_failing_handler_is_a_delivery_failure_and_the_rest_is_delivered() {
    let mut events = stored("o-1", &[cancelled("refuse"), shipped()]).await;
    events.extend(stored("o-2", &[placed("bob", 0), placed("eve", 300)]).await);
    let registry = ProjectionRegistry::new();
    let journal = registry.register(Journal::default());
    let totals = registry.register(Totals::default());

    let failures = registry.deliver(&events).await;
    assert_eq!(failures.len(), 2, "{failures:?}");
    let DeliveryFailure {
        projection,
        position,
        error,
    } = &failures[0];
    assert_eq!(projection, "Journal");
    assert_eq!(*position, events[0].position);
    assert!(matches!(error, ProjectionError::Handler(_)), "{error:?}");
    assert_eq!(error.to_string(), "refused to cancel o-1");
    assert_eq!(failures[1].projection, "Totals");
    assert_eq!(failures[1].position, events[2].position);
    assert_eq!(failures[1].error.to_string(), "an order of nothing");

    // Every other event reached both projections.
    assert_eq!(
        journal.lock().await.calls,
        ["shipped o-1 v2 by dhl", "placed by bob", "placed by eve"]
    );
    assert_eq!(
        totals.lock().await.cents,
        BTreeMap::from([("o-2".into(), 300)])
    );
}

#[tokio::test]
async fn a_payload_that_does_not_fit_is_a_decode_failure() {
    let store = InMemoryEventStore::new().enable_tracing(false);
    let bad = NewEvent::new("OrderPlaced", 1, serde_json::json!({ "total": "lots" }));
    let events = store
        .append(
            &StreamId::new("Order", "o-1"),
            ExpectedVersion::NoStream,
            vec![bad],
        )
        .await
        .unwrap()
        .events;
    let registry = ProjectionRegistry::new();
    let journal = registry.register(Journal::default());
    let failures = registry.deliver(&events).await;
    assert_eq!(failures.len(), 1);
    assert!(
        matches!(failures[0].error, ProjectionError::Decode(_)),
        "{:?}",
        failures[0].error
    );
    assert!(journal.lock().await.calls.is_empty());
}

#[tokio::test]
async fn a_generic_projection_dispatches_too() {
    let events = stored("o-1", &[placed("ada", 1), shipped()]).await;
    let registry = ProjectionRegistry::new();
    let tagged = registry.register(Tagged {
        tag: 7_u8,
        seen: vec![],
    });
    assert!(registry.deliver(&events).await.is_empty());
    assert_eq!(tagged.lock().await.seen, ["7:ada"]);
    assert_eq!(tagged.lock().await.name(), "Tagged");
}
