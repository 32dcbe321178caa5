//! The relay under faults: relay `a`, in the namespace, holds the relay's lease and
//! publishes to a nats-server of the scenario's own; relay `b` waits on the host; a consumer
//! in the test records every message it receives. Judged: every acknowledged append
//! received, in order; again only after a takeover and at most a relay batch of them (at
//! least once); both stop within 30 s of SIGTERM.
//!
//! - Cut off from everything ([`run`]): a fault held at least `T` has `b` holding the lease
//!   within `5T/4` + its retry interval (1 s) + takeover grace + 5 s of its start.
//! - Cut off from its broker only ([`run_from_broker`]): `a` keeps its lease (its database
//!   answers) and says its publishes fail within its acknowledgement timeout (`T`) + 5 s;
//!   after the heal it publishes what waited within `T` (an acknowledgement's wait) + `T`
//!   (its longest backoff) + the fault's length (TCP's retransmissions back off as long) +
//!   5 s; `b` never takes over; JetStream's deduplication keeps each event to one message.

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventsource_runtime::bus::{HandlerError, Subscribe as _};
use eventsource_runtime::event::EventEnvelope;
use eventsource_runtime::nats::NatsBus;
use eventsource_runtime::postgres::PostgresCheckpointStore;
use eventsource_runtime::projection::checkpoint::CheckpointStore as _;
use eventsource_test_support::history::{
    Call, Delivery, Expectations, Handling, HistoryWriter, check, wall_clock_ms,
};
use eventsource_test_support::netns::Fault;

use super::TIMEOUT;
use super::child::PROJECTION;
use super::child::consumer::BROKER;
use super::child::relay::RELAY_BATCH;
use super::groups::NatsServer;
use super::world::{Nemesis, Process, Running, World, took, waiting_since};

/// The relay's name unless told otherwise: its lease's key.
const RELAY: &str = eventsource_runtime::relay::DEFAULT_NAME;

/// What the relay's runner logs each time a publish fails and it will try again.
const RETRYING: &str = "projection runner: attempt failed; retrying";

fn takeover_bound() -> Duration {
    TIMEOUT * 5 / 4 + Duration::from_millis(1_250) + Duration::from_secs(5)
}

/// Does `nemesis` to relay `a` for `hold`, then heals, and judges.
pub async fn run(index: u8, nemesis: Nemesis, hold: Duration) {
    let Some(mut scene) = Scene::start(index, nemesis).await else {
        return;
    };
    let checkpoints = scene.world.checkpoints();
    let b_holds = async || holder(&checkpoints).await.as_deref() == Some("b");
    let takeover = scene
        .world
        .cut_off(
            nemesis,
            hold,
            &scene.a,
            &mut scene.b,
            takeover_bound(),
            b_holds,
        )
        .await;
    let line = format!("b held the lease {} after it began", took(takeover));
    scene.end(nemesis, hold, &line).await;
}

/// Does `fault` between relay `a` and its broker alone for `hold`, then heals, and judges.
pub async fn run_from_broker(index: u8, fault: Fault, hold: Duration) {
    let port = port(index);
    let nemesis = Nemesis::Server(fault, port);
    let Some(mut scene) = Scene::start(index, nemesis).await else {
        return;
    };
    let struck = scene.world.strike(nemesis, &scene.a);
    scene
        .a
        .wait_to_say(RETRYING, TIMEOUT + Duration::from_secs(5))
        .await;
    let said = struck.at.elapsed();
    let struck_at = struck.at;
    tokio::time::sleep_until((struck_at + hold).into()).await;
    scene.world.heal(struck, &scene.a);
    let healed = Instant::now();
    let healed_ms = wall_clock_ms();

    let dir = scene.world.history_dir().to_owned();
    let waited_published = async || waiting_since(&dir, healed_ms).is_empty();
    let published_within = TIMEOUT * 2 + hold + Duration::from_secs(5);
    scene
        .a
        .wait_for(
            "a publishes what waited for the heal",
            published_within,
            waited_published,
        )
        .await;
    let published = healed.elapsed();
    let checkpoints = scene.world.checkpoints();
    assert_eq!(
        holder(&checkpoints).await.as_deref(),
        Some("a"),
        "a, whose database answered throughout, keeps the relay's lease"
    );
    let line = format!(
        "a said its publishes failed {said:?} after it began, and published what waited \
         {published:?} after the heal"
    );
    scene.end(nemesis, hold, &line).await;
}

/// The scenario's nats-server, the consumer recording what it receives, relay `a` holding
/// the lease and relay `b` waiting.
struct Scene {
    world: World,
    server: NatsServer,
    consuming: Running<Result<(), eventsource_runtime::bus::BusError>>,
    a: Process,
    b: Process,
}

impl Scene {
    async fn start(index: u8, nemesis: Nemesis) -> Option<Self> {
        let world = World::start(index).await?;
        let port = port(index);
        let server = NatsServer::start(port, world.history_dir());
        let history = Arc::new(HistoryWriter::create(world.history_dir(), "consumer").unwrap());
        let group = NatsBus::new(&format!("nats://127.0.0.1:{port}"))
            .unwrap()
            .consumer_group("relayed");
        group.declare().await.unwrap();
        group.subscribe_fn(PROJECTION, move |event: EventEnvelope| {
            let history = Arc::clone(&history);
            async move {
                let handling = Handling::of(PROJECTION, &event);
                let started = history
                    .invoke(Call::HandleStart(handling))
                    .map_err(HandlerError::new)?;
                history.ok(&started).map_err(HandlerError::new)?;
                Ok::<(), HandlerError>(())
            }
        });
        let consuming = Running::spawn(|stopped| async move { group.run(stopped).await });

        let broker = format!("nats://{{host}}:{port}");
        let env = [(BROKER, broker.as_str())];
        let checkpoints = world.checkpoints();
        let mut a = world.start_child_with("relay", "a", true, nemesis, &env);
        a.wait_for(
            "a holds the relay's lease",
            Duration::from_secs(30),
            async || holder(&checkpoints).await.as_deref() == Some("a"),
        )
        .await;
        let mut b = world.start_child_with("relay", "b", false, nemesis, &env);
        let db = &world.db;
        b.wait_for("b connects", Duration::from_secs(10), async || {
            db.connected("b").await
        })
        .await;
        Some(Self {
            world,
            server,
            consuming,
            a,
            b,
        })
    }

    /// Waits for every acknowledged append to be received, stops everything, and judges.
    async fn end(self, nemesis: Nemesis, hold: Duration, line: &str) {
        let Self {
            mut world,
            server,
            consuming,
            a,
            mut b,
        } = self;
        let acknowledged = world.finish_appending_by_history(&mut b).await;
        let (a_stop, b_stop) = (a.stop(), b.stop());
        consuming.stop().await.unwrap();
        drop(server);

        let expectations = Expectations::new().handler(
            PROJECTION,
            Delivery::AtLeastOnce {
                window: RELAY_BATCH as u64,
            },
        );
        let report = check(&world.history("a", nemesis, Vec::new()), &expectations);
        report.assert_clean();
        println!(
            "relay, {} held {hold:?} (T = {TIMEOUT:?}): {acknowledged} appends acknowledged; \
             {line}; stopped after SIGTERM in {a_stop:?} (a) and {b_stop:?} (b)",
            nemesis.name(),
        );
        world.end().await;
    }
}

/// The port of scenario `index`'s nats-server.
fn port(index: u8) -> u16 {
    14_300 + u16::from(index)
}

/// The application name of the relay's lease holder, if any.
async fn holder(checkpoints: &PostgresCheckpointStore) -> Option<String> {
    checkpoints
        .lease_holder(RELAY)
        .await
        .ok()
        .flatten()
        .and_then(|holder| holder.application)
}
