//! The Kafka broker killed (SIGKILL) and started again in the middle of a run: publishes
//! fail with typed errors meanwhile, the relay waits and resumes, the consumer group
//! connects again by itself, and every stored event is handled (at least once).
//!
//! A test binary of its own (test binaries run one after the other), so that killing the
//! broker disturbs no other test. Needs `EVENTSOURCE_KAFKA_BROKERS` and a local `tansu`
//! broker process listening on its port that this test may kill and start again (same
//! argv, same working directory, output appended to `tansu.log` there). Skipped visibly
//! otherwise, unless `EVENTSOURCE_REQUIRE_KAFKA=1`: then it fails.

#[path = "../examples/domain/order.rs"]
mod domain;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::{Order, sample_order};
use eventsource_runtime::bus::{BusError, EventBus, HandlerError, PublishFailure, PublishReport};
use eventsource_runtime::event::EventEnvelope;
use eventsource_runtime::kafka::KafkaBus;
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::InMemoryCheckpointStore;
use eventsource_runtime::relay::Relay;

/// The whole scenario must end within this (the test fails otherwise).
const BUDGET: Duration = Duration::from_secs(85);
/// How long the broker stays down: longer than the delivery timeout, so that the relay's
/// publishes fail meanwhile.
const DOWN_FOR: Duration = Duration::from_secs(5);
/// The bus's delivery timeout.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(3);

// ---- the broker process -----------------------------------------------------------------

/// A local tansu broker process: enough to start it again as it was.
#[derive(Debug, Clone)]
struct Tansu {
    pid: u32,
    /// The binary (`/proc/PID/exe`), run with `argv[0]` kept.
    exe: PathBuf,
    argv: Vec<String>,
    cwd: PathBuf,
    addr: SocketAddr,
}

/// The first `host:port` of `EVENTSOURCE_KAFKA_BROKERS`, resolved.
fn broker_addr(brokers: &str) -> Option<SocketAddr> {
    let first = brokers.trim_start_matches("kafka://").split(',').next()?;
    first.trim().to_socket_addrs().ok()?.next()
}

fn listening(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// The argv of process `pid`.
fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let argv: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (!argv.is_empty()).then_some(argv)
}

/// Whether `argv` is a tansu broker's.
fn is_tansu_broker(argv: &[String]) -> bool {
    let program = argv[0].rsplit('/').next().unwrap_or_default();
    program == "tansu" && argv.iter().skip(1).any(|a| a == "broker")
}

/// The socket inodes listening on TCP `port` (`/proc/net/tcp`, `/proc/net/tcp6`).
fn listening_inodes(port: u16) -> BTreeSet<String> {
    let mut inodes = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let local_port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            // 0A: LISTEN.
            if *state == "0A" && local_port == Some(port) {
                inodes.insert((*inode).to_owned());
            }
        }
    }
    inodes
}

/// Whether process `pid` holds one of `inodes` (false when its descriptors cannot be read).
fn holds_socket(pid: u32, inodes: &BTreeSet<String>) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            let target = target.to_string_lossy();
            target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
                .is_some_and(|inode| inodes.contains(inode))
        })
    })
}

impl Tansu {
    /// The tansu broker process listening on `addr`'s port: the one holding the listening
    /// socket, or (when descriptors cannot be read) the only tansu broker naming the port.
    fn find(addr: SocketAddr) -> Result<Self, String> {
        let inodes = listening_inodes(addr.port());
        let port = format!(":{}", addr.port());
        let mut brokers = Vec::new();
        for entry in std::fs::read_dir("/proc")
            .map_err(|e| e.to_string())?
            .flatten()
        {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Some(argv) = cmdline(pid) else { continue };
            if is_tansu_broker(&argv) {
                brokers.push((pid, argv));
            }
        }
        let chosen = brokers
            .iter()
            .find(|(pid, _)| holds_socket(*pid, &inodes))
            .or_else(|| {
                let naming: Vec<_> = brokers
                    .iter()
                    .filter(|(_, argv)| argv.iter().any(|a| a.contains(&port)))
                    .collect();
                (naming.len() == 1).then(|| naming[0])
            });
        let Some((pid, argv)) = chosen.cloned() else {
            return Err(format!(
                "no local tansu broker process listens on {addr} ({} tansu broker(s) found)",
                brokers.len()
            ));
        };
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .map_err(|e| format!("cannot read tansu's binary (pid {pid}): {e}"))?;
        // A binary replaced since it started reads `... (deleted)`: run argv[0] then.
        let exe = if exe.exists() {
            exe
        } else {
            PathBuf::from(&argv[0])
        };
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"))
            .map_err(|e| format!("cannot read tansu's directory (pid {pid}): {e}"))?;
        Ok(Self {
            pid,
            exe,
            argv,
            cwd,
            addr,
        })
    }

    /// Whether the process is gone (or a zombie nobody reaped yet).
    fn gone(&self) -> bool {
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        }
    }

    /// SIGKILL, then waits until the process is gone and the port closed.
    fn kill(&self) -> Result<(), String> {
        let killed = Command::new("kill")
            .args(["-KILL", &self.pid.to_string()])
            .status()
            .map_err(|e| format!("kill: {e}"))?;
        if !killed.success() {
            return Err(format!("kill -KILL {} failed: {killed}", self.pid));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.gone() || listening(self.addr) {
            if Instant::now() > deadline {
                return Err(format!("tansu (pid {}) did not go away", self.pid));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Starts the same argv in the same directory, in a process group of its own (so that
    /// it outlives the test), output appended to `tansu.log` there; waits for the port.
    fn start(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.cwd.join("tansu.log"))
            .map_err(|e| format!("tansu.log: {e}"))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&self.exe)
            .arg0(&self.argv[0])
            .args(&self.argv[1..])
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.exe.display()))?;
        self.pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !listening(self.addr) {
            if Instant::now() > deadline {
                return Err(format!(
                    "tansu (pid {}) does not listen on {}",
                    self.pid, self.addr
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

/// Starts the broker again if the test ends (a panic) while it is down, so that no later
/// test (or developer) finds it gone.
struct StartAgainOnDrop(Tansu);

impl Drop for StartAgainOnDrop {
    fn drop(&mut self) {
        if !listening(self.0.addr)
            && let Err(error) = self.0.start()
        {
            eprintln!("kafka restart: could not start tansu again: {error}");
        }
    }
}

// ---- a bus that remembers its failures ----------------------------------------------------

/// The relay's bus: the Kafka bus, each failed publish remembered.
struct Recording {
    bus: KafkaBus,
    failures: Arc<Mutex<Vec<String>>>,
}

impl Recording {
    fn note(&self, error: &BusError) {
        let kind = match error {
            BusError::Unavailable(_) => "Unavailable",
            BusError::Unconfirmed { .. } => "Unconfirmed",
            BusError::Rejected { .. } => "Rejected",
            _ => "other",
        };
        self.failures.lock().unwrap().push(kind.to_owned());
    }
}

#[eventsource_runtime::async_trait]
impl EventBus for Recording {
    async fn publish(&self, events: &[EventEnvelope]) -> Result<PublishReport, BusError> {
        let published = self.bus.publish(events).await;
        if let Err(error) = &published {
            self.note(error);
        }
        published
    }

    async fn publish_stored(
        &self,
        events: &[EventEnvelope],
    ) -> Result<PublishReport, PublishFailure> {
        let published = self.bus.publish_stored(events).await;
        if let Err(failure) = &published {
            self.note(&failure.error);
        }
        published
    }
}

// ---- the scenario --------------------------------------------------------------------------

/// The broker to restart, or `None` (with a visible message) when there is none and none
/// is required.
fn broker() -> Option<(String, Tansu)> {
    let required = std::env::var("EVENTSOURCE_REQUIRE_KAFKA").as_deref() == Ok("1");
    let skip = |why: String| {
        assert!(!required, "EVENTSOURCE_REQUIRE_KAFKA=1 but {why}");
        eprintln!("kafka restart: skipped: {why}");
    };
    let brokers = match std::env::var("EVENTSOURCE_KAFKA_BROKERS") {
        Ok(brokers) if !brokers.trim().is_empty() => brokers,
        _ => {
            skip("EVENTSOURCE_KAFKA_BROKERS not set".to_owned());
            return None;
        }
    };
    let Some(addr) = broker_addr(&brokers) else {
        skip(format!("`{brokers}` is not a host:port"));
        return None;
    };
    if !listening(addr) {
        skip(format!("nothing listens on {addr}"));
        return None;
    }
    match Tansu::find(addr) {
        Ok(tansu) => Some((brokers, tansu)),
        Err(why) => {
            skip(why);
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_and_restarted_loses_nothing_and_the_relay_resumes() {
    let Some((brokers, tansu)) = broker() else {
        return;
    };
    let started = Instant::now();
    let scenario = tokio::time::timeout(BUDGET, scenario(brokers, tansu));
    match scenario.await {
        Ok(()) => eprintln!("kafka restart: done in {:?}", started.elapsed()),
        Err(_) => panic!("the scenario took longer than {BUDGET:?}"),
    }
}

async fn scenario(brokers: String, tansu: Tansu) {
    let prefix = format!("es-restart-{}", uuid::Uuid::now_v7().simple());
    let bus = KafkaBus::new(&brokers)
        .unwrap()
        .with_topic_prefix(&prefix)
        .with_delivery_timeout(DELIVERY_TIMEOUT);
    let group = bus
        .consumer_group("mailer")
        .bind("Order.*")
        .retry_delays([Duration::from_millis(50)]);
    // Every delivery, by event id: duplicates are allowed (at least once) and reported.
    let handled = Arc::new(Mutex::new(BTreeMap::<uuid::Uuid, usize>::new()));
    {
        let handled = Arc::clone(&handled);
        group.subscribe_fn("count", move |event| {
            let handled = Arc::clone(&handled);
            async move {
                *handled.lock().unwrap().entry(event.event_id).or_default() += 1;
                Ok::<(), HandlerError>(())
            }
        });
    }
    group.declare().await.unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let consuming = {
        let group = group.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            group
                .run(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await
        })
    };

    let store = InMemoryEventStore::new();
    let failures = Arc::new(Mutex::new(Vec::new()));
    let relayed = Recording {
        bus: bus.clone(),
        failures: Arc::clone(&failures),
    };
    let relay = Relay::new(
        Arc::new(store.clone()),
        Arc::new(InMemoryCheckpointStore::new()),
        Arc::new(relayed),
    )
    .poll_interval(Duration::from_millis(20))
    .backoff(Duration::from_millis(100), Duration::from_millis(500));
    let relaying = {
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            relay
                .run(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await
        })
    };

    let orders = CommandService::<Order>::new(store.clone());
    let wait_for = |n: usize, within: Duration| {
        let handled = Arc::clone(&handled);
        async move {
            let deadline = Instant::now() + within;
            while Instant::now() < deadline {
                if handled.lock().unwrap().len() >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!(
                "only {} of {n} events handled within {within:?}",
                handled.lock().unwrap().len()
            );
        }
    };

    // Before: the group joins (seconds) and handles the first ten.
    for i in 0..10 {
        orders
            .execute(sample_order(&format!("o-{i}"), "ada"))
            .await
            .unwrap();
    }
    wait_for(10, Duration::from_secs(30)).await;

    // During: the broker is killed; commands go on (the store is not the broker).
    let mut guard = StartAgainOnDrop(tansu.clone());
    let killing = tansu.clone();
    tokio::task::spawn_blocking(move || killing.kill())
        .await
        .unwrap()
        .expect("tansu is killed");
    let down_since = Instant::now();
    for i in 10..20 {
        orders
            .execute(sample_order(&format!("o-{i}"), "ada"))
            .await
            .unwrap();
    }
    // A publish meanwhile is a typed error, never a silent drop.
    let direct = store.read_all(1, 1).await.unwrap();
    let publishing = Instant::now();
    let refused = bus.publish(&direct).await;
    eprintln!(
        "kafka restart: a publish while down: {:?} after {:?}",
        refused.as_ref().err(),
        publishing.elapsed()
    );
    assert!(
        matches!(
            refused,
            Err(BusError::Unavailable(_) | BusError::Unconfirmed { .. })
        ),
        "{refused:?}"
    );
    if let Some(rest) = DOWN_FOR.checked_sub(down_since.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let restarting = tansu.clone();
    let restarted = tokio::task::spawn_blocking(move || {
        let mut tansu = restarting;
        tansu.start().map(|()| tansu)
    })
    .await
    .unwrap()
    .expect("tansu starts again");
    // Started: the guard now watches the new process.
    guard.0 = restarted;
    eprintln!(
        "kafka restart: broker down for {:?}, now pid {}",
        down_since.elapsed(),
        guard.0.pid
    );

    // After: more commands; everything arrives.
    for i in 20..30 {
        orders
            .execute(sample_order(&format!("o-{i}"), "ada"))
            .await
            .unwrap();
    }
    wait_for(30, Duration::from_secs(45)).await;
    let stored: BTreeSet<uuid::Uuid> = store
        .read_all(1, usize::MAX)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event_id)
        .collect();
    assert_eq!(stored.len(), 30);
    let deliveries = handled.lock().unwrap().clone();
    let ids: BTreeSet<uuid::Uuid> = deliveries.keys().copied().collect();
    let missing: Vec<_> = stored.difference(&ids).collect();
    let unknown: Vec<_> = ids.difference(&stored).collect();
    assert!(missing.is_empty(), "never handled: {missing:?}");
    assert!(unknown.is_empty(), "handled but never stored: {unknown:?}");
    let duplicates: usize = deliveries.values().map(|n| n - 1).sum();
    let failures = failures.lock().unwrap().clone();
    eprintln!(
        "kafka restart: {} events stored, all handled; {duplicates} duplicate deliveries; \
         relay publish failures while down: {failures:?}",
        stored.len()
    );
    assert!(
        !failures.is_empty(),
        "the relay saw the broker down (a typed error)"
    );
    assert!(
        failures
            .iter()
            .all(|kind| kind == "Unavailable" || kind == "Unconfirmed"),
        "only Unavailable / Unconfirmed: {failures:?}"
    );

    stop.send(true).unwrap();
    consuming.await.unwrap().unwrap();
    relaying.await.unwrap().unwrap();
    drop(guard);
}
