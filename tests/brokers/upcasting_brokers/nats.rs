//! NATS JetStream: streams and a subject prefix of the test's own, deleted when it passes.

use crate::servers::Server;
use std::time::Duration;

use eventsource_runtime::bus::{BusError, EventBus};
use eventsource_runtime::nats::async_nats::jetstream;
use eventsource_runtime::nats::{ConsumerGroup, NatsBus};
use eventsource_runtime::testing::capture;
use tokio::sync::oneshot;

use super::{Seen, check, published, until, v2_handler};

#[tokio::test]
async fn a_v2_consumer_handles_v1_messages_and_dead_letters_what_it_cannot_upcast() {
    let test = "nats::upcasting";
    let Some(url) = Server::Nats.address(test) else {
        return;
    };
    let id = uuid::Uuid::now_v7().simple().to_string();
    let stream = format!("ES_TEST_upcast_{id}");
    let capture = capture();
    let bus = NatsBus::new(&url)
        .expect("a NATS URL")
        .with_stream(&stream)
        .with_subject_prefix(format!("es-test-upcast-{id}"))
        .with_ack_timeout(Duration::from_secs(5));
    // Two deliveries in all.
    let group: ConsumerGroup = bus
        .consumer_group("thermostats")
        .retry_delays([Duration::from_millis(30)]);
    let seen = Seen::default();
    group.subscribe(v2_handler(&seen));
    group.declare().await.expect("the group's consumers");
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn({
        let group = group.clone();
        async move { group.run(async move { drop(stopped.await) }).await }
    });

    // The older producer publishes version 1.
    let messages = published();
    bus.publish(&[messages.0.clone(), messages.1.clone()])
        .await
        .expect("published");
    let dead = group.dead_letters();
    until("the v1 message is handled", 10, async || {
        !seen.lock().unwrap().is_empty()
    })
    .await;
    until("the other is dead-lettered", 10, async || {
        dead.count().await.unwrap() == 1
    })
    .await;
    let _ = stop.send(());
    let stopped: Result<(), BusError> = running.await.expect("joined");
    stopped.expect("stopped cleanly");

    let letters = dead.list(10).await.unwrap();
    check(&capture.spans(), &seen, &messages, &letters, 2);

    // Clean up.
    let client = eventsource_runtime::nats::async_nats::connect(&url)
        .await
        .expect("the server");
    let js = jetstream::new(client);
    for suffix in ["", "_RETRY", "_DEAD"] {
        let _ = js.delete_stream(format!("{stream}{suffix}")).await;
    }
}
