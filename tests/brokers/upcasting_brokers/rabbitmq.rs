//! RabbitMQ: an exchange and queues of the test's own, deleted when it passes.

use crate::servers::Server;
use std::time::Duration;

use eventsource_runtime::bus::{BusError, EventBus};
use eventsource_runtime::rabbitmq::{ConsumerGroup, RabbitMqBus};
use eventsource_runtime::testing::capture;
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};
use tokio::sync::oneshot;

use super::{Seen, check, published, until, v2_handler};

#[tokio::test]
async fn a_v2_consumer_handles_v1_messages_and_dead_letters_what_it_cannot_upcast() {
    let test = "rabbitmq::upcasting";
    let Some(url) = Server::RabbitMq.address(test) else {
        return;
    };
    let exchange = format!("es-test-upcast-{}", uuid::Uuid::now_v7().simple());
    let capture = capture();
    let bus = RabbitMqBus::new(&url)
        .expect("an AMQP URL")
        .with_exchange(&exchange)
        .with_confirm_timeout(Duration::from_secs(5));
    // Two deliveries in all.
    let group: ConsumerGroup = bus
        .consumer_group("thermostats")
        .retry_delays([Duration::from_millis(30)]);
    let seen = Seen::default();
    group.subscribe(v2_handler(&seen));
    group.declare().await.expect("the group's queues");
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
    let connection = Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect("the broker");
    let channel = connection.create_channel().await.expect("a channel");
    for queue in [
        group.queue().to_owned(),
        group.dead_letters().queue().to_owned(),
        format!("{}.retry.30ms", group.queue()),
    ] {
        let _ = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await;
    let _ = connection.close(200, "clean".into()).await;
}
