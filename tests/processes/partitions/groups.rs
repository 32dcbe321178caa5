//! A NATS JetStream consumer group under faults: member `a`, in the namespace, and member
//! `b`, on the host, pull from one durable consumer of a nats-server of the scenario's own
//! (listening on the host side of the namespace too); a relay in the test publishes what the
//! test appends. Judged from the members' histories: every acknowledged append handled,
//! again only after a takeover and at most a prefetch of them (at least once), in no
//! particular order (several members of one NATS group do not keep it, docs/brokers.md);
//! a fault held at least `ack_wait` has every event appended before it handled within
//! `ack_wait` + a pull (2 s) + 5 s of its start, and no event waits longer than that to
//! be handled (those handed to `a` as it was cut off come to `b` after `ack_wait`); both
//! stop within 30 s of SIGTERM.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventsource_runtime::nats::NatsBus;
use eventsource_runtime::relay::Relay;
use eventsource_test_support::history::{
    Call, Delivery, Expectations, History, OpKind, check, wall_clock_ms,
};

use super::TIMEOUT;
use super::child::PROJECTION;
use super::child::consumer::{BROKER, PREFETCH};
use super::world::{Nemesis, Running, World};

/// The longest the group may take to hand `a`'s messages to `b`: `ack_wait`, a pull, 5 s.
fn takeover_bound() -> Duration {
    TIMEOUT + Duration::from_secs(2) + Duration::from_secs(5)
}

/// Does `nemesis` to member `a` for `hold`, then heals, and judges.
pub async fn run(index: u8, nemesis: Nemesis, hold: Duration) {
    let Some(mut world) = World::start(index).await else {
        return;
    };
    let port = 14_300 + u16::from(index);
    let server = NatsServer::start(port, world.history_dir());
    let bus = NatsBus::new(&format!("nats://127.0.0.1:{port}")).unwrap();
    bus.declare().await.unwrap();
    let relay = Relay::new(
        Arc::new(world.store().clone()),
        Arc::new(world.checkpoints()),
        Arc::new(bus),
    );
    let relaying = Running::spawn(|stopped| async move { relay.run(stopped).await });

    let broker = format!("nats://{{host}}:{port}");
    let env = [(BROKER, broker.as_str())];
    let a = world.start_child_with("consumer", "a", true, nemesis, &env);
    let mut b = world.start_child_with("consumer", "b", false, nemesis, &env);
    let dir = world.history_dir().to_owned();
    let both = async || committed_by(&dir, "a") > 0 && committed_by(&dir, "b") > 0;
    b.wait_for("a and b both handle", Duration::from_secs(30), both)
        .await;

    let struck_ms = wall_clock_ms();
    let before_all_handled = async || waiting_since(&dir, struck_ms).is_empty();
    let takeover = world
        .cut_off(
            nemesis,
            hold,
            &a,
            &mut b,
            takeover_bound(),
            before_all_handled,
        )
        .await;

    let acknowledged = world.stop_appending().await;
    let everything = async || waiting_since(&dir, u64::MAX).is_empty();
    b.wait_for(
        "every acknowledged event handled",
        Duration::from_secs(60),
        everything,
    )
    .await;
    let (a_stop, b_stop) = (a.stop(), b.stop());
    relaying.stop().await.unwrap();
    drop(server);

    let waited = longest_wait(&dir);
    assert!(
        waited <= takeover_bound(),
        "an event waited {waited:?} to be handled"
    );
    let expectations = Expectations::new().unordered_handler(
        PROJECTION,
        Delivery::AtLeastOnce {
            window: u64::from(PREFETCH),
        },
    );
    let report = check(&world.history("a", nemesis, Vec::new()), &expectations);
    report.assert_clean();
    println!(
        "NATS group, {} held {hold:?} (ack_wait {TIMEOUT:?}): {acknowledged} appends \
         acknowledged; what was appended before it handled {} after it began; the longest an \
         event waited: {waited:?}; stopped after SIGTERM in {a_stop:?} (a) and {b_stop:?} (b)",
        nemesis.name(),
        takeover.map_or("only after the heal".to_owned(), |t| format!("{t:?}")),
    );
    world.end().await;
}

/// How many events `process` recorded as handled.
fn committed_by(dir: &Path, process: &str) -> usize {
    let Ok(history) = History::read_dir(dir) else {
        return 0;
    };
    history
        .ops
        .iter()
        .filter(|op| op.process == process && op.kind == OpKind::Ok)
        .filter(|op| matches!(op.f, Call::HandleCommit(_)))
        .count()
}

/// The longest any acknowledged event waited to be handled by anyone (from its append's
/// acknowledgement to its first commit): a message the group handed to `a` when it was cut
/// off waits for the group to hand it on.
fn longest_wait(dir: &Path) -> Duration {
    let Ok(history) = History::read_dir(dir) else {
        return Duration::ZERO;
    };
    let mut acknowledged: HashMap<uuid::Uuid, u64> = HashMap::new();
    let mut first_commit: HashMap<uuid::Uuid, u64> = HashMap::new();
    for op in &history.ops {
        match (&op.f, op.kind) {
            (Call::Append { event_ids, .. }, OpKind::Ok) => {
                for id in event_ids {
                    acknowledged.insert(*id, op.at_ms);
                }
            }
            (Call::HandleCommit(handling), OpKind::Ok) => {
                first_commit.entry(handling.event_id).or_insert(op.at_ms);
            }
            _ => {}
        }
    }
    let longest = acknowledged
        .iter()
        .filter_map(|(id, at)| Some(first_commit.get(id)?.saturating_sub(*at)))
        .max()
        .unwrap_or(0);
    Duration::from_millis(longest)
}

/// The events whose append was acknowledged before `before_ms` and that nobody handled yet.
pub fn waiting_since(dir: &Path, before_ms: u64) -> HashSet<uuid::Uuid> {
    let Ok(history) = History::read_dir(dir) else {
        return HashSet::from([uuid::Uuid::nil()]);
    };
    let mut waiting = HashSet::new();
    for op in &history.ops {
        match &op.f {
            Call::Append { event_ids, .. } if op.kind == OpKind::Ok && op.at_ms < before_ms => {
                waiting.extend(event_ids.iter().copied());
            }
            _ => {}
        }
    }
    for op in &history.ops {
        if let (OpKind::Ok, Call::HandleCommit(handling)) = (op.kind, &op.f) {
            waiting.remove(&handling.event_id);
        }
    }
    waiting
}

/// A nats-server with JetStream of the scenario's own, on every address (the namespace's
/// members reach it at the host side of their veth), its store in the scenario's folder.
pub struct NatsServer(Child);

impl NatsServer {
    pub fn start(port: u16, dir: &Path) -> Self {
        let binary = std::env::var("EVENTSOURCE_NATS_SERVER").unwrap_or_else(|_| {
            ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
                .into_iter()
                .find(|path| Path::new(path).exists())
                .unwrap_or("nats-server")
                .to_owned()
        });
        let store = dir.join("nats");
        let child = Command::new(binary)
            .args(["-js", "-a", "0.0.0.0", "-p", &port.to_string(), "-sd"])
            .arg(&store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts (Debian's nats-server)");
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server answers on {address}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self(child)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
