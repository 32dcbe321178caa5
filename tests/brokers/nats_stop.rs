//! A graceful stop of a NATS JetStream consumer group with messages pulled behind the one in
//! hand: what the next consumer gets, and how the trace reads (docs/brokers.md, "What a
//! graceful stop hands back").
//!
//! The server comes from `EVENTSOURCE_NATS_URL`; without it each test prints `skipped` and
//! passes, unless `EVENTSOURCE_REQUIRE_NATS=1`.

use crate::graceful_stop;

use std::time::Duration;

use eventsource_runtime::nats::{ConsumerGroup, NatsBus};
use uuid::Uuid;

/// One test's server: streams and a subject prefix of its own, deleted at the end.
struct Server {
    url: String,
    stream: String,
    prefix: String,
}

impl Server {
    fn open(test: &str) -> Option<Self> {
        let url = crate::servers::Server::Nats.address(test)?;
        let id = Uuid::now_v7().simple().to_string();
        Some(Self {
            url,
            stream: format!("ES_TEST_{test}_{id}"),
            prefix: format!("es-test-{test}-{id}"),
        })
    }

    fn bus(&self) -> NatsBus {
        NatsBus::new(&self.url)
            .expect("a NATS URL")
            .with_stream(&self.stream)
            .with_subject_prefix(&self.prefix)
            .with_ack_timeout(Duration::from_secs(5))
    }

    /// The group under test: three messages pulled at once.
    fn group(&self, bus: &NatsBus) -> ConsumerGroup {
        bus.consumer_group("mailer")
            .prefetch(3)
            .retry_delays([Duration::from_millis(50)])
    }

    /// Deletes the test's streams (their consumers go with them).
    async fn clean(self) {
        crate::any_broker::delete_nats_streams(&self.url, &self.stream).await;
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
/// two it had pulled; nothing comes back as a retry.
#[tokio::test]
async fn a_graceful_stop_handles_what_was_pulled_so_nothing_comes_back_as_a_retry() {
    let Some(server) = Server::open("stop_drain") else {
        return;
    };
    let bus = server.bus();
    graceful_stop::a_stop_handles_what_was_prefetched(bus.clone(), || server.group(&bus)).await;
    server.clean().await;
}

/// With no drain window the two pulled messages are given back (`-NAK`) at once: JetStream
/// delivers them to the next consumer with `delivered` = 2, so they read as retries (linked
/// roots, attempt 2); the two it never delivered stay first deliveries.
#[tokio::test]
async fn without_a_drain_window_the_pulled_messages_come_back_as_redeliveries() {
    let Some(server) = Server::open("stop_zero") else {
        return;
    };
    let bus = server.bus();
    graceful_stop::without_a_drain_window_the_prefetched_come_back_as_redeliveries(
        bus.clone(),
        || server.group(&bus),
    )
    .await;
    server.clean().await;
}

/// A handler that never returns holds the stop no longer than the group's stop timeout;
/// its message, never acknowledged, comes to the next consumer with the rest once its ack
/// wait is over.
#[tokio::test]
async fn a_handler_that_outlasts_the_stop_timeout_is_given_up_and_its_message_comes_again() {
    let Some(server) = Server::open("stop_timeout") else {
        return;
    };
    let bus = server.bus();
    graceful_stop::a_stop_gives_up_a_handler_that_outlasts_the_stop_timeout(bus.clone(), || {
        server.group(&bus)
    })
    .await;
    server.clean().await;
}
