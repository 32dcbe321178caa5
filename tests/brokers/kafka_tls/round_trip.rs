//! Over TLS and over SASL_SSL: the relay publishes stored events, a consumer group handles
//! every one of them (counted by id), and the dead-letter tools count, list, requeue and
//! purge what a handler refused.

use super::listeners::{KafkaTls, Listener};
use crate::domain::{Order, sample_order};

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventsource_runtime::bus::{EventBus, HandlerError};
use eventsource_runtime::kafka::ConsumerGroup;
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::InMemoryCheckpointStore;
use eventsource_runtime::relay::Relay;
use eventsource_test_support::groups::Running;
use uuid::Uuid;

/// Waits (up to 60 s: a group's first join takes seconds) until `done` holds.
async fn until(what: &str, done: impl FnMut() -> bool) {
    eventsource_test_support::groups::until(what, Duration::from_secs(60), done).await;
}

/// Waits until the group's dead letters number `count`.
async fn dead_letters_reach(group: &ConsumerGroup, count: u64) {
    for _ in 0..120 {
        if group.dead_letters().count().await.expect("counted") == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the dead letters never numbered {count}");
}

/// Stores an order for each of `ids` (no bus: the relay publishes); their event ids.
async fn store_orders(store: &InMemoryEventStore, ids: &[&str]) -> Vec<Uuid> {
    let orders = CommandService::<Order>::new(store.clone());
    let mut events = Vec::new();
    for id in ids {
        let outcome = orders.execute(sample_order(id, "ada")).await.unwrap();
        assert!(outcome.publish.is_none(), "published by the relay only");
        events.extend(outcome.events.iter().map(|e| e.event_id));
    }
    events
}

/// Relay -> consumer group -> dead letters over `listener`: every stored event is
/// handled once, by id; those of the order the handler fails on are dead-lettered,
/// listed, moved back and handled; a later one is purged.
async fn relay_group_and_dead_letters(listener: Listener) {
    let test = format!("round_trip_{listener:?}");
    let Some(kafka) = KafkaTls::open(&test) else {
        return;
    };
    let bus = kafka.bus(listener, "round-trip");
    let group = bus
        .consumer_group("mailer")
        .bind("Order.*")
        .retry_delays([]);
    let handled: Arc<Mutex<Vec<Uuid>>> = Arc::default();
    let failing: Arc<Mutex<HashSet<String>>> = Arc::default();
    {
        let (handled, failing) = (Arc::clone(&handled), Arc::clone(&failing));
        group.subscribe_fn("count", move |event: EventEnvelope| {
            let refused = failing.lock().unwrap().contains(event.aggregate_id());
            if !refused {
                handled.lock().unwrap().push(event.event_id);
            }
            async move {
                if refused {
                    return Err(HandlerError::new("refused by the test"));
                }
                Ok(())
            }
        });
    }
    failing.lock().unwrap().insert("o-2".to_owned());
    let running = Running::start(&group).await;

    let store = InMemoryEventStore::new();
    let handled_ids = store_orders(&store, &["o-1", "o-3"]).await;
    let dead_ids = store_orders(&store, &["o-2"]).await;
    let relay = Relay::new(
        Arc::new(store.clone()),
        Arc::new(InMemoryCheckpointStore::new()),
        Arc::new(bus.clone()) as Arc<dyn EventBus>,
    );
    let stored = u64::try_from(handled_ids.len() + dead_ids.len()).unwrap();
    let reached = tokio::time::timeout(Duration::from_secs(60), relay.run_until_caught_up())
        .await
        .expect("the relay caught up in time")
        .expect("published over TLS");
    assert_eq!(reached, stored);

    until("every event handled or dead-lettered", || {
        handled.lock().unwrap().len() == handled_ids.len()
    })
    .await;
    dead_letters_reach(&group, dead_ids.len() as u64).await;
    let mut seen = handled.lock().unwrap().clone();
    seen.sort_unstable();
    let mut expected = handled_ids.clone();
    expected.sort_unstable();
    assert_eq!(seen, expected, "each event once, by id");

    // Listed: the refused order's events, with the handler and its error.
    let listed = group.dead_letters().list(10).await.expect("listed");
    let mut letters: Vec<Uuid> = listed
        .iter()
        .map(|entry| {
            let letter = entry.as_failed().expect("a failed letter");
            assert_eq!(letter.handler, "count");
            assert!(letter.error.contains("refused by the test"), "{letter:?}");
            letter.message.message_id
        })
        .collect();
    letters.sort_unstable();
    let mut expected = dead_ids.clone();
    expected.sort_unstable();
    assert_eq!(letters, expected);

    // Moved back once the handler takes them: handled, none left.
    failing.lock().unwrap().clear();
    let moved = group.dead_letters().requeue().await.expect("moved back");
    assert_eq!(moved, dead_ids.len());
    until("the moved-back events handled", || {
        handled.lock().unwrap().len() == handled_ids.len() + dead_ids.len()
    })
    .await;
    dead_letters_reach(&group, 0).await;

    // Another refused order, published by the relay from its checkpoint: purged.
    failing.lock().unwrap().insert("o-4".to_owned());
    let purged_ids = store_orders(&store, &["o-4"]).await;
    let reached = tokio::time::timeout(Duration::from_secs(60), relay.run_until_caught_up())
        .await
        .expect("the relay caught up in time")
        .expect("published over TLS");
    assert_eq!(reached, stored + purged_ids.len() as u64);
    dead_letters_reach(&group, purged_ids.len() as u64).await;
    running.stop().await;
    let purged = group.dead_letters().purge().await.expect("purged");
    assert_eq!(purged, purged_ids.len() as u64);
    assert_eq!(group.dead_letters().count().await.expect("counted"), 0);
    assert!(
        group
            .dead_letters()
            .list(10)
            .await
            .expect("listed")
            .is_empty()
    );
    let handled = handled.lock().unwrap();
    assert_eq!(handled.len(), handled_ids.len() + dead_ids.len());
    assert!(
        !handled.iter().any(|id| purged_ids.contains(id)),
        "purged, not handled"
    );
}

#[tokio::test]
async fn the_relay_a_group_and_the_dead_letter_tools_work_over_tls() {
    relay_group_and_dead_letters(Listener::Tls).await;
}

#[tokio::test]
async fn the_relay_a_group_and_the_dead_letter_tools_work_over_sasl_ssl() {
    relay_group_and_dead_letters(Listener::SaslSsl).await;
}
