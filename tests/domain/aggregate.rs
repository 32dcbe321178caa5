//! Aggregates: derived event application, replay, versions, decode errors, concurrency.

use crate::domain;

use std::sync::Arc;

use domain::{
    Order, OrderCancelled, OrderError, OrderEvent, OrderPlaced, OrderShipped, OrderStatus,
    sample_order,
};
use eventsource_runtime::aggregate::OutOfSequence;
use eventsource_runtime::event::{DecodeError, NewEvent};
use eventsource_runtime::prelude::*;
use eventsource_runtime::testing::given;
use serde_json::json;
use tokio::sync::Barrier;

fn placed() -> OrderPlaced {
    let items = sample_order("o-1", "ada").items;
    OrderPlaced {
        customer_id: "ada".into(),
        total_cents: items
            .iter()
            .map(|i| u64::from(i.quantity) * i.unit_price_cents)
            .sum(),
        items,
        shipping_address: "1 Infinite Loop".into(),
    }
}

fn shipped() -> OrderShipped {
    OrderShipped {
        carrier: "dhl".into(),
        tracking_number: "DHL-o-1".into(),
    }
}

#[test]
fn derived_enum_names_types_and_converts() {
    assert_eq!(<Order as Aggregate>::TYPE, "Order");
    assert_eq!(
        <OrderEvent as DomainEvent>::EVENT_TYPES,
        ["OrderPlaced", "OrderShipped", "OrderCancelled"]
    );
    assert_eq!(<OrderShipped as EventType>::EVENT_TYPE, "OrderShipped");
    let event = OrderEvent::from(shipped());
    assert_eq!(event.event_type(), "OrderShipped");
    assert_eq!(event.schema_version(), 1);
    // The stored payload is the event's own fields, untagged...
    let payload = event.to_payload().unwrap();
    assert_eq!(
        payload,
        json!({ "carrier": "dhl", "tracking_number": "DHL-o-1" })
    );
    assert_eq!(
        OrderEvent::from_payload("OrderShipped", &payload).unwrap(),
        event
    );
    // ...while the enum itself serializes tagged by event type.
    let tagged = serde_json::to_value(&event).unwrap();
    assert_eq!(tagged["type"], "OrderShipped");
    assert_eq!(serde_json::from_value::<OrderEvent>(tagged).unwrap(), event);
}

#[test]
fn from_payload_rejects_unknown_types_and_bad_payloads() {
    match OrderEvent::from_payload("OrderLost", &json!({}).into()) {
        Err(DecodeError::UnknownEventType { event_type, known }) => {
            assert_eq!(event_type, "OrderLost");
            assert_eq!(known, <OrderEvent as DomainEvent>::EVENT_TYPES);
        }
        other => panic!("expected UnknownEventType, got {other:?}"),
    }
    match OrderEvent::from_payload("OrderShipped", &json!({ "carrier": 5 }).into()) {
        Err(DecodeError::Payload { event_type, .. }) => assert_eq!(event_type, "OrderShipped"),
        other => panic!("expected a payload error, got {other:?}"),
    }
}

#[test]
fn record_applies_and_queues() {
    let mut root = AggregateRoot::<Order>::new("o-1");
    root.record(placed());
    root.record(shipped());
    assert_eq!(root.version(), 2);
    assert_eq!(root.persisted_version(), 0);
    assert_eq!(root.state().status, OrderStatus::Shipped);
    assert_eq!(root.uncommitted(), [placed().into(), shipped().into()]);
}

#[test]
fn replay_equals_recording_and_checks_sequence() {
    let history: Vec<OrderEvent> = vec![placed().into(), shipped().into()];
    let mut recorded = AggregateRoot::<Order>::new("o-1");
    history.iter().cloned().for_each(|e| recorded.record(e));

    let mut replayed = AggregateRoot::<Order>::new("o-1");
    replayed.replay((1..).zip(&history)).unwrap();
    assert_eq!(replayed.version(), 2);
    assert!(replayed.uncommitted().is_empty());
    assert_eq!(
        format!("{:?}", replayed.state()),
        format!("{:?}", recorded.state())
    );

    // An event out of sequence is refused and leaves the state as it was.
    let mut root = AggregateRoot::<Order>::new("o-1");
    root.replay_one(1, &history[0]).unwrap();
    let err = root.replay_one(3, &history[1]).unwrap_err();
    assert_eq!(
        err,
        OutOfSequence {
            stream: StreamId::new("Order", "o-1"),
            expected: 2,
            actual: 3
        }
    );
    assert_eq!(root.version(), 1);
    assert_eq!(root.state().status, OrderStatus::Placed);
    assert!(
        root.replay_one(1, &history[1]).is_err(),
        "a repeated version is refused too"
    );
}

#[tokio::test]
async fn repository_round_trip() {
    let repo = Repository::<Order>::new(InMemoryEventStore::new());
    assert!(!repo.exists("o-1").await.unwrap());
    let mut root = repo.load("o-1").await.unwrap();
    assert_eq!(root.version(), 0);
    root.record(placed());
    root.record(shipped());
    let stored = repo.save(&mut root).await.unwrap();
    assert_eq!(stored.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2]);
    assert!(root.uncommitted().is_empty());
    assert_eq!(root.persisted_version(), 2);
    assert!(repo.exists("o-1").await.unwrap());

    let loaded = repo.load("o-1").await.unwrap();
    assert_eq!(loaded.version(), 2);
    assert_eq!(loaded.state().status, OrderStatus::Shipped);
    assert_eq!(loaded.state().total_cents, 3_400);

    // Saving again continues from the loaded version.
    let mut again = loaded;
    again.record(OrderCancelled {
        reason: "late".into(),
    });
    assert_eq!(repo.save(&mut again).await.unwrap()[0].version, 3);
    // Nothing to save is not an error and appends nothing.
    assert!(repo.save(&mut again).await.unwrap().is_empty());
    assert_eq!(
        repo.store().stream_version(again.stream()).await.unwrap(),
        3
    );
}

#[tokio::test]
async fn undecodable_stored_events_name_stream_and_version() {
    let store = InMemoryEventStore::new();
    let repo = Repository::<Order>::new(store.clone());
    let mut root = repo.load("o-1").await.unwrap();
    root.record(placed());
    repo.save(&mut root).await.unwrap();

    // Another writer stored an OrderShipped whose payload does not fit the type.
    let stream = Repository::<Order>::stream("o-1");
    let bad = NewEvent::new("OrderShipped", 1, json!({ "carrier": 42 }));
    store
        .append(&stream, ExpectedVersion::Exact(1), vec![bad])
        .await
        .unwrap();
    match repo.load("o-1").await {
        Err(RepositoryError::Decode {
            stream: s,
            version,
            source: DecodeError::Payload { event_type, .. },
        }) => {
            assert_eq!(s, stream);
            assert_eq!(version, 2);
            assert_eq!(event_type, "OrderShipped");
        }
        other => panic!("expected a payload decode error, got {other:?}"),
    }

    // An event type this aggregate does not know.
    let other = Repository::<Order>::stream("o-2");
    store
        .append(
            &other,
            ExpectedVersion::NoStream,
            vec![NewEvent::new("OrderTeleported", 1, json!({}))],
        )
        .await
        .unwrap();
    let err = repo.load("o-2").await.unwrap_err();
    assert!(
        matches!(&err, RepositoryError::Decode { version: 1, source: DecodeError::UnknownEventType { event_type, .. }, .. } if event_type == "OrderTeleported"),
        "{err:?}"
    );
    assert!(err.to_string().contains("Order-o-2 version 1"), "{err}");
    // The events are still there, untouched.
    assert_eq!(store.len(), 3);
}

/// Many tasks load the same aggregate at the same version and save: exactly one wins, the
/// others get the typed conflict; the stream has no gap and no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_saves_from_the_same_version() {
    const TASKS: usize = 24;
    let repo = Repository::<Order>::new(InMemoryEventStore::new());
    let mut root = repo.load("o-1").await.unwrap();
    root.record(placed());
    repo.save(&mut root).await.unwrap();

    for round in 0..5u64 {
        let barrier = Arc::new(Barrier::new(TASKS));
        let tasks: Vec<_> = (0..TASKS)
            .map(|n| {
                let repo = repo.clone();
                let barrier = Arc::clone(&barrier);
                tokio::spawn(async move {
                    let mut root = repo.load("o-1").await.unwrap();
                    barrier.wait().await; // everyone has loaded the same version
                    root.record(OrderCancelled {
                        reason: format!("task {n}"),
                    });
                    repo.save(&mut root).await.map(|_| root.version())
                })
            })
            .collect();
        let mut wins = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(version) => {
                    wins += 1;
                    assert_eq!(version, round + 2);
                }
                Err(err) => {
                    let conflict = err
                        .as_conflict()
                        .unwrap_or_else(|| panic!("not a conflict: {err}"));
                    assert_eq!(conflict.expected, ExpectedVersion::Exact(round + 1));
                    assert_eq!(conflict.actual, round + 2);
                }
            }
        }
        assert_eq!(wins, 1, "exactly one writer wins version {}", round + 2);
    }
    let stored = repo
        .store()
        .load(&Repository::<Order>::stream("o-1"), 1)
        .await
        .unwrap();
    assert_eq!(
        stored.iter().map(|e| e.version).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
}

#[test]
fn given_when_then() {
    given::<Order>([])
        .when(sample_order("o-1", "ada"))
        .then([placed()]);
    let state = given::<Order>([placed().into()])
        .when(domain::ShipOrder {
            order_id: "o-1".into(),
            carrier: "dhl".into(),
        })
        .then([shipped()]);
    assert_eq!(state.status, OrderStatus::Shipped);
    given::<Order>([placed().into(), shipped().into()])
        .when(domain::CancelOrder {
            order_id: "o-1".into(),
            reason: "too late".into(),
        })
        .then_error(OrderError::AlreadyShipped);
    given::<Order>([])
        .when_fn(|order| {
            order.ship(domain::ShipOrder {
                order_id: "o-9".into(),
                carrier: "ups".into(),
            })
        })
        .then_error_matches(|e| *e == OrderError::NotPlaced);
}

#[test]
#[should_panic(expected = "the command produced other events than expected")]
fn given_when_then_fails_on_other_events() {
    given::<Order>([placed().into()])
        .when(domain::ShipOrder {
            order_id: "o-1".into(),
            carrier: "ups".into(),
        })
        .then([shipped()]); // tracking number differs: UPS-o-1
}

#[test]
#[should_panic(expected = "but the command failed")]
fn given_when_then_fails_when_an_error_comes_instead_of_events() {
    given::<Order>([])
        .when(domain::CancelOrder {
            order_id: "o".into(),
            reason: String::new(),
        })
        .then([shipped()]);
}

// ---- saved envelopes carry the events as recorded ----------------------------------------------

/// An event whose JSON leaves a field out: what tells a recorded event from a parsed one.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Counted {
    pub count: u64,
    #[serde(skip)]
    pub note: Option<String>,
}

#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "Tally", events(Counted))]
pub struct Tally {
    count: u64,
}

impl Apply<Counted> for Tally {
    fn apply(&mut self, event: &Counted) {
        self.count = event.count;
    }
}

/// Decoding a just-saved envelope clones the recorded event (the JSON is not parsed: the
/// skipped field survives); an envelope read back from the store is parsed.
#[tokio::test]
async fn saved_envelopes_decode_to_the_recorded_event_without_parsing() {
    let store = InMemoryEventStore::new();
    let tallies = CommandService::<Tally>::new(store.clone());
    let recorded = Counted {
        count: 1,
        note: Some("in process only".into()),
    };
    let event = recorded.clone();
    let outcome = tallies
        .execute_with("t-1", move |_| {
            Ok::<_, std::convert::Infallible>(vec![event.into()])
        })
        .await
        .unwrap();
    let saved = &outcome.events[0];
    assert_eq!(
        saved.decode::<TallyEvent>().unwrap(),
        recorded.clone().into()
    );
    // A clone of the envelope shares it.
    assert_eq!(
        saved.clone().decode::<TallyEvent>().unwrap(),
        recorded.clone().into()
    );
    assert_eq!(saved.payload.as_str(), r#"{"count":1}"#);

    let stored = store.load(&saved.stream, 1).await.unwrap();
    let parsed = Counted {
        count: 1,
        note: None,
    };
    assert_eq!(stored[0].decode::<TallyEvent>().unwrap(), parsed.into());
    assert_eq!(stored[0], *saved, "the same envelope otherwise");
}
