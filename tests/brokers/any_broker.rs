//! What the tests written once for every broker drive: the runtime's three consumer groups
//! behind one name for the traits they share, and the cleanup of the
//! RabbitMQ and NATS destinations a test made (a Kafka test's topics stay, under a prefix
//! of its own).

use eventsource_runtime::bus::{RunnableGroup, Subscribe};
use eventsource_runtime::nats::async_nats::{self, jetstream};
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};

/// A broker's consumer group, as the shared tests drive it: the runtime's verbs of every
/// group, its handlers, and what a task of its own needs.
pub trait Group: RunnableGroup + Subscribe + Clone + Send + Sync + 'static {}

impl<G: RunnableGroup + Subscribe + Clone + Send + Sync + 'static> Group for G {}

/// Deletes `queues`, then `exchange`, from the RabbitMQ at `url`.
pub async fn delete_rabbitmq(url: &str, exchange: &str, queues: &[&str]) {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("the broker");
    let channel = connection.create_channel().await.expect("a channel");
    for queue in queues {
        let _ = channel
            .queue_delete((*queue).into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = channel
        .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
        .await;
    let _ = connection.close(200, "clean".into()).await;
}

/// Deletes a NATS bus's `stream`, its retry and dead-letter streams (their consumers go
/// with them), from the server at `url`.
pub async fn delete_nats_streams(url: &str, stream: &str) {
    let client = async_nats::connect(url).await.expect("the server");
    let js = jetstream::new(client);
    for suffix in ["", "_RETRY", "_DEAD"] {
        let _ = js.delete_stream(format!("{stream}{suffix}")).await;
    }
}
