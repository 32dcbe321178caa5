//! The broker restarted in the middle of a run (`rabbitmqctl stop_app`, `start_app`):
//! publishes fail with typed errors meanwhile, the relay waits and resumes, the consumer
//! group connects again, and every stored event arrives.
//!
//! A test binary of its own (test binaries run one after the other), so that stopping the
//! broker disturbs no other test. Needs `EVENTSOURCE_AMQP_URL` and a `rabbitmqctl` allowed to
//! stop and start the broker's application (skipped visibly otherwise, unless
//! `EVENTSOURCE_REQUIRE_RABBITMQ=1`).

#[path = "../examples/domain/order.rs"]
mod domain;
#[path = "common/servers.rs"]
mod servers;

use servers::Server;
use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::{Order, sample_order};
use eventsource_runtime::bus::{BusError, EventBus, HandlerError};
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::InMemoryCheckpointStore;
use eventsource_runtime::rabbitmq::RabbitMqBus;
use eventsource_runtime::relay::Relay;

fn rabbitmqctl(args: &[&str]) -> bool {
    Command::new("rabbitmqctl")
        .args(args)
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Starts the broker's application again if the test fails while it is stopped, so that no
/// later test (or developer) finds the broker down.
struct StartAgainOnDrop;

impl Drop for StartAgainOnDrop {
    fn drop(&mut self) {
        let _ = rabbitmqctl(&["start_app"]);
        let _ = rabbitmqctl(&["await_startup"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_loses_nothing_and_the_relay_resumes() {
    let test = "broker restart";
    let Some(url) = Server::RabbitMq.address(test) else {
        return;
    };
    if !rabbitmqctl(&["status"]) {
        Server::RabbitMq.skip(test, "rabbitmqctl cannot reach the broker");
        return;
    }
    let exchange = format!("es-test-restart-{}", std::process::id());
    let bus = RabbitMqBus::new(&url)
        .unwrap()
        .with_exchange(&exchange)
        .with_confirm_timeout(Duration::from_secs(2));
    let group = bus
        .consumer_group("mailer")
        .retry_delays([Duration::from_millis(50)]);
    let handled = Arc::new(Mutex::new(BTreeSet::new()));
    {
        let handled = Arc::clone(&handled);
        group.subscribe_fn("count", move |event| {
            let handled = Arc::clone(&handled);
            async move {
                handled.lock().unwrap().insert(event.event_id);
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
    let relay = Relay::new(
        Arc::new(store.clone()),
        Arc::new(InMemoryCheckpointStore::new()),
        Arc::new(bus.clone()),
    )
    .poll_interval(Duration::from_millis(20))
    .backoff(Duration::from_millis(50), Duration::from_millis(500));
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
    let wait_for = |n: usize| {
        let handled = Arc::clone(&handled);
        async move {
            for _ in 0..3000 {
                if handled.lock().unwrap().len() >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("only {} of {n} handled", handled.lock().unwrap().len());
        }
    };
    for i in 0..10 {
        orders
            .execute(sample_order(&format!("o-{i}"), "ada"))
            .await
            .unwrap();
    }
    wait_for(10).await;

    let restart_guard = StartAgainOnDrop;
    assert!(rabbitmqctl(&["stop_app"]), "the broker stops");
    for i in 10..20 {
        orders
            .execute(sample_order(&format!("o-{i}"), "ada"))
            .await
            .unwrap();
    }
    // Meanwhile a publish is a typed error, never a silent drop.
    let direct = store.read_all(1, 1).await.unwrap();
    assert!(matches!(
        bus.publish(&direct).await,
        Err(BusError::Unavailable(_) | BusError::Unconfirmed { .. })
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = rabbitmqctl(&["start_app"]);
    let _ = rabbitmqctl(&["await_startup"]);
    assert!(started, "the broker starts again");
    drop(restart_guard);

    wait_for(20).await;
    let stored: BTreeSet<_> = store
        .read_all(1, usize::MAX)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event_id)
        .collect();
    assert_eq!(
        *handled.lock().unwrap(),
        stored,
        "every stored event arrived"
    );

    stop.send(true).unwrap();
    consuming.await.unwrap().unwrap();
    relaying.await.unwrap().unwrap();
    // Clean up: the group's queues and the exchange.
    let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    for queue in [
        group.queue().to_owned(),
        group.dead_letters().queue().to_owned(),
        format!("{}.retry.50ms", group.queue()),
    ] {
        let _ = channel
            .queue_delete(queue.into(), lapin::options::QueueDeleteOptions::default())
            .await;
    }
    let _ = channel
        .exchange_delete(
            exchange.as_str().into(),
            lapin::options::ExchangeDeleteOptions::default(),
        )
        .await;
    let _ = connection.close(200, "clean".into()).await;
}
