//! A consumer group under faults, on NATS JetStream or RabbitMQ: member `a`, in the
//! namespace, and member `b`, on the host, share one group; a relay in the test publishes
//! what the test appends. NATS: a nats-server of the scenario's own, listening on the host
//! side of the namespace too; the group hands `a`'s messages on after `ack_wait` (`T`).
//! RabbitMQ: the CI's broker, reached through a [`Forwarder`] (its `guest` logs in from
//! loopback only), the members' heartbeat `T`; the broker hands `a`'s messages on once it
//! has heard nothing from `a` for two to three heartbeats. Judged from the members'
//! histories and the relay's publishes (`RecordingBus`): every acknowledged append handled,
//! again only as often as the relay published it, or after a takeover and at most a
//! prefetch of them (at least once; a member's own change of membership, a new session or
//! Kafka partitions assigned, revoked or lost, is a takeover too: `child::consumer`'s
//! `Membership`), in no particular order (several members of one group
//! do not keep it, docs/brokers.md); a fault held at least `T` has every event appended
//! before it handled within the group's takeover bound of its start, and no event waits
//! longer than that to be handled; both stop within 30 s of SIGTERM. Kafka: the CI's
//! broker, `a` reaching it through its own loopback and a forwarder (Kafka names itself
//! `127.0.0.1`), its session 10 s (`.ci/run`'s and the runtime's default); the group hands
//! `a`'s partitions on once the session expires, and a member that finds its partitions
//! lost commits nothing for them: what it handled and never committed is handled again by
//! the partitions' next owner, which after the heal may be `a` itself.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventsource_runtime::bus::EventBus;
use eventsource_runtime::nats::NatsBus;
use eventsource_runtime::relay::Relay;
use eventsource_test_support::history::{
    Call, Delivery, Expectations, History, HistoryWriter, OpKind, RecordingBus, check,
    wall_clock_ms,
};

use super::TIMEOUT;
use super::child::PROJECTION;
use super::child::consumer::{BROKER, GROUP, PREFETCH};
use super::forwarder::Forwarder;
use super::world::{Nemesis, Running, World, took, waiting_since};

/// The broker the group is on.
#[derive(Debug, Clone, Copy)]
pub enum Broker {
    /// NATS JetStream: a nats-server of the scenario's own.
    Nats,
    /// RabbitMQ: the CI's broker (`EVENTSOURCE_AMQP_URL`), through a forwarder.
    #[cfg(feature = "rabbitmq")]
    RabbitMq,
    /// Kafka: the CI's broker (`EVENTSOURCE_KAFKA_BROKERS`), `a` through its own loopback
    /// and a forwarder.
    #[cfg(feature = "kafka")]
    Kafka,
}

/// What a scenario's broker is made of: what it keeps alive, the URL its members reach it
/// at (`{host}`: the address a child reaches the host at), the bus the relay publishes on.
struct OnBroker {
    alive: Box<dyn Send>,
    member_url: String,
    /// What `a` is told besides (Kafka: its loopback forwarded).
    a_env: Vec<(&'static str, String)>,
    /// The most events a member may have handled and not yet settled with the broker: a
    /// takeover hands them on, to be handled again.
    window: u64,
    bus: Arc<dyn EventBus>,
    /// The longest the group may take to hand `a`'s messages to `b` and have them handled,
    /// and so the longest any event may wait to be handled.
    takeover_bound: Duration,
    /// What the takeover races, for the printed line.
    races: String,
}

impl Broker {
    /// The broker for scenario `index` (its ports), its group and exchange `group`; `None`
    /// (the test skipped) when the CI's broker is not there.
    async fn start(self, index: u8, group: &str, dir: &Path) -> Option<OnBroker> {
        let port = 14_300 + u16::from(index);
        match self {
            Self::Nats => {
                let server = NatsServer::start(port, dir);
                let bus = NatsBus::new(&format!("nats://127.0.0.1:{port}")).unwrap();
                bus.declare().await.unwrap();
                Some(OnBroker {
                    alive: Box::new(server),
                    member_url: format!("nats://{{host}}:{port}"),
                    a_env: Vec::new(),
                    window: u64::from(PREFETCH),
                    bus: Arc::new(bus),
                    // `ack_wait`, a pull (2 s), 5 s.
                    takeover_bound: TIMEOUT + Duration::from_secs(2) + Duration::from_secs(5),
                    races: format!("ack_wait {TIMEOUT:?}"),
                })
            }
            #[cfg(feature = "rabbitmq")]
            Self::RabbitMq => {
                use eventsource_runtime::rabbitmq::RabbitMqBus;
                let server = eventsource_test_support::servers::Server::RabbitMq;
                let url = server.address("partitions::rabbitmq")?;
                let (scheme_and_auth, rest) = url.rsplit_once('@').expect("amqp://user:pass@host");
                let (address, vhost) = rest.split_once('/').unwrap_or((rest, "%2f"));
                let upstream = resolved(address).await;
                let forwarder = Forwarder::start(SocketAddr::from(([0, 0, 0, 0], port)), upstream);
                let bus = RabbitMqBus::new(&url).unwrap().with_exchange(group);
                bus.declare().await.unwrap();
                let heartbeat = TIMEOUT.as_secs();
                Some(OnBroker {
                    alive: Box::new(forwarder),
                    member_url: format!(
                        "{scheme_and_auth}@{{host}}:{port}/{vhost}?heartbeat={heartbeat}"
                    ),
                    a_env: Vec::new(),
                    window: u64::from(PREFETCH),
                    bus: Arc::new(bus),
                    // RabbitMQ checks every heartbeat and gives up on the second check
                    // that found nothing: 2 to 3 heartbeats after the member last spoke.
                    // Then 5 s.
                    takeover_bound: TIMEOUT * 3 + Duration::from_secs(5),
                    races: format!("heartbeat {TIMEOUT:?}"),
                })
            }
            #[cfg(feature = "kafka")]
            Self::Kafka => {
                use super::child::consumer::{KAFKA_PARTITIONS, LOOPBACK};
                use eventsource_runtime::kafka::{DEFAULT_COMMIT_INTERVAL, KafkaBus};
                let server = eventsource_test_support::servers::Server::Kafka;
                let brokers = server.address("partitions::kafka")?;
                let address = brokers.trim_start_matches("kafka://");
                let address = address.split(',').next().unwrap();
                let upstream = resolved(address).await;
                let forwarder = Forwarder::start(SocketAddr::from(([0, 0, 0, 0], port)), upstream);
                let bus = KafkaBus::new(&brokers)
                    .unwrap()
                    .with_topic_prefix(group)
                    .with_partitions(KAFKA_PARTITIONS);
                bus.declare(["Counter"]).await.unwrap();
                // The broker's session: 10 s here (.ci/run's and the runtime's default).
                let session = eventsource_runtime::kafka::DEFAULT_SESSION_TIMEOUT;
                // Handled since the send of the last commit the group accepted: a member
                // the group has not answered for two commit intervals (its quiet limit)
                // asks before it hands more over. At 30 ms an event.
                let window = 2 * DEFAULT_COMMIT_INTERVAL.as_millis() / 30;
                Some(OnBroker {
                    alive: Box::new(forwarder),
                    member_url: format!("kafka://{upstream}"),
                    a_env: vec![(LOOPBACK, format!("{upstream}=>{{host}}:{port}"))],
                    window: u64::try_from(window).unwrap(),
                    bus: Arc::new(bus),
                    // The session, then what piled up on `a`'s partitions meanwhile drained
                    // at the members' pace (as long again), 1 s, 5 s.
                    takeover_bound: session * 2 + Duration::from_secs(1) + Duration::from_secs(5),
                    races: format!("session {session:?}"),
                })
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Nats => "NATS",
            #[cfg(feature = "rabbitmq")]
            Self::RabbitMq => "RabbitMQ",
            #[cfg(feature = "kafka")]
            Self::Kafka => "Kafka",
        }
    }
}

/// Does `nemesis` to member `a` of a group on `broker` for `hold`, then heals, and judges.
pub async fn run(index: u8, broker: Broker, nemesis: Nemesis, hold: Duration) {
    let Some(mut world) = World::start(index).await else {
        return;
    };
    let group = format!("partition-{index}-{}", std::process::id());
    let Some(on) = broker.start(index, &group, world.history_dir()).await else {
        world.end().await;
        return;
    };
    // Its publishes in the history: a message the relay sent twice may be handled twice.
    let relay_history = Arc::new(HistoryWriter::create(world.history_dir(), "relay").unwrap());
    let relay = Relay::new(
        Arc::new(world.store().clone()),
        Arc::new(world.checkpoints()),
        Arc::new(RecordingBus::new(Arc::clone(&on.bus), relay_history)),
    );
    let relaying = Running::spawn(|stopped| async move { relay.run(stopped).await });

    let env = [(BROKER, on.member_url.as_str()), (GROUP, group.as_str())];
    let a_env: Vec<(&str, &str)> = (env.iter().copied())
        .chain(on.a_env.iter().map(|(name, value)| (*name, value.as_str())))
        .collect();
    let a = world.start_child_with("consumer", "a", true, nemesis, &a_env);
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
            on.takeover_bound,
            before_all_handled,
        )
        .await;

    let acknowledged = world.finish_appending_by_history(&mut b).await;
    let (a_stop, b_stop) = (a.stop(), b.stop());
    relaying.stop().await.unwrap();
    drop(on.alive);

    let waited = longest_wait(&dir);
    assert!(
        waited <= on.takeover_bound,
        "an event waited {waited:?} to be handled"
    );
    let expectations = Expectations::new()
        .unordered_handler(PROJECTION, Delivery::AtLeastOnce { window: on.window });
    let report = check(&world.history("a", nemesis, Vec::new()), &expectations);
    report.assert_clean();
    println!(
        "{} group, {} held {hold:?} ({}): {acknowledged} appends acknowledged; \
         what was appended before it handled {} after it began; the longest an event \
         waited: {waited:?}; stopped after SIGTERM in {a_stop:?} (a) and {b_stop:?} (b)",
        broker.name(),
        nemesis.name(),
        on.races,
        took(takeover),
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
        // Taken, the port is most likely held by the server of a run that aborted (and so
        // never dropped it): the members would reach that server, not this one.
        if let Err(error) = std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)) {
            panic!("port {port} is taken ({error}): a nats-server left by an aborted run?");
        }
        let store = dir.join("nats");
        let mut child = Command::new(binary)
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
        assert!(
            child.try_wait().unwrap().is_none(),
            "the nats-server on {address} exited"
        );
        Self(child)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The first address `host:port` names.
#[cfg(any(feature = "rabbitmq", feature = "kafka"))]
async fn resolved(address: &str) -> SocketAddr {
    tokio::net::lookup_host(address)
        .await
        .unwrap_or_else(|error| panic!("{address}: {error}"))
        .next()
        .unwrap_or_else(|| panic!("{address} names no address"))
}
