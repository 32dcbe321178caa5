//! Command handling end to end: load -> decide -> record -> save -> deliver.

use crate::domain;

use domain::{
    CancelOrder, Order, OrderError, OrderReadModel, OrderStatus, ShipOrder, sample_order,
};
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::DeliveryFailure;

fn ship(id: &str) -> ShipOrder {
    ShipOrder {
        order_id: id.into(),
        carrier: "dhl".into(),
    }
}

/// A command's events come back as the store holds them: the in-memory save fills in the
/// envelopes it returns (versions and positions included), interleaved with other streams,
/// after a rejected command and after a save refused for its version.
#[tokio::test]
async fn a_command_returns_its_events_as_the_store_holds_them() {
    let store = InMemoryEventStore::new();
    let orders = CommandService::<Order>::new(store.clone());
    let mut returned = Vec::new();
    for id in ["o-1", "o-2"] {
        returned.extend(
            orders
                .execute(sample_order(id, "ada"))
                .await
                .unwrap()
                .events,
        );
    }
    // Nothing is stored for either, and the next event takes the next position.
    assert!(orders.execute(sample_order("o-1", "ada")).await.is_err());
    let mut stale = AggregateRoot::<Order>::new("o-1");
    stale.record(domain::OrderCancelled {
        reason: "stale".into(),
    });
    let refused = orders.repository().save(&mut stale).await.unwrap_err();
    assert!(refused.as_conflict().is_some(), "{refused}");
    returned.extend(orders.execute(ship("o-1")).await.unwrap().events);
    returned.extend(orders.execute(ship("o-2")).await.unwrap().events);

    let positions: Vec<(&str, u64, u64)> = returned
        .iter()
        .map(|e| (e.aggregate_id(), e.version, e.position))
        .collect();
    assert_eq!(
        positions,
        [("o-1", 1, 1), ("o-2", 1, 2), ("o-1", 2, 3), ("o-2", 2, 4)]
    );
    assert_eq!(store.read_all(1, 10).await.unwrap(), returned);
    let o1 = StreamId::new("Order", "o-1");
    assert_eq!(
        store.load(&o1, 1).await.unwrap(),
        [returned[0].clone(), returned[2].clone()]
    );
}

#[tokio::test]
async fn commands_store_events_and_feed_projections() {
    let store = InMemoryEventStore::new();
    let orders = CommandService::<Order>::new(store.clone());
    let model = orders.register(OrderReadModel::default());

    let placed = orders.execute(sample_order("o-1", "ada")).await.unwrap();
    assert_eq!(placed.version(), 1);
    assert_eq!(placed.events.len(), 1);
    assert_eq!(placed.events[0].event_type, "OrderPlaced");
    assert!(placed.delivery_failures.is_empty());
    assert_eq!(model.lock().await.orders["o-1"].status, OrderStatus::Placed);

    let shipped = orders.execute(ship("o-1")).await.unwrap();
    assert_eq!(shipped.version(), 2);
    assert_eq!(shipped.aggregate.state().status, OrderStatus::Shipped);
    let view = model.lock().await.orders["o-1"].clone();
    assert_eq!(view.status, OrderStatus::Shipped);
    assert_eq!(view.last_position, shipped.events[0].position);

    // The events really are in the store, in order.
    let stored = store.read_all(0, 10).await.unwrap();
    assert_eq!(
        stored.iter().map(|e| &*e.event_type).collect::<Vec<_>>(),
        ["OrderPlaced", "OrderShipped"]
    );
}

#[tokio::test]
async fn a_rejected_command_stores_and_delivers_nothing() {
    let store = InMemoryEventStore::new();
    let orders = CommandService::<Order>::new(store.clone());
    let model = orders.register(OrderReadModel::default());
    match orders.execute(ship("o-1")).await {
        Err(CommandError::Rejected(OrderError::NotPlaced)) => {}
        other => panic!("expected NotPlaced, got {other:?}"),
    }
    assert!(store.is_empty());
    assert!(model.lock().await.orders.is_empty());
}

#[tokio::test]
async fn metadata_is_stored_with_each_event() {
    let orders = CommandService::<Order>::new(InMemoryEventStore::new());
    let metadata = Metadata::new().with(Metadata::CORRELATION_ID, "req-7");
    let outcome = orders
        .execute_with_metadata(sample_order("o-1", "ada"), metadata.clone())
        .await
        .unwrap();
    let stored = orders
        .repository()
        .store()
        .load(outcome.aggregate.stream(), 1)
        .await
        .unwrap();
    assert_eq!(stored[0].metadata.correlation_id(), Some("req-7"));
}

#[tokio::test]
async fn a_failing_projection_is_reported_and_the_others_still_run() {
    struct Broken;
    #[eventsource_runtime::async_trait]
    impl Projection for Broken {
        fn name(&self) -> &str {
            "Broken"
        }
        async fn handle(&mut self, _: &EventEnvelope) -> Result<(), ProjectionError> {
            Err(ProjectionError::handler("read store is down"))
        }
    }

    let store = InMemoryEventStore::new();
    let orders = CommandService::<Order>::new(store.clone());
    orders.register(Broken);
    let model = orders.register(OrderReadModel::default());
    let outcome = orders.execute(sample_order("o-1", "ada")).await.unwrap();
    let [
        DeliveryFailure {
            projection,
            position,
            error,
        },
    ] = outcome.delivery_failures.as_slice()
    else {
        panic!("expected one failure, got {:?}", outcome.delivery_failures);
    };
    assert_eq!(projection, "Broken");
    assert_eq!(*position, outcome.events[0].position);
    assert_eq!(error.to_string(), "read store is down");
    assert_eq!(store.len(), 1, "the events stay stored");
    assert!(model.lock().await.orders.contains_key("o-1"));
}

#[tokio::test]
async fn projections_only_receive_the_types_they_handle() {
    #[derive(Default)]
    struct CancellationsOnly {
        seen: Vec<String>,
    }
    #[eventsource_runtime::async_trait]
    impl Projection for CancellationsOnly {
        fn name(&self) -> &str {
            "CancellationsOnly"
        }
        fn handles(&self, event_type: &str) -> bool {
            event_type == <domain::OrderCancelled as EventType>::EVENT_TYPE
        }
        async fn handle(&mut self, event: &EventEnvelope) -> Result<(), ProjectionError> {
            self.seen.push(event.event_type.to_string());
            Ok(())
        }
    }

    let orders = CommandService::<Order>::new(InMemoryEventStore::new());
    let cancellations = orders.register(CancellationsOnly::default());
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    orders
        .execute(CancelOrder {
            order_id: "o-1".into(),
            reason: "changed mind".into(),
        })
        .await
        .unwrap();
    assert_eq!(cancellations.lock().await.seen, ["OrderCancelled"]);
}

#[tokio::test]
async fn closures_decide_too() {
    let orders = CommandService::<Order>::new(InMemoryEventStore::new());
    let outcome = orders
        .execute_with("o-1", |order| order.place(sample_order("o-1", "ada")))
        .await
        .unwrap();
    assert_eq!(outcome.aggregate.state().customer_id, "ada");
    let err = orders
        .execute_with("o-1", |order| order.place(sample_order("o-1", "ada")))
        .await
        .unwrap_err();
    assert!(matches!(
        err.as_rejection(),
        Some(OrderError::AlreadyPlaced)
    ));
}

/// A command's future holds one load's and one save's state: every caller copies all of it
/// each time it moves the future (it was 6,008 bytes in a release build when `Span::run` kept
/// its work once per branch and the command-id and snapshot paths were inline; 1,688 after).
#[test]
fn a_command_future_stays_small() {
    let orders = CommandService::<Order>::new(InMemoryEventStore::new());
    let execute = orders.execute(sample_order("o-1", "c-1"));
    let size = std::mem::size_of_val(&execute);
    assert!(size <= 3 * 1024, "the command future takes {size} bytes");
}
