//! The scenarios: consumers killed, a relay killed, the broker killed, mid-stream.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{Bounds, Consumers, Process, Stored, relay_checkpoint, wait_for_checkpoint};
use crate::processes::{BrokerKind, Setup};
use crate::server_process::{ServerProcess, StartAgainOnDrop};

// ---- the scenarios ------------------------------------------------------------------------

/// A scenario's working directory: the producer's store (the outbox) and the consumers'
/// shared processed messages.
pub(super) struct Files {
    pub(super) dir: PathBuf,
    pub(super) store: String,
    pub(super) processed: String,
}

impl Files {
    pub(super) fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("es-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            store: format!("sqlite:{}", dir.join("orders.db").display()),
            processed: format!("sqlite:{}", dir.join("processed.db").display()),
            dir,
        }
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        // Kept after a failure: the processes' errors are there.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The consumer killed (SIGKILL) `kills` times in the middle of the stream, each time
/// after it handled a share of the orders, each time replaced by a new process: every
/// stored event is handled within `bounds.recovery` of the last kill.
pub fn consumers_killed_mid_stream_lose_nothing(
    kind: BrokerKind,
    orders: usize,
    kills: usize,
    bounds: Bounds,
) {
    let test = "faults-consumers";
    let Some(setup) = Setup::new(test, kind) else {
        return;
    };
    let started = Instant::now();
    let files = Files::new(test);
    let stored = setup.produce(&["--orders", &orders.to_string(), "--store", &files.store]);
    assert!(
        stored.contains(&format!("stored {orders} orders"))
            && stored.contains("published every stored event"),
        "{stored}"
    );
    let stored = Stored::read(&files.store);
    let placed = stored.placed.len();
    // Each consumer handles a share before it is killed; two shares are left for the last.
    let share = placed / (kills + 2);
    let mut consumers = Consumers::new(
        &setup,
        &files.dir,
        &["--slow-ms", "5", "--processed", &files.processed],
    );
    let mut last_kill = Instant::now();
    for kill in 1..=kills {
        consumers.start();
        let before = consumers.tally.placed_done(&stored);
        let took = consumers.wait_until(
            &format!("{test}: consumer {kill} handles {share} more orders"),
            &stored,
            bounds.progress,
            |tally| tally.placed_done(&stored) >= before + share,
        );
        consumers.kill();
        last_kill = Instant::now();
        let done = consumers.tally.placed_done(&stored);
        eprintln!(
            "{test}: consumer {kill} killed after {took:?}: {}",
            consumers.progress(&stored)
        );
        assert!(
            done < placed,
            "{test}: the kill landed after the stream ended ({})",
            consumers.progress(&stored)
        );
    }
    consumers.start();
    let total = stored.len();
    consumers.wait_until(
        &format!("{test}: the last consumer handles the rest"),
        &stored,
        bounds.recovery.saturating_sub(last_kill.elapsed()),
        |tally| tally.handled(&stored) == total,
    );
    let recovery = last_kill.elapsed();
    consumers.stop();
    consumers.check(test, &stored);
    eprintln!(
        "{test} ({kind:?}): {orders} orders, {kills} kills; every event handled {recovery:?} \
         after the last kill; {:?} in all",
        started.elapsed()
    );
    setup.clean();
}

/// The relay process killed (SIGKILL) twice while it publishes (one event per batch, so
/// the kill lands between two), then run again: what it published before its checkpoint
/// comes again (Kafka; NATS drops it within its duplicate window), nothing is lost.
pub fn a_relay_killed_mid_publish_loses_nothing(kind: BrokerKind, orders: usize, bounds: Bounds) {
    let test = "faults-relay";
    let Some(setup) = Setup::new(test, kind) else {
        return;
    };
    let started = Instant::now();
    let files = Files::new(test);
    let stored = setup.produce(&[
        "--orders",
        &orders.to_string(),
        "--store",
        &files.store,
        "--no-relay",
    ]);
    assert!(
        stored.contains(&format!("stored {orders} orders")),
        "{stored}"
    );
    let stored = Stored::read(&files.store);
    let mut consumers = Consumers::new(&setup, &files.dir, &["--processed", &files.processed]);
    consumers.start();

    let kills = 2;
    let mut last_kill = Instant::now();
    for kill in 1..=kills {
        // One event at a time: the kill lands between two.
        let relay = setup.command(
            "producer",
            "orders-relay",
            &[
                "--store",
                &files.store,
                "--relay-only",
                "--relay-batch",
                "1",
            ],
        );
        let mut relaying = Process::spawn(relay, &format!("relay-{kill}"), &files.dir);
        // Killed once its checkpoint passed this share of the stored events.
        let mark = stored.last * kill as u64 / (kills as u64 + 1);
        wait_for_checkpoint(test, &mut relaying, &files.store, mark, bounds.progress);
        relaying.kill();
        last_kill = Instant::now();
        let checkpoint = relay_checkpoint(&files.store);
        assert!(
            relaying.was_killed() && checkpoint < stored.last,
            "{test}: relay {kill} was to be killed mid-publish: {:?}, checkpoint {checkpoint} \
             of {}",
            relaying.status(),
            stored.last
        );
        consumers.pump(Duration::ZERO);
        eprintln!(
            "{test}: relay {kill} killed at checkpoint {checkpoint} of {}; {}",
            stored.last,
            consumers.progress(&stored)
        );
    }
    // Run again (whole batches): it publishes the rest and exits.
    let mut relaying = Process::spawn(
        setup.command(
            "producer",
            "orders-relay",
            &["--store", &files.store, "--relay-only"],
        ),
        "relay-last",
        &files.dir,
    );
    let status = relaying.wait_exit(bounds.recovery);
    assert!(
        status.is_some_and(|s| s.success()),
        "{test}: the last relay: {status:?}{}",
        relaying.errors()
    );
    let up_to = format!(
        "published every stored event, up to position {}",
        stored.last
    );
    assert!(relaying.seen.contains(&up_to), "{:?}", relaying.seen);
    let total = stored.len();
    consumers.wait_until(
        &format!("{test}: every event handled"),
        &stored,
        bounds.recovery.saturating_sub(last_kill.elapsed()),
        |tally| tally.handled(&stored) == total,
    );
    let recovery = last_kill.elapsed();
    consumers.stop();
    let verdict = consumers.check(test, &stored);
    assert_eq!(
        verdict.confirmations_again_after_kill, 0,
        "no consumer died"
    );
    eprintln!(
        "{test} ({kind:?}): {orders} orders, the relay killed {kills} times; every event \
         handled {recovery:?} after the last kill; {:?} in all",
        started.elapsed()
    );
    setup.clean();
}

/// The broker killed (SIGKILL) while the consumer handles the stream and the relay
/// publishes it, started again after `down_for`: the consumer (never restarted) and the
/// relay carry on by themselves, every stored event is handled within `bounds.recovery`
/// of the restart.
pub fn a_broker_killed_mid_stream_loses_nothing(
    kind: BrokerKind,
    broker: ServerProcess,
    orders: usize,
    down_for: Duration,
    bounds: Bounds,
) {
    let test = "faults-broker";
    let Some(setup) = Setup::new(test, kind) else {
        return;
    };
    let started = Instant::now();
    let files = Files::new(test);
    // First a share published by the producer itself: the consumer joins and handles it.
    let first = (orders / 5).max(1);
    let produced = setup.produce(&["--orders", &first.to_string(), "--store", &files.store]);
    assert!(
        produced.contains(&format!("stored {first} orders")),
        "{produced}"
    );
    let first_last = Stored::read(&files.store).last;
    let mut consumers = Consumers::new(
        &setup,
        &files.dir,
        &["--slow-ms", "5", "--processed", &files.processed],
    );
    consumers.start();
    let before = Stored::read(&files.store);
    consumers.wait_until(
        &format!("{test}: the consumer handles the first orders"),
        &before,
        bounds.progress,
        |tally| tally.handled(&before) >= 10,
    );
    // Then the rest, stored only, and published by a relay process (one event at a time)
    // while the consumer handles the stream.
    let produced = setup.produce(&[
        "--orders",
        &orders.to_string(),
        "--store",
        &files.store,
        "--no-relay",
    ]);
    assert!(
        produced.contains(&format!("stored {} orders", orders - first)),
        "{produced}"
    );
    let stored = Stored::read(&files.store);
    let placed = stored.placed.len();
    let mut relaying = Process::spawn(
        setup.command(
            "producer",
            "orders-relay",
            &[
                "--store",
                &files.store,
                "--relay-only",
                "--relay-batch",
                "1",
            ],
        ),
        "relay",
        &files.dir,
    );
    let mark = first_last + (stored.last - first_last) / 4;
    wait_for_checkpoint(test, &mut relaying, &files.store, mark, bounds.progress);

    let mut guard = StartAgainOnDrop(broker.clone());
    broker.kill().expect("the broker is killed");
    let killed_at = Instant::now();
    let relay_was_running = relaying.running();
    let checkpoint = relay_checkpoint(&files.store);
    consumers.pump(Duration::ZERO);
    assert!(
        consumers.tally.placed_done(&stored) < placed,
        "{test}: the broker was to be killed mid-stream ({})",
        consumers.progress(&stored)
    );
    assert!(
        relay_was_running && checkpoint < stored.last,
        "{test}: the broker was to be killed while the relay publishes: {:?}, checkpoint \
         {checkpoint} of {}",
        relaying.status(),
        stored.last
    );
    eprintln!(
        "{test}: broker killed ({}; the relay at {checkpoint} of {}); down for {down_for:?}",
        consumers.progress(&stored),
        stored.last
    );
    // The outage lasts `down_for` (the fault, not a wait for a state); the consumer's
    // output is read meanwhile.
    while killed_at.elapsed() < down_for {
        consumers.pump(Duration::from_millis(100));
    }
    let mut restarted = broker;
    restarted.start().expect("the broker starts again");
    guard.0 = restarted;
    let restarted_at = Instant::now();
    eprintln!(
        "{test}: broker down for {:?}, now pid {}",
        killed_at.elapsed(),
        guard.0.pid
    );

    let total = stored.len();
    consumers.wait_until(
        &format!("{test}: every event handled after the restart"),
        &stored,
        bounds.recovery,
        |tally| tally.handled(&stored) == total,
    );
    let recovery = restarted_at.elapsed();
    let status = relaying.wait_exit(bounds.recovery.saturating_sub(recovery));
    assert!(
        status.is_some_and(|s| s.success()),
        "{test}: the relay carries on after the restart and exits: {status:?}{}",
        relaying.errors()
    );
    let up_to = format!(
        "published every stored event, up to position {}",
        stored.last
    );
    assert!(relaying.seen.contains(&up_to), "{:?}", relaying.seen);
    consumers.stop();
    let verdict = consumers.check(test, &stored);
    assert_eq!(
        verdict.confirmations_again_after_kill, 0,
        "no consumer died"
    );
    eprintln!(
        "{test} ({kind:?}): {orders} orders, the broker killed once; every event handled \
         {recovery:?} after the restart; {:?} in all",
        started.elapsed()
    );
    drop(guard);
    setup.clean();
}
