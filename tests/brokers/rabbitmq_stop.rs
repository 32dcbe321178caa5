//! A graceful stop of a RabbitMQ consumer group with messages prefetched behind the one in
//! hand: what the next consumer gets, and how the trace reads (docs/brokers.md, "What a
//! graceful stop hands back").
//!
//! The broker comes from `EVENTSOURCE_AMQP_URL`; without it each test prints `skipped` and
//! passes, unless `EVENTSOURCE_REQUIRE_RABBITMQ=1`.

use crate::graceful_stop;

use std::time::Duration;

use eventsource_runtime::rabbitmq::{ConsumerGroup, RabbitMqBus};
use uuid::Uuid;

/// One test's broker: an exchange of its own, deleted with the group's queues at the end.
struct Broker {
    url: String,
    exchange: String,
}

impl Broker {
    fn open(test: &str) -> Option<Self> {
        let url = crate::servers::Server::RabbitMq.address(test)?;
        let exchange = format!("es-test-{test}-{}", Uuid::now_v7().simple());
        Some(Self { url, exchange })
    }

    fn bus(&self) -> RabbitMqBus {
        RabbitMqBus::new(&self.url)
            .expect("an AMQP URL")
            .with_exchange(&self.exchange)
            .with_confirm_timeout(Duration::from_secs(5))
    }

    /// The group under test: three messages handed over at once.
    fn group(&self, bus: &RabbitMqBus) -> ConsumerGroup {
        bus.consumer_group("mailer")
            .prefetch(3)
            .retry_delays([Duration::from_millis(50)])
    }

    async fn clean(self, group: &ConsumerGroup) {
        let live = group.queue().to_owned();
        let dead = group.dead_letters().queue().to_owned();
        let retry = format!("{live}.retry.50ms");
        crate::any_broker::delete_rabbitmq(&self.url, &self.exchange, &[&retry, &dead, &live])
            .await;
    }
}

impl graceful_stop::Group for ConsumerGroup {
    fn without_drain(self) -> Self {
        self.drain_on_stop(Duration::ZERO)
    }

    fn stopping_within(self, bound: Duration) -> Self {
        self.stop_timeout(bound)
    }
}

/// The group stopped while the first message is in its handler finishes that one and the
/// two it had prefetched; nothing comes back as a retry.
#[tokio::test]
async fn a_graceful_stop_handles_what_was_prefetched_so_nothing_comes_back_as_a_retry() {
    let Some(broker) = Broker::open("stop-drain") else {
        return;
    };
    let bus = broker.bus();
    graceful_stop::a_stop_handles_what_was_prefetched(bus.clone(), || broker.group(&bus)).await;
    let group = broker.group(&bus);
    broker.clean(&group).await;
}

/// With no drain window the two prefetched messages go back to the queue at once: RabbitMQ
/// hands them to the next consumer `redelivered`, so they read as retries (linked roots,
/// attempt 2); the two it never handed over stay first deliveries.
#[tokio::test]
async fn without_a_drain_window_the_prefetched_messages_come_back_as_redeliveries() {
    let Some(broker) = Broker::open("stop-zero") else {
        return;
    };
    let bus = broker.bus();
    graceful_stop::without_a_drain_window_the_prefetched_come_back_as_redeliveries(
        bus.clone(),
        || broker.group(&bus),
    )
    .await;
    let group = broker.group(&bus);
    broker.clean(&group).await;
}

/// A handler that never returns holds the stop no longer than the group's stop timeout;
/// its message, never acknowledged, comes to the next consumer with the rest.
#[tokio::test]
async fn a_handler_that_outlasts_the_stop_timeout_is_given_up_and_its_message_comes_again() {
    let Some(broker) = Broker::open("stop-timeout") else {
        return;
    };
    let bus = broker.bus();
    graceful_stop::a_stop_gives_up_a_handler_that_outlasts_the_stop_timeout(bus.clone(), || {
        broker.group(&bus)
    })
    .await;
    let group = broker.group(&bus);
    broker.clean(&group).await;
}
