//! The relay's lease under faults: relay `a`, in the namespace, holds it and publishes to a
//! nats-server of the scenario's own; relay `b` waits on the host; a consumer in the test
//! records every message it receives. Judged: every acknowledged append received, again
//! only after a takeover and at most a relay batch of them (at least once), in order; a
//! fault held at least `T` has `b` holding the lease within `5T/4` + its retry interval
//! (1 s) + takeover grace + 5 s of its start; both stop within 30 s of SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use eventsource_runtime::bus::{HandlerError, Subscribe as _};
use eventsource_runtime::event::EventEnvelope;
use eventsource_runtime::nats::NatsBus;
use eventsource_runtime::projection::checkpoint::CheckpointStore as _;
use eventsource_test_support::history::{
    Call, Delivery, Expectations, Handling, HistoryWriter, check,
};

use super::TIMEOUT;
use super::child::PROJECTION;
use super::child::consumer::BROKER;
use super::child::relay::RELAY_BATCH;
use super::groups::NatsServer;
use super::world::{Nemesis, Running, World, took};

/// The relay's name unless told otherwise: its lease's key.
const RELAY: &str = eventsource_runtime::relay::DEFAULT_NAME;

fn takeover_bound() -> Duration {
    TIMEOUT * 5 / 4 + Duration::from_millis(1_250) + Duration::from_secs(5)
}

/// Does `nemesis` to relay `a` for `hold`, then heals, and judges.
pub async fn run(index: u8, nemesis: Nemesis, hold: Duration) {
    let Some(mut world) = World::start(index).await else {
        return;
    };
    let port = 14_300 + u16::from(index);
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
    let holder = async || {
        checkpoints
            .lease_holder(RELAY)
            .await
            .ok()
            .flatten()
            .and_then(|holder| holder.application)
    };
    let mut a = world.start_child_with("relay", "a", true, nemesis, &env);
    a.wait_for(
        "a holds the relay's lease",
        Duration::from_secs(30),
        async || holder().await.as_deref() == Some("a"),
    )
    .await;
    let mut b = world.start_child_with("relay", "b", false, nemesis, &env);
    let db = &world.db;
    b.wait_for("b connects", Duration::from_secs(10), async || {
        db.connected("b").await
    })
    .await;

    let b_holds = async || holder().await.as_deref() == Some("b");
    let takeover = world
        .cut_off(nemesis, hold, &a, &mut b, takeover_bound(), b_holds)
        .await;

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
        "relay, {} held {hold:?} (T = {TIMEOUT:?}): {acknowledged} appends acknowledged; b \
         held the lease {} after it began; stopped after SIGTERM in {a_stop:?} (a) and \
         {b_stop:?} (b)",
        nemesis.name(),
        took(takeover),
    );
    world.end().await;
}
