//! The NATS server killed (SIGKILL) and started again in the middle of a run: publishes
//! fail with typed errors meanwhile (one in flight when it died, as soon as the connection
//! is made again), the relay waits and resumes, the consumer group connects again by
//! itself, and every stored event is handled (at least once; duplicates are counted and
//! reported).
//!
//! A test binary of its own (test binaries run one after the other), so that killing the
//! server disturbs no other test of this crate. Needs `EVENTSOURCE_NATS_URL` and a local
//! `nats-server` process listening on its port that this test may kill and start again
//! (same argv, same working directory, in a process group of its own, its output appended
//! to `eventsource-nats-restart.log` in the temporary directory; when
//! `EVENTSOURCE_NATS_SERVER` names a binary, the process must run that one). Skipped visibly
//! otherwise, unless `EVENTSOURCE_REQUIRE_NATS=1`: then it fails. The server is down for
//! about three seconds; if the test fails meanwhile, a guard starts it again.
//!
//! Learned from the real server (nats-server 2.9.10, file storage): killed this way, it
//! forgets the acknowledgements of the seconds before (a consumer's state is written to
//! disk lazily, after the double ack was confirmed), so the events handled before the kill
//! are delivered again after the restart. Nothing is lost; the duplicates are reported,
//! and are why a group's handlers deduplicate (`bus::Idempotent`).
//!
//! The scenario is `common/broker_restart.rs`, the same for every broker; here is how the
//! NATS server goes down and comes back, with a publish in flight when it dies.

use eventsource_test_support::broker_restart;
use eventsource_test_support::server_process;
use eventsource_test_support::servers;

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::time::{Duration, Instant};

use broker_restart::{Consuming, Handled, Outage, broker_restart};
use eventsource_runtime::bus::{BusError, EventBus as _, PublishReport};
use eventsource_runtime::nats::{NatsBus, async_nats};
use eventsource_runtime::prelude::*;
use eventsource_test_support::count_and_run;
use server_process::{ServerProcess, StartAgainOnDrop, listening};
use servers::Server;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The whole scenario must end within this (the test fails otherwise).
const BUDGET: Duration = Duration::from_secs(85);
/// How long the server stays down: longer than the acknowledgement timeout, so that the
/// relay's publishes fail meanwhile, and short, since other test runs may share the server.
const DOWN_FOR: Duration = Duration::from_secs(3);
/// The bus's acknowledgement timeout.
const ACK_TIMEOUT: Duration = Duration::from_secs(1);
/// The acknowledgement timeout of a publish in flight when the server dies: far longer
/// than the outage, so that waiting it out would show.
const PATIENT_ACK_TIMEOUT: Duration = Duration::from_secs(40);
/// How long JetStream waits for a group's acknowledgement before delivering again (one
/// lost with the connection comes back after this).
const ACK_WAIT: Duration = Duration::from_secs(5);

// ---- the server process -----------------------------------------------------------------

/// Whether `argv` is a nats-server's.
fn is_nats_server(argv: &[String]) -> bool {
    argv[0].rsplit('/').next().unwrap_or_default() == "nats-server"
}

/// The `host:port` of `EVENTSOURCE_NATS_URL` (`nats://[user:password@]host[:port]`, the
/// first of a list), resolved.
fn server_addr(url: &str) -> Option<SocketAddr> {
    let first = url.split(',').next()?.trim();
    let rest = first.split_once("://").map_or(first, |(_, rest)| rest);
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, hp)| hp);
    let host_port = host_port.trim_end_matches('/');
    let with_port = if host_port
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host_port.to_owned()
    } else {
        format!("{host_port}:4222")
    };
    with_port.to_socket_addrs().ok()?.next()
}

/// Where a restarted server's output goes (in the temporary directory).
const LOG: &str = "eventsource-nats-restart.log";

// ---- the outage ---------------------------------------------------------------------------

/// The server to restart, or `None` (with a visible message) when there is none and none
/// is required.
fn server() -> Option<(String, ServerProcess)> {
    let skip = |why: String| Server::Nats.skip(Nats::LABEL, &why);
    let url = Server::Nats.address(Nats::LABEL)?;
    let Some(addr) = server_addr(&url) else {
        skip("EVENTSOURCE_NATS_URL has no host:port".to_owned());
        return None;
    };
    if !listening(addr) {
        skip(format!("nothing listens on {addr}"));
        return None;
    }
    match ServerProcess::find(
        "nats-server",
        is_nats_server,
        addr,
        Some(std::env::temp_dir().join(LOG)),
    )
    .and_then(|server| {
        server.runs_binary_named_by("EVENTSOURCE_NATS_SERVER")?;
        Ok(server)
    }) {
        Ok(server) => Some((url, server)),
        Err(why) => {
            skip(why);
            None
        }
    }
}

/// The server paused with a publish in flight, killed with SIGKILL, started again after
/// [`DOWN_FOR`].
struct Nats {
    url: String,
    stream: String,
    prefix: String,
    guard: StartAgainOnDrop,
    down_since: Option<Instant>,
    /// The publish in flight when the server died: its outcome, and when it came.
    in_flight: Option<JoinHandle<(Result<PublishReport, BusError>, Instant)>>,
}

impl Nats {
    fn bus_with(&self, ack_timeout: Duration) -> NatsBus {
        NatsBus::new(&self.url)
            .unwrap()
            .with_stream(&self.stream)
            .with_subject_prefix(&self.prefix)
            .with_ack_timeout(ack_timeout)
    }
}

impl Outage for Nats {
    type Bus = NatsBus;

    const LABEL: &'static str = "nats restart";
    const FIRST_WITHIN: Duration = Duration::from_secs(20);
    const REST_WITHIN: Duration = Duration::from_secs(40);

    fn bus(&self) -> NatsBus {
        self.bus_with(ACK_TIMEOUT)
    }

    async fn consume(
        &self,
        bus: &NatsBus,
        handled: Handled,
        stopped: watch::Receiver<bool>,
    ) -> Consuming {
        let group = bus
            .consumer_group("mailer")
            .bind("Order.*")
            .ack_wait(ACK_WAIT)
            .retry_delays([Duration::from_millis(50)]);
        count_and_run!(group, handled, stopped)
    }

    async fn take_down(&mut self, store: &InMemoryEventStore) {
        // A publish in flight when the server dies: sent to a frozen server, unacknowledged
        // when it is killed. It fails once the connection is made again (the
        // acknowledgement is lost with the old one), not after its long timeout.
        let patient = self.bus_with(PATIENT_ACK_TIMEOUT);
        patient.declare().await.expect("connected");
        self.guard.0.pause().expect("nats-server is paused");
        let in_flight = store.read_all(1, 1).await.unwrap();
        let mut in_flight = Box::pin(async move { patient.publish(&in_flight).await });
        let unanswered = tokio::time::timeout(Duration::from_millis(300), &mut in_flight).await;
        assert!(
            unanswered.is_err(),
            "a frozen server acknowledged: {unanswered:?}"
        );
        self.in_flight = Some(tokio::spawn(async move {
            let outcome = in_flight.await;
            (outcome, Instant::now())
        }));
        let killing = self.guard.0.clone();
        tokio::task::spawn_blocking(move || killing.kill())
            .await
            .unwrap()
            .expect("nats-server is killed");
        self.down_since = Some(Instant::now());
    }

    async fn bring_back(&mut self) {
        let down_since = self.down_since.expect("taken down");
        if let Some(rest) = DOWN_FOR.checked_sub(down_since.elapsed()) {
            tokio::time::sleep(rest).await;
        }
        let restarting = self.guard.0.clone();
        let restarted = tokio::task::spawn_blocking(move || {
            let mut nats = restarting;
            nats.start().map(|()| nats)
        })
        .await
        .unwrap()
        .expect("nats-server starts again");
        let restarted_at = Instant::now();
        // Started: the guard now watches the new process.
        self.guard.0 = restarted;
        eprintln!(
            "{}: server down for {:?}, now pid {}",
            Self::LABEL,
            down_since.elapsed(),
            self.guard.0.pid
        );
        let in_flight = self.in_flight.take().expect("a publish in flight");
        let (outcome, failed_at) = in_flight.await.unwrap();
        let waited_after_restart = failed_at.saturating_duration_since(restarted_at);
        eprintln!(
            "{}: the publish in flight: {:?}, {waited_after_restart:?} after the restart",
            Self::LABEL,
            outcome.as_ref().err()
        );
        assert!(
            matches!(outcome, Err(BusError::Unavailable(_))),
            "the publish in flight is unavailable: {outcome:?}"
        );
        assert!(
            waited_after_restart < PATIENT_ACK_TIMEOUT / 4,
            "the publish in flight failed {waited_after_restart:?} after the restart"
        );
    }

    async fn finish(self, _: &BTreeMap<uuid::Uuid, usize>) {
        let client = async_nats::connect(&self.url).await.expect("the server");
        let js = async_nats::jetstream::new(client);
        let in_stream = js
            .get_stream(&self.stream)
            .await
            .expect("the stream")
            .info()
            .await
            .expect("its state")
            .state
            .messages;
        eprintln!("{}: {in_stream} messages in the stream", Self::LABEL);
        // Clean up: the run's streams (their consumers go with them).
        for suffix in ["", "_RETRY", "_DEAD"] {
            let _ = js.delete_stream(format!("{}{suffix}", self.stream)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_and_restarted_loses_nothing_and_the_relay_resumes() {
    let Some((url, server)) = server() else {
        return;
    };
    let run = uuid::Uuid::now_v7().simple();
    let outage = Nats {
        url,
        stream: format!("ES_TEST_RESTART_{run}"),
        prefix: format!("es-restart-{run}"),
        guard: StartAgainOnDrop(server),
        down_since: None,
        in_flight: None,
    };
    let started = Instant::now();
    match tokio::time::timeout(BUDGET, broker_restart(outage)).await {
        Ok(()) => eprintln!("{}: done in {:?}", Nats::LABEL, started.elapsed()),
        Err(_) => panic!("the scenario took longer than {BUDGET:?}"),
    }
}
