//! The NATS server killed (SIGKILL) and started again in the middle of a run: publishes
//! fail with typed errors meanwhile (one in flight when it died, as soon as the connection
//! is made again), the relay waits and resumes, the consumer group connects again by
//! itself, and every stored event is handled (at least once; duplicates are counted and
//! reported).
//!
//! A test binary of its own (test binaries run one after the other), so that killing the
//! server disturbs no other test of this crate. Needs `EVENTSOURCE_NATS_URL` and a local
//! `nats-server` process listening on its port that this test may kill and start again
//! (same argv, same working directory, in a process group of its own, its output appended
//! to `eventsource-nats-restart.log` in the temporary directory; when
//! `EVENTSOURCE_NATS_SERVER` names a binary, the process must run that one). Skipped visibly
//! otherwise, unless `EVENTSOURCE_REQUIRE_NATS=1`: then it fails. The server is down for
//! about three seconds; if the test fails meanwhile, a guard starts it again.
//!
//! Learned from the real server (nats-server 2.9.10, file storage): killed this way, it
//! forgets the acknowledgements of the seconds before (a consumer's state is written to
//! disk lazily, after the double ack was confirmed), so the events handled before the kill
//! are delivered again after the restart. Nothing is lost; the duplicates are reported,
//! and are why a group's handlers deduplicate (`bus::Idempotent`).

#[path = "../examples/domain/order.rs"]
mod domain;
#[path = "common/server_process.rs"]
mod server_process;
#[path = "common/servers.rs"]
mod servers;

use eventsource_runtime::nats::async_nats;
use servers::Server;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::{Order, sample_order};
use eventsource_runtime::bus::{BusError, EventBus, HandlerError};
use eventsource_runtime::nats::NatsBus;
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::InMemoryCheckpointStore;
use eventsource_runtime::relay::Relay;
use server_process::{Recording, ServerProcess, StartAgainOnDrop, listening};

/// The whole scenario must end within this (the test fails otherwise).
const BUDGET: Duration = Duration::from_secs(85);
/// How long the server stays down: longer than the acknowledgement timeout, so that the
/// relay's publishes fail meanwhile, and short, since other test runs may share the server.
const DOWN_FOR: Duration = Duration::from_secs(3);
/// The bus's acknowledgement timeout.
const ACK_TIMEOUT: Duration = Duration::from_secs(1);
/// The acknowledgement timeout of a publish in flight when the server dies: far longer
/// than the outage, so that waiting it out would show.
const PATIENT_ACK_TIMEOUT: Duration = Duration::from_secs(40);
/// How long JetStream waits for a group's acknowledgement before delivering again (one
/// lost with the connection comes back after this).
const ACK_WAIT: Duration = Duration::from_secs(5);

// ---- the server process -----------------------------------------------------------------

/// Whether `argv` is a nats-server's.
fn is_nats_server(argv: &[String]) -> bool {
    argv[0].rsplit('/').next().unwrap_or_default() == "nats-server"
}

/// The `host:port` of `EVENTSOURCE_NATS_URL` (`nats://[user:password@]host[:port]`, the
/// first of a list), resolved.
fn server_addr(url: &str) -> Option<SocketAddr> {
    let first = url.split(',').next()?.trim();
    let rest = first.split_once("://").map_or(first, |(_, rest)| rest);
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, hp)| hp);
    let host_port = host_port.trim_end_matches('/');
    let with_port = if host_port
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host_port.to_owned()
    } else {
        format!("{host_port}:4222")
    };
    with_port.to_socket_addrs().ok()?.next()
}

/// Where a restarted server's output goes (in the temporary directory).
const LOG: &str = "eventsource-nats-restart.log";

// ---- the scenario --------------------------------------------------------------------------

/// The server to restart, or `None` (with a visible message) when there is none and none
/// is required.
fn server() -> Option<(String, ServerProcess)> {
    let skip = |why: String| Server::Nats.skip("nats restart", &why);
    let url = Server::Nats.address("nats restart")?;
    let Some(addr) = server_addr(&url) else {
        skip("EVENTSOURCE_NATS_URL has no host:port".to_owned());
        return None;
    };
    if !listening(addr) {
        skip(format!("nothing listens on {addr}"));
        return None;
    }
    match ServerProcess::find(
        "nats-server",
        is_nats_server,
        addr,
        Some(std::env::temp_dir().join(LOG)),
    )
    .and_then(|server| {
        server.runs_binary_named_by("EVENTSOURCE_NATS_SERVER")?;
        Ok(server)
    }) {
        Ok(server) => Some((url, server)),
        Err(why) => {
            skip(why);
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_and_restarted_loses_nothing_and_the_relay_resumes() {
    let Some((url, server)) = server() else {
        return;
    };
    let started = Instant::now();
    let scenario = tokio::time::timeout(BUDGET, scenario(url, server));
    match scenario.await {
        Ok(()) => eprintln!("nats restart: done in {:?}", started.elapsed()),
        Err(_) => panic!("the scenario took longer than {BUDGET:?}"),
    }
}

async fn scenario(url: String, nats: ServerProcess) {
    let run = uuid::Uuid::now_v7().simple();
    let stream = format!("ES_TEST_RESTART_{run}");
    let bus = NatsBus::new(&url)
        .unwrap()
        .with_stream(&stream)
        .with_subject_prefix(format!("es-restart-{run}"))
        .with_ack_timeout(ACK_TIMEOUT);
    let group = bus
        .consumer_group("mailer")
        .bind("Order.*")
        .ack_wait(ACK_WAIT)
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

    // Before: the group handles the first ten.
    for i in 0..10 {
        orders
            .execute(sample_order(&format!("o-{i}"), "ada"))
            .await
            .unwrap();
    }
    wait_for(10, Duration::from_secs(20)).await;

    // A publish in flight when the server dies: sent to a frozen server, unacknowledged
    // when it is killed. It fails once the connection is made again (the acknowledgement
    // is lost with the old one), not after its long timeout.
    let patient = NatsBus::new(&url)
        .unwrap()
        .with_stream(&stream)
        .with_subject_prefix(format!("es-restart-{run}"))
        .with_ack_timeout(PATIENT_ACK_TIMEOUT);
    patient.declare().await.expect("connected");
    let mut guard = StartAgainOnDrop(nats.clone());
    nats.pause().expect("nats-server is paused");
    let in_flight = store.read_all(1, 1).await.unwrap();
    let mut in_flight = Box::pin(async move { patient.publish(&in_flight).await });
    let unanswered = tokio::time::timeout(Duration::from_millis(300), &mut in_flight).await;
    assert!(
        unanswered.is_err(),
        "a frozen server acknowledged: {unanswered:?}"
    );
    let in_flight = tokio::spawn(async move {
        let outcome = in_flight.await;
        (outcome, Instant::now())
    });

    // During: the server is killed; commands go on (the store is not the server).
    let killing = nats.clone();
    tokio::task::spawn_blocking(move || killing.kill())
        .await
        .unwrap()
        .expect("nats-server is killed");
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
        "nats restart: a publish while down: {:?} after {:?}",
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
    let restarting = nats.clone();
    let restarted = tokio::task::spawn_blocking(move || {
        let mut nats = restarting;
        nats.start().map(|()| nats)
    })
    .await
    .unwrap()
    .expect("nats-server starts again");
    let restarted_at = Instant::now();
    // Started: the guard now watches the new process.
    guard.0 = restarted;
    eprintln!(
        "nats restart: server down for {:?}, now pid {}",
        down_since.elapsed(),
        guard.0.pid
    );

    let (outcome, failed_at) = in_flight.await.unwrap();
    let waited_after_restart = failed_at.saturating_duration_since(restarted_at);
    eprintln!(
        "nats restart: the publish in flight: {:?}, {waited_after_restart:?} after the restart",
        outcome.as_ref().err()
    );
    assert!(
        matches!(outcome, Err(BusError::Unavailable(_))),
        "the publish in flight is unavailable: {outcome:?}"
    );
    assert!(
        waited_after_restart < PATIENT_ACK_TIMEOUT / 4,
        "the publish in flight failed {waited_after_restart:?} after the restart"
    );

    // After: more commands; everything arrives.
    for i in 20..30 {
        orders
            .execute(sample_order(&format!("o-{i}"), "ada"))
            .await
            .unwrap();
    }
    wait_for(30, Duration::from_secs(40)).await;
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
    // Which commands' events came more than once: before, during or after the outage.
    let all = store.read_all(1, usize::MAX).await.unwrap();
    let twice: Vec<u64> = all
        .iter()
        .filter(|e| deliveries.get(&e.event_id).is_some_and(|n| *n > 1))
        .map(|e| e.position)
        .collect();
    let client = async_nats::connect(&url).await.expect("the server");
    let js = async_nats::jetstream::new(client);
    let in_stream = js
        .get_stream(&stream)
        .await
        .expect("the stream")
        .info()
        .await
        .expect("its state")
        .state
        .messages;
    let failures = failures.lock().unwrap().clone();
    eprintln!(
        "nats restart: {} events stored, all handled; {in_stream} messages in the stream; \
         {duplicates} duplicate deliveries (store positions {twice:?}); \
         relay publish failures while down: {failures:?}",
        stored.len()
    );
    assert!(
        !failures.is_empty(),
        "the relay saw the server down (a typed error)"
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
    // Clean up: the run's streams (their consumers go with them).
    for suffix in ["", "_RETRY", "_DEAD"] {
        let _ = js.delete_stream(format!("{stream}{suffix}")).await;
    }
    drop(guard);
}
