//! Kafka: topics under a prefix of the test's own.

use crate::servers::Server;
use std::time::Duration;

use eventsource_runtime::bus::{BusError, EventBus};
use eventsource_runtime::kafka::{ConsumerGroup, KafkaBus};
use eventsource_runtime::testing::capture;
use tokio::sync::oneshot;

use super::{Seen, check, published, until, v2_handler};

#[tokio::test]
async fn a_v2_consumer_handles_v1_messages_and_dead_letters_what_it_cannot_upcast() {
    let test = "kafka::upcasting";
    let Some(brokers) = Server::Kafka.address(test) else {
        return;
    };
    let capture = capture();
    let bus = KafkaBus::new(&brokers)
        .expect("a Kafka address")
        .with_topic_prefix(format!("es-upcast-{}", uuid::Uuid::now_v7().simple()))
        .with_delivery_timeout(Duration::from_secs(10));
    // Two deliveries in all.
    let group: ConsumerGroup = bus
        .consumer_group("thermostats")
        .bind("Thermostat.*")
        .retry_delays([Duration::from_millis(100)]);
    let seen = Seen::default();
    group.subscribe(v2_handler(&seen));
    group.declare().await.expect("the group's topics");
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn({
        let group = group.clone();
        async move { group.run(async move { drop(stopped.await) }).await }
    });

    // The older producer publishes version 1 (a group's first join takes seconds).
    let messages = published();
    bus.publish(&[messages.0.clone(), messages.1.clone()])
        .await
        .expect("published");
    let dead = group.dead_letters();
    until("the v1 message is handled", 60, async || {
        !seen.lock().unwrap().is_empty()
    })
    .await;
    until("the other is dead-lettered", 60, async || {
        dead.count().await.unwrap() == 1
    })
    .await;
    let _ = stop.send(());
    let stopped: Result<(), BusError> = running.await.expect("joined");
    stopped.expect("stopped cleanly");

    let letters = dead.list(10).await.unwrap();
    check(&capture.spans(), &seen, &messages, &letters, 2);
}
