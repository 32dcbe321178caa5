//! A split projection's health: each worker's state and lease, and every segment of the
//! projection (owner, epoch, checkpoint, lag, parked) in the report, printed and as JSON.

use std::sync::Arc;
use std::time::Duration;

use eventsource_runtime::event::NewEvent;
use eventsource_runtime::health::{
    ComponentHealth, ComponentState, HealthRegistry, Lag, LeaseState,
};
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::InMemoryCheckpointStore;
use eventsource_runtime::projection::segments::InMemorySegmentClaims;

use super::{seed, wait_for, worker};

fn owners(component: &ComponentHealth) -> Vec<Option<String>> {
    component.segments.iter().map(|s| s.owner.clone()).collect()
}

#[tokio::test]
async fn the_report_lists_every_segment_with_its_owner_epoch_checkpoint_and_lag() {
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    let claims = InMemorySegmentClaims::new();
    seed(&store, 20, 3).await;
    let a = worker(&store, &checkpoints, &claims, "a", 4);
    let b = worker(&store, &checkpoints, &claims, "b", 4);
    let health = HealthRegistry::new();
    health.watch(&*a);
    health.watch(&*b);

    // Not split yet: no segment, lag unknown, not ready.
    let before = health.report().await;
    let first = &before.components()[0];
    assert_eq!(first.state, ComponentState::Starting);
    assert_eq!((first.lease, first.lag), (LeaseState::NotHeld, None));
    assert!(first.segments.is_empty());
    assert!(!before.is_ready());

    let (stop_a, a_stopped) = tokio::sync::oneshot::channel::<()>();
    let (stop_b, b_stopped) = tokio::sync::oneshot::channel::<()>();
    let running_a = tokio::spawn({
        let a = Arc::clone(&a);
        async move { a.run(a_stopped).await }
    });
    let running_b = tokio::spawn({
        let b = Arc::clone(&b);
        async move { b.run(b_stopped).await }
    });
    let caught_up = async || {
        let report = health.report().await;
        report.is_ready()
            && report.components().iter().all(|c| {
                c.state == ComponentState::Following
                    && c.segments.len() == 4
                    && c.segments.iter().all(|s| s.lag == Some(Lag::ZERO))
            })
    };
    wait_for(
        "both workers following, caught up",
        Duration::from_secs(10),
        caught_up,
    )
    .await;

    let report = health.report().await;
    let head = store.head_position().await.unwrap().unwrap();
    for component in report.components() {
        assert_eq!(component.name, "Versions");
        assert_eq!(component.lease, LeaseState::Held, "two segments each");
        assert_eq!(component.lag, Some(Lag::ZERO));
        assert_eq!(component.parked, 0);
        let names: Vec<&str> = component
            .segments
            .iter()
            .map(|s| s.segment.as_str())
            .collect();
        assert_eq!(names, ["0/4", "1/4", "2/4", "3/4"]);
        for segment in &component.segments {
            assert!(segment.epoch >= 1, "{segment:?}");
            assert!(!segment.expired, "{segment:?}");
            assert!(
                segment.checkpoint > 0 && segment.checkpoint <= head,
                "{segment:?}"
            );
        }
    }
    let mut held = owners(&report.components()[0]);
    held.sort();
    let a_and_b = |n: &str| Some(n.to_owned());
    assert_eq!(
        held,
        [a_and_b("a"), a_and_b("a"), a_and_b("b"), a_and_b("b")]
    );
    assert_eq!(held.len(), 4);
    let printed = report.to_string();
    assert!(
        printed.contains("projection `Versions` segments:"),
        "{printed}"
    );
    assert!(printed.contains("  0/4     owner "), "{printed}");
    let json = serde_json::to_value(&report).unwrap();
    let segments = &json["components"][0]["segments"];
    assert_eq!(segments.as_array().map(Vec::len), Some(4), "{json}");
    assert_eq!(segments[0]["segment"], "0/4");
    assert!(segments[0]["epoch"].as_u64().unwrap() >= 1, "{json}");
    assert_eq!(segments[0]["lag"]["events"], 0, "{json}");

    // Both stopped: nothing held, every segment free; an event appended since waits in
    // its segment only.
    stop_a.send(()).unwrap();
    stop_b.send(()).unwrap();
    running_a.await.unwrap().unwrap();
    running_b.await.unwrap().unwrap();
    let stream = StreamId::new("Order", "o-late");
    let late = NewEvent::new("OrderPlaced", 1, serde_json::json!({ "n": 99 }));
    store
        .append(&stream, ExpectedVersion::NoStream, vec![late])
        .await
        .unwrap();
    let waiting = store.segment_of(&stream, 4).await.unwrap().to_string();
    let report = health.report().await;
    let a_now = &report.components()[0];
    assert_eq!(a_now.state, ComponentState::Stopped);
    assert_eq!(a_now.lease, LeaseState::NotHeld);
    assert!(
        owners(a_now).iter().all(Option::is_none),
        "released: {a_now:?}"
    );
    for segment in &a_now.segments {
        let lag = segment.lag.expect("asked");
        if segment.segment == waiting {
            assert_eq!(lag.events, head + 1 - segment.checkpoint, "{segment:?}");
        } else {
            assert_eq!(lag, Lag::ZERO, "nothing of {} waits", segment.segment);
        }
    }
    let furthest = a_now
        .segments
        .iter()
        .filter_map(|s| s.lag)
        .map(|l| l.events)
        .max();
    assert_eq!(a_now.lag.map(|lag| lag.events), furthest);
    assert!(a_now.lag.unwrap().events >= 1);
}
