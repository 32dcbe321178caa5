//! What the tests written once for every broker drive: the runtime's three consumer groups
//! behind one small trait over the runtime's [`Subscribe`] (the orphan rule allows it in this binary, as it does
//! `graceful_stop::Group`), a group running in a task of its own, and the cleanup of the
//! RabbitMQ and NATS destinations a test made (a Kafka test's topics stay, under a prefix
//! of its own).

use std::future::Future;

use eventsource_runtime::bus::{BusError, Subscribe};
use eventsource_runtime::nats::async_nats::{self, jetstream};
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};
use tokio::sync::oneshot;

/// A broker's consumer group, as the shared tests drive it.
pub trait Group: Subscribe + Clone + Send + Sync + 'static {
    /// Declares what the group needs on the broker.
    fn declare(&self) -> impl Future<Output = Result<(), BusError>> + Send;
    /// Runs the group until `stop` resolves, then stops it gracefully.
    fn run(self, stop: oneshot::Receiver<()>) -> impl Future<Output = Result<(), BusError>> + Send;
}

macro_rules! group {
    ($group:ty) => {
        impl Group for $group {
            async fn declare(&self) -> Result<(), BusError> {
                <$group>::declare(self).await
            }
            async fn run(self, stop: oneshot::Receiver<()>) -> Result<(), BusError> {
                <$group>::run(&self, async move {
                    let _ = stop.await;
                })
                .await
            }
        }
    };
}
group!(eventsource_runtime::rabbitmq::ConsumerGroup);
group!(eventsource_runtime::nats::ConsumerGroup);
group!(eventsource_runtime::kafka::ConsumerGroup);

/// A consumer group running in a task of its own until [`Running::stop`].
pub struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), BusError>>,
}

impl Running {
    /// Declares `group` and runs it.
    pub async fn start<G: Group>(group: &G) -> Self {
        group.declare().await.expect("the group declared");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(group.clone().run(stopped));
        Self { stop, task }
    }

    /// Stops the group gracefully.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("joined").expect("stopped cleanly");
    }
}

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
