//! The Kafka broker killed (SIGKILL) and started again in the middle of a run: publishes
//! fail with typed errors meanwhile, the relay waits and resumes, the consumer group
//! connects again by itself, and every stored event is handled (at least once).
//!
//! A test binary of its own (test binaries run one after the other), so that killing the
//! broker disturbs no other test. Needs `EVENTSOURCE_KAFKA_BROKERS` and a local Apache Kafka
//! node listening on its port (`java ... kafka.Kafka <server.properties>`, as `.ci/run`
//! starts it) that this test may kill and start again (same argv, same working directory,
//! output appended to `kafka.log` there). Skipped visibly otherwise, unless
//! `EVENTSOURCE_REQUIRE_KAFKA=1`: then it fails.

#[path = "../examples/domain/order.rs"]
mod domain;
#[path = "common/server_process.rs"]
mod server_process;
#[path = "common/servers.rs"]
mod servers;

use servers::Server;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::{Order, sample_order};
use eventsource_runtime::bus::{BusError, EventBus, HandlerError};
use eventsource_runtime::kafka::KafkaBus;
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::InMemoryCheckpointStore;
use eventsource_runtime::relay::Relay;
use server_process::{Recording, ServerProcess, StartAgainOnDrop, listening};

/// The whole scenario must end within this (the test fails otherwise).
const BUDGET: Duration = Duration::from_secs(85);
/// How long the broker stays down: longer than the delivery timeout, so that the relay's
/// publishes fail meanwhile.
const DOWN_FOR: Duration = Duration::from_secs(5);
/// The bus's delivery timeout.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(3);

// ---- the broker process -----------------------------------------------------------------

/// Whether `argv` is an Apache Kafka node's (`java ... kafka.Kafka <server.properties>`).
fn is_kafka_broker(argv: &[String]) -> bool {
    let program = argv[0].rsplit('/').next().unwrap_or_default();
    program == "java" && argv.iter().skip(1).any(|a| a == "kafka.Kafka")
}

/// The first `host:port` of `EVENTSOURCE_KAFKA_BROKERS`, resolved.
fn broker_addr(brokers: &str) -> Option<SocketAddr> {
    let first = brokers.trim_start_matches("kafka://").split(',').next()?;
    first.trim().to_socket_addrs().ok()?.next()
}

// ---- the scenario --------------------------------------------------------------------------

/// The broker to restart, or `None` (with a visible message) when there is none and none
/// is required.
fn broker() -> Option<(String, ServerProcess)> {
    let skip = |why: String| Server::Kafka.skip("kafka restart", &why);
    let brokers = Server::Kafka.address("kafka restart")?;
    let Some(addr) = broker_addr(&brokers) else {
        skip(format!("`{brokers}` is not a host:port"));
        return None;
    };
    if !listening(addr) {
        skip(format!("nothing listens on {addr}"));
        return None;
    }
    // Apache Kafka as `.ci/run` starts it writes its log in its working directory.
    match ServerProcess::find("kafka", is_kafka_broker, addr, None) {
        Ok(kafka) => Some((brokers, kafka)),
        Err(why) => {
            skip(why);
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_and_restarted_loses_nothing_and_the_relay_resumes() {
    let Some((brokers, kafka)) = broker() else {
        return;
    };
    let started = Instant::now();
    let scenario = tokio::time::timeout(BUDGET, scenario(brokers, kafka));
    match scenario.await {
        Ok(()) => eprintln!("kafka restart: done in {:?}", started.elapsed()),
        Err(_) => panic!("the scenario took longer than {BUDGET:?}"),
    }
}

async fn scenario(brokers: String, kafka: ServerProcess) {
    let prefix = format!("es-restart-{}", uuid::Uuid::now_v7().simple());
    let bus = KafkaBus::new(&brokers)
        .unwrap()
        .with_topic_prefix(&prefix)
        .with_delivery_timeout(DELIVERY_TIMEOUT);
    let group = bus
        .consumer_group("mailer")
        .bind("Order.*")
        .retry_delays([Duration::from_millis(50)]);
    // Every delivery, by event id: duplicates are allowed (at least once) and reported.
    let handled = Arc::new(Mutex::new(BTreeMap::<uuid::Uuid, usize>::new()));
    {
        let handled = Arc::clone(&handled);
        group.subscribe_fn("count", move |event| {
            let handled = Arc::clone(&handled);
            async move {
                *handled.lock().unwrap().entry(event.event_id).or_default() += 1;
                Ok::<(), HandlerError>(())
            }
        });
    }
    group.declare().await.unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let consuming = {
        let group = group.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            group
                .run(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await
        })
    };

    let store = InMemoryEventStore::new();
    let failures = Arc::new(Mutex::new(Vec::new()));
    let relayed = Recording {
        bus: bus.clone(),
        failures: Arc::clone(&failures),
    };
    let relay = Relay::new(
        Arc::new(store.clone()),
        Arc::new(InMemoryCheckpointStore::new()),
        Arc::new(relayed),
    )
    .poll_interval(Duration::from_millis(20))
    .backoff(Duration::from_millis(100), Duration::from_millis(500));
    let relaying = {
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            relay
                .run(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await
        })
    };

    let orders = CommandService::<Order>::new(store.clone());
    let wait_for = |n: usize, within: Duration| {
        let handled = Arc::clone(&handled);
        async move {
            let deadline = Instant::now() + within;
            while Instant::now() < deadline {
                if handled.lock().unwrap().len() >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!(
                "only {} of {n} events handled within {within:?}",
                handled.lock().unwrap().len()
            );
        }
    };

    // Before: the group joins (seconds) and handles the first ten.
    for i in 0..10 {
        orders
            .execute(sample_order(&format!("o-{i}"), "ada"))
            .await
            .unwrap();
    }
    wait_for(10, Duration::from_secs(30)).await;

    // During: the broker is killed; commands go on (the store is not the broker).
    let mut guard = StartAgainOnDrop(kafka.clone());
    let killing = kafka.clone();
    tokio::task::spawn_blocking(move || killing.kill())
        .await
        .unwrap()
        .expect("the broker is killed");
    let down_since = Instant::now();
    for i in 10..20 {
        orders
            .execute(sample_order(&format!("o-{i}"), "ada"))
            .await
            .unwrap();
    }
    // A publish meanwhile is a typed error, never a silent drop.
    let direct = store.read_all(1, 1).await.unwrap();
    let publishing = Instant::now();
    let refused = bus.publish(&direct).await;
    eprintln!(
        "kafka restart: a publish while down: {:?} after {:?}",
        refused.as_ref().err(),
        publishing.elapsed()
    );
    assert!(
        matches!(
            refused,
            Err(BusError::Unavailable(_) | BusError::Unconfirmed { .. })
        ),
        "{refused:?}"
    );
    if let Some(rest) = DOWN_FOR.checked_sub(down_since.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let restarting = kafka.clone();
    let restarted = tokio::task::spawn_blocking(move || {
        let mut kafka = restarting;
        kafka.start().map(|()| kafka)
    })
    .await
    .unwrap()
    .expect("the broker starts again");
    // Started: the guard now watches the new process.
    guard.0 = restarted;
    eprintln!(
        "kafka restart: broker down for {:?}, now pid {}",
        down_since.elapsed(),
        guard.0.pid
    );

    // After: more commands; everything arrives.
    for i in 20..30 {
        orders
            .execute(sample_order(&format!("o-{i}"), "ada"))
            .await
            .unwrap();
    }
    wait_for(30, Duration::from_secs(45)).await;
    let stored: BTreeSet<uuid::Uuid> = store
        .read_all(1, usize::MAX)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event_id)
        .collect();
    assert_eq!(stored.len(), 30);
    let deliveries = handled.lock().unwrap().clone();
    let ids: BTreeSet<uuid::Uuid> = deliveries.keys().copied().collect();
    let missing: Vec<_> = stored.difference(&ids).collect();
    let unknown: Vec<_> = ids.difference(&stored).collect();
    assert!(missing.is_empty(), "never handled: {missing:?}");
    assert!(unknown.is_empty(), "handled but never stored: {unknown:?}");
    let duplicates: usize = deliveries.values().map(|n| n - 1).sum();
    let failures = failures.lock().unwrap().clone();
    eprintln!(
        "kafka restart: {} events stored, all handled; {duplicates} duplicate deliveries; \
         relay publish failures while down: {failures:?}",
        stored.len()
    );
    assert!(
        !failures.is_empty(),
        "the relay saw the broker down (a typed error)"
    );
    assert!(
        failures
            .iter()
            .all(|kind| kind == "Unavailable" || kind == "Unconfirmed"),
        "only Unavailable / Unconfirmed: {failures:?}"
    );

    stop.send(true).unwrap();
    consuming.await.unwrap().unwrap();
    relaying.await.unwrap().unwrap();
    drop(guard);
}
