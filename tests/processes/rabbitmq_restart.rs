//! The broker restarted in the middle of a run (`rabbitmqctl stop_app`, `start_app`):
//! publishes fail with typed errors meanwhile, the relay waits and resumes, the consumer
//! group connects again, and every stored event arrives.
//!
//! A test binary of its own (test binaries run one after the other), so that stopping the
//! broker disturbs no other test. Needs `EVENTSOURCE_AMQP_URL` and a `rabbitmqctl` allowed to
//! stop and start the broker's application, on the node `RABBITMQ_NODENAME` names when set
//! (`.ci/run` starts `eventsource@localhost`); skipped visibly otherwise, unless
//! `EVENTSOURCE_REQUIRE_RABBITMQ=1`.
//!
//! The scenario is `common/broker_restart.rs`, the same for every broker; here is how
//! RabbitMQ goes down and comes back.

use eventsource_test_support::broker_restart;
use eventsource_test_support::servers;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use broker_restart::{Consuming, Handled, Outage, broker_restart};
use eventsource_runtime::bus::Subscribe;
use eventsource_runtime::rabbitmq::RabbitMqBus;
use eventsource_test_support::count_and_run;
use servers::Server;
use tokio::sync::watch;

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

/// The broker's application stopped (`rabbitmqctl stop_app`), started again a moment after.
struct RabbitMq {
    url: String,
    exchange: String,
    /// The group's queues, deleted at the end.
    queues: Vec<String>,
    guard: Option<StartAgainOnDrop>,
}

impl Outage for RabbitMq {
    type Bus = RabbitMqBus;

    const LABEL: &'static str = "broker restart";
    const FIRST_WITHIN: Duration = Duration::from_secs(60);
    const REST_WITHIN: Duration = Duration::from_secs(60);

    fn bus(&self) -> RabbitMqBus {
        RabbitMqBus::new(&self.url)
            .unwrap()
            .with_exchange(&self.exchange)
            .with_confirm_timeout(Duration::from_secs(2))
    }

    async fn consume(
        &self,
        bus: &RabbitMqBus,
        handled: Handled,
        stopped: watch::Receiver<bool>,
    ) -> Consuming {
        let group = bus
            .consumer_group("mailer")
            .retry_delays([Duration::from_millis(50)]);
        count_and_run!(group, handled, stopped)
    }

    async fn take_down(&mut self, _: &eventsource_runtime::store::InMemoryEventStore) {
        self.guard = Some(StartAgainOnDrop);
        assert!(rabbitmqctl(&["stop_app"]), "the broker stops");
    }

    async fn bring_back(&mut self) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = rabbitmqctl(&["start_app"]);
        let _ = rabbitmqctl(&["await_startup"]);
        assert!(started, "the broker starts again");
        self.guard = None;
    }

    async fn finish(self, _: &BTreeMap<uuid::Uuid, usize>) {
        // Clean up: the group's queues and the exchange.
        let connection =
            lapin::Connection::connect(&self.url, lapin::ConnectionProperties::default())
                .await
                .unwrap();
        let channel = connection.create_channel().await.unwrap();
        for queue in &self.queues {
            let _ = channel
                .queue_delete(
                    queue.as_str().into(),
                    lapin::options::QueueDeleteOptions::default(),
                )
                .await;
        }
        let _ = channel
            .exchange_delete(
                self.exchange.as_str().into(),
                lapin::options::ExchangeDeleteOptions::default(),
            )
            .await;
        let _ = connection.close(200, "clean".into()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_loses_nothing_and_the_relay_resumes() {
    let test = RabbitMq::LABEL;
    let Some(url) = Server::RabbitMq.address(test) else {
        return;
    };
    if !rabbitmqctl(&["status"]) {
        Server::RabbitMq.skip(test, "rabbitmqctl cannot reach the broker");
        return;
    }
    let exchange = format!("es-test-restart-{}", std::process::id());
    let bus = RabbitMqBus::new(&url).unwrap().with_exchange(&exchange);
    let group = bus.consumer_group("mailer");
    let queues = vec![
        group.queue().to_owned(),
        group.dead_letters().queue().to_owned(),
        format!("{}.retry.50ms", group.queue()),
    ];
    broker_restart(RabbitMq {
        url,
        exchange,
        queues,
        guard: None,
    })
    .await;
}
