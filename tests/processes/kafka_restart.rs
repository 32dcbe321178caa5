//! The Kafka broker killed (SIGKILL) and started again in the middle of a run: publishes
//! fail with typed errors meanwhile, the relay waits and resumes, the consumer group
//! connects again by itself, and every stored event is handled (at least once).
//!
//! A test binary of its own (test binaries run one after the other), so that killing the
//! broker disturbs no other test. Needs `EVENTSOURCE_KAFKA_BROKERS` and a local Apache Kafka
//! node listening on its port (`java ... kafka.Kafka <server.properties>`, as `.ci/run`
//! starts it) that this test may kill and start again (same argv, same working directory,
//! output appended to `kafka.log` there). Skipped visibly otherwise, unless
//! `EVENTSOURCE_REQUIRE_KAFKA=1`: then it fails. The scenario is `common/broker_restart.rs`,
//! the same for every broker; here is how Kafka goes down and comes back.

use eventsource_test_support::broker_restart;
use eventsource_test_support::server_process;
use eventsource_test_support::servers;

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::time::{Duration, Instant};

use broker_restart::{Consuming, Handled, Outage, broker_restart};
use eventsource_runtime::kafka::KafkaBus;
use eventsource_runtime::prelude::*;
use eventsource_test_support::count_and_run;
use server_process::{ServerProcess, StartAgainOnDrop, listening};
use servers::Server;
use tokio::sync::watch;

/// The whole scenario must end within this (the test fails otherwise).
const BUDGET: Duration = Duration::from_secs(85);
/// How long the broker stays down: longer than the delivery timeout, so that the relay's
/// publishes fail meanwhile.
const DOWN_FOR: Duration = Duration::from_secs(5);
/// The bus's delivery timeout.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(3);

// ---- the broker process -----------------------------------------------------------------

/// Whether `argv` is an Apache Kafka node's (`java ... kafka.Kafka <server.properties>`).
fn is_kafka_broker(argv: &[String]) -> bool {
    let program = argv[0].rsplit('/').next().unwrap_or_default();
    program == "java" && argv.iter().skip(1).any(|a| a == "kafka.Kafka")
}

/// The first `host:port` of `EVENTSOURCE_KAFKA_BROKERS`, resolved.
fn broker_addr(brokers: &str) -> Option<SocketAddr> {
    let first = brokers.trim_start_matches("kafka://").split(',').next()?;
    first.trim().to_socket_addrs().ok()?.next()
}

/// The broker to restart, or `None` (with a visible message) when there is none and none
/// is required.
fn broker() -> Option<(String, ServerProcess)> {
    let skip = |why: String| Server::Kafka.skip(Kafka::LABEL, &why);
    let brokers = Server::Kafka.address(Kafka::LABEL)?;
    let Some(addr) = broker_addr(&brokers) else {
        skip(format!("`{brokers}` is not a host:port"));
        return None;
    };
    if !listening(addr) {
        skip(format!("nothing listens on {addr}"));
        return None;
    }
    // Apache Kafka as `.ci/run` starts it writes its log in its working directory.
    match ServerProcess::find("kafka", is_kafka_broker, addr, None) {
        Ok(kafka) => Some((brokers, kafka)),
        Err(why) => {
            skip(why);
            None
        }
    }
}

// ---- the outage ---------------------------------------------------------------------------

/// The broker killed with SIGKILL, started again after [`DOWN_FOR`].
struct Kafka {
    brokers: String,
    prefix: String,
    guard: StartAgainOnDrop,
    down_since: Option<Instant>,
}

impl Outage for Kafka {
    type Bus = KafkaBus;

    const LABEL: &'static str = "kafka restart";
    // The group's first join takes seconds.
    const FIRST_WITHIN: Duration = Duration::from_secs(30);
    const REST_WITHIN: Duration = Duration::from_secs(45);

    fn bus(&self) -> KafkaBus {
        KafkaBus::new(&self.brokers)
            .unwrap()
            .with_topic_prefix(&self.prefix)
            .with_delivery_timeout(DELIVERY_TIMEOUT)
    }

    async fn consume(
        &self,
        bus: &KafkaBus,
        handled: Handled,
        stopped: watch::Receiver<bool>,
    ) -> Consuming {
        let group = bus
            .consumer_group("mailer")
            .bind("Order.*")
            .retry_delays([Duration::from_millis(50)]);
        count_and_run!(group, handled, stopped)
    }

    async fn take_down(&mut self, _: &InMemoryEventStore) {
        let killing = self.guard.0.clone();
        tokio::task::spawn_blocking(move || killing.kill())
            .await
            .unwrap()
            .expect("the broker is killed");
        self.down_since = Some(Instant::now());
    }

    async fn bring_back(&mut self) {
        let down_since = self.down_since.expect("taken down");
        if let Some(rest) = DOWN_FOR.checked_sub(down_since.elapsed()) {
            tokio::time::sleep(rest).await;
        }
        let restarting = self.guard.0.clone();
        let restarted = tokio::task::spawn_blocking(move || {
            let mut kafka = restarting;
            kafka.start().map(|()| kafka)
        })
        .await
        .unwrap()
        .expect("the broker starts again");
        // Started: the guard now watches the new process.
        self.guard.0 = restarted;
        eprintln!(
            "{}: broker down for {:?}, now pid {}",
            Self::LABEL,
            down_since.elapsed(),
            self.guard.0.pid
        );
    }

    async fn finish(self, _: &BTreeMap<uuid::Uuid, usize>) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_and_restarted_loses_nothing_and_the_relay_resumes() {
    let Some((brokers, kafka)) = broker() else {
        return;
    };
    let outage = Kafka {
        brokers,
        prefix: format!("es-restart-{}", uuid::Uuid::now_v7().simple()),
        guard: StartAgainOnDrop(kafka),
        down_since: None,
    };
    let started = Instant::now();
    match tokio::time::timeout(BUDGET, broker_restart(outage)).await {
        Ok(()) => eprintln!("{}: done in {:?}", Kafka::LABEL, started.elapsed()),
        Err(_) => panic!("the scenario took longer than {BUDGET:?}"),
    }
}
