//! Faults with real processes, for every broker: the `distributed` example's consumer
//! killed (SIGKILL) again and again in the middle of the stream, its relay killed while it
//! publishes, the broker itself killed and started again. Whatever dies, every stored event
//! is handled within a bound after the last fault, counted by event id from what the
//! consumer processes printed:
//!
//! - `OrderPlaced` (group `confirmations`): the idempotent confirmation printed, then the
//!   CRM update finished; `OrderShipped` (group `shipping`): the shipping notice printed;
//! - the confirmation (`bus::Idempotent`, its processed messages in one SQLite file that
//!   every consumer shares) runs once per event; the one case its documentation allows
//!   (the process died between the handler and the record: at least once) is recognised
//!   from the output (the dead consumer confirmed, and never started the CRM update that
//!   follows the record), counted and reported apart;
//! - the CRM update and the shipping notice are at least once: their duplicates are counted
//!   and reported, never failed.
//!
//! Every wait polls the processes' output or the store with a deadline; a scenario's
//! bounds come from its per-broker test file.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::CheckpointStore as _;
use eventsource_runtime::relay;
use eventsource_runtime::sqlite::SqliteEventStore;
use uuid::Uuid;

use super::processes::{BrokerKind, Setup};
use super::server_process::{ServerProcess, StartAgainOnDrop, listening};

/// The tests of one binary run one after the other: each scenario's bounds are measured
/// without another scenario's processes on the same two cores.
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How long a scenario may wait for each of its states (per broker: a Kafka group hands a
/// dead member's partitions on only after its session timed out).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// From a consumer's start until it handled its share (the first join included).
    pub progress: Duration,
    /// From the last fault until every stored event was handled.
    pub recovery: Duration,
}

// ---- what the consumers printed ---------------------------------------------------------

/// A line a consumer prints for a message, with the message (= event) id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Print {
    /// `confirmation sent ...`: the idempotent handler ran.
    Confirmation,
    /// `updating the crm ...`: the CRM update started (the confirmation is recorded).
    CrmStarted,
    /// `crm updated ...`: the `confirmations` group's last handler finished.
    CrmUpdated,
    /// `shipping notified ...`: the `shipping` group's handler finished.
    Shipping,
}

impl Print {
    const ALL: [Self; 4] = [
        Self::Confirmation,
        Self::CrmStarted,
        Self::CrmUpdated,
        Self::Shipping,
    ];

    fn parse(line: &str) -> Option<(Self, Uuid)> {
        let kind = Self::ALL
            .into_iter()
            .find(|kind| line.starts_with(kind.prefix()))?;
        let (_, id) = line.rsplit_once("[message ")?;
        let id = Uuid::parse_str(id.strip_suffix(']')?).ok()?;
        Some((kind, id))
    }

    fn prefix(self) -> &'static str {
        match self {
            Self::Confirmation => "confirmation sent",
            Self::CrmStarted => "updating the crm",
            Self::CrmUpdated => "crm updated",
            Self::Shipping => "shipping notified",
        }
    }
}

/// Every message line of every consumer: for each kind of line and message id, which
/// consumers (numbered from 1, in start order) printed it, once per print.
#[derive(Debug, Default)]
pub struct Tally {
    prints: BTreeMap<Print, BTreeMap<Uuid, Vec<usize>>>,
}

impl Tally {
    fn note(&mut self, consumer: usize, line: &str) {
        if let Some((kind, id)) = Print::parse(line) {
            self.prints
                .entry(kind)
                .or_default()
                .entry(id)
                .or_default()
                .push(consumer);
        }
    }

    fn by(&self, kind: Print) -> impl Iterator<Item = (&Uuid, &Vec<usize>)> {
        self.prints.get(&kind).into_iter().flatten()
    }

    fn printed(&self, kind: Print, id: &Uuid) -> usize {
        self.prints
            .get(&kind)
            .and_then(|ids| ids.get(id))
            .map_or(0, Vec::len)
    }

    /// The placed orders handled: confirmed and their CRM update finished.
    pub fn placed_done(&self, stored: &Stored) -> usize {
        stored
            .placed
            .iter()
            .filter(|id| {
                self.printed(Print::Confirmation, id) > 0 && self.printed(Print::CrmUpdated, id) > 0
            })
            .count()
    }

    /// The shipped orders whose notice went out.
    pub fn shipped_done(&self, stored: &Stored) -> usize {
        stored
            .shipped
            .iter()
            .filter(|id| self.printed(Print::Shipping, id) > 0)
            .count()
    }

    pub fn handled(&self, stored: &Stored) -> usize {
        self.placed_done(stored) + self.shipped_done(stored)
    }

    pub fn complete(&self, stored: &Stored) -> bool {
        self.handled(stored) == stored.len()
    }

    /// How many prints of `kind` came more than once: the extra ones.
    fn extra(&self, kind: Print) -> usize {
        self.by(kind)
            .map(|(_, by)| by.len().saturating_sub(1))
            .sum()
    }

    /// What each of `consumers` printed: for each kind, how many lines, and how many of
    /// them again (a message some consumer had printed that line for before).
    fn per_consumer(&self, consumers: usize) -> String {
        let mut rows = Vec::new();
        for consumer in 1..=consumers {
            let cells: Vec<String> = [Print::Confirmation, Print::CrmUpdated, Print::Shipping]
                .into_iter()
                .map(|kind| {
                    let (mut all, mut again) = (0, 0);
                    for (_, by) in self.by(kind) {
                        for (n, _) in by.iter().enumerate().filter(|(_, c)| **c == consumer) {
                            all += 1;
                            if n > 0 {
                                again += 1;
                            }
                        }
                    }
                    format!("{all} {} ({again} again)", kind.prefix())
                })
                .collect();
            rows.push(format!("consumer {consumer}: {}", cells.join(", ")));
        }
        rows.join("; ")
    }
}

/// The events the producer stored (its store is the outbox), by type.
#[derive(Debug)]
pub struct Stored {
    pub placed: BTreeSet<Uuid>,
    pub shipped: BTreeSet<Uuid>,
    /// The position of the last one.
    pub last: u64,
}

impl Stored {
    pub fn len(&self) -> usize {
        self.placed.len() + self.shipped.len()
    }

    /// Reads the producer's SQLite store (`sqlite:PATH`).
    pub fn read(store: &str) -> Self {
        runtime().block_on(async {
            let store = SqliteEventStore::connect(store).await.expect("the store");
            let events = store
                .read_all(0, usize::MAX)
                .await
                .expect("the stored events")
                .into_events();
            let ids = |event_type: &str| -> BTreeSet<Uuid> {
                events
                    .iter()
                    .filter(|e| e.event_type == event_type)
                    .map(|e| e.event_id)
                    .collect()
            };
            let stored = Self {
                placed: ids("OrderPlaced"),
                shipped: ids("OrderShipped"),
                last: events.last().map_or(0, |e| e.position),
            };
            assert_eq!(stored.len(), events.len(), "only orders placed and shipped");
            stored
        })
    }
}

/// The relay's checkpoint in the producer's SQLite store: the last position the broker
/// confirmed.
pub fn relay_checkpoint(store: &str) -> u64 {
    runtime().block_on(async {
        let store = SqliteEventStore::connect(store).await.expect("the store");
        store
            .checkpoint_store()
            .load(relay::DEFAULT_NAME)
            .await
            .expect("the relay's checkpoint")
    })
}

/// Polls the relay's checkpoint until it reached `mark` (fails after `within`, or if the
/// relay exits first).
fn wait_for_checkpoint(test: &str, relay: &mut Process, store: &str, mark: u64, within: Duration) {
    let deadline = Instant::now() + within;
    let mut checkpoint = relay_checkpoint(store);
    while checkpoint < mark {
        assert!(
            relay.running() && Instant::now() < deadline,
            "{test}: {} at {checkpoint}, not past {mark} within {within:?} ({:?}){}",
            relay.name,
            relay.status(),
            relay.errors()
        );
        std::thread::sleep(Duration::from_millis(5));
        checkpoint = relay_checkpoint(store);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

// ---- a process of the example -----------------------------------------------------------

/// A process of the example: its output read line by line as it comes, its errors in a
/// file. Killed (SIGKILL) when dropped still running: a failed test leaves none behind.
pub struct Process {
    pub name: String,
    child: Child,
    lines: Receiver<String>,
    pub seen: Vec<String>,
    stderr: PathBuf,
    /// Its exit, once known.
    status: Option<ExitStatus>,
}

impl Process {
    /// Starts `command`; its standard error goes to `{dir}/{name}.stderr`.
    pub fn spawn(mut command: Command, name: &str, dir: &Path) -> Self {
        let stderr = dir.join(format!("{name}.stderr"));
        let errors = File::create(&stderr).expect("a file for the errors");
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(errors)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        let (send, lines) = channel();
        let stdout = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            name: name.to_owned(),
            child,
            lines,
            seen: Vec::new(),
            stderr,
            status: None,
        }
    }

    /// The lines printed since the last read, waiting up to `wait` for the first.
    pub fn read(&mut self, wait: Duration) -> Vec<String> {
        let mut new = Vec::new();
        match self.lines.recv_timeout(wait) {
            Ok(line) => new.push(line),
            Err(RecvTimeoutError::Timeout) => {}
            // Its output ended: nothing more to wait for, but the caller polls a state.
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(wait),
        }
        while let Ok(line) = self.lines.try_recv() {
            new.push(line);
        }
        self.seen.extend(new.iter().cloned());
        new
    }

    /// Whether it still runs (its exit remembered otherwise).
    pub fn running(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("its state");
        }
        self.status.is_none()
    }

    /// SIGKILL, then its exit and the rest of its output; the lines printed since the last
    /// read.
    pub fn kill(&mut self) -> Vec<String> {
        let _ = self.child.kill();
        self.status = Some(self.child.wait().expect("it exits"));
        self.rest()
    }

    /// SIGTERM, then waits up to `within` for its exit (SIGKILL and a failure after that);
    /// the lines printed since the last read.
    pub fn terminate(&mut self, within: Duration) -> Vec<String> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.wait_exit(within);
        assert!(
            status.is_some(),
            "{} did not stop within {within:?} of SIGTERM{}",
            self.name,
            self.errors()
        );
        self.rest()
    }

    /// Waits up to `within` for it to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while self.running() && Instant::now() < deadline {
            self.read(Duration::from_millis(50));
        }
        if self.running() {
            return None;
        }
        self.rest();
        self.status
    }

    pub fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Killed by SIGKILL (rather than exited by itself).
    pub fn was_killed(&self) -> bool {
        self.status.and_then(|s| s.signal()) == Some(9)
    }

    /// The rest of its output once it exited (up to its end, or 10 s).
    fn rest(&mut self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut new = Vec::new();
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            new.push(line);
        }
        self.seen.extend(new.iter().cloned());
        new
    }

    /// The last lines of its standard error, for a failure's message.
    pub fn errors(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(15)..];
        if tail.is_empty() {
            String::new()
        } else {
            format!(
                "\n--- {} stderr ({}), last lines:\n{}",
                self.name,
                self.stderr.display(),
                tail.join("\n")
            )
        }
    }

    /// How many lines of its standard error contain `needle`.
    pub fn errors_with(&self, needle: &str) -> usize {
        std::fs::read_to_string(&self.stderr)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---- consumer processes, one after the other ---------------------------------------------

/// The consumer processes of one scenario, one running at a time (each replacing the one
/// killed before it), and what they all printed.
pub struct Consumers<'a> {
    setup: &'a Setup,
    dir: PathBuf,
    args: Vec<String>,
    /// Every consumer started, the running one last.
    all: Vec<Process>,
    pub tally: Tally,
    /// The consumers killed (numbered from 1).
    killed: Vec<usize>,
}

impl<'a> Consumers<'a> {
    pub fn new(setup: &'a Setup, dir: &Path, args: &[&str]) -> Self {
        Self {
            setup,
            dir: dir.to_path_buf(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            all: Vec::new(),
            tally: Tally::default(),
            killed: Vec::new(),
        }
    }

    /// Starts the next consumer and waits until it consumes.
    pub fn start(&mut self) {
        let number = self.all.len() + 1;
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let command = self
            .setup
            .command("consumer", &format!("orders-consumer-{number}"), &args);
        self.all.push(Process::spawn(
            command,
            &format!("consumer-{number}"),
            &self.dir,
        ));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.current().seen.iter().any(|l| l == "consuming") {
            let consumer = self.current();
            assert!(
                consumer.running() && Instant::now() < deadline,
                "consumer {number} never printed `consuming`: {:?}{}",
                consumer.seen,
                consumer.errors()
            );
            self.pump(Duration::from_millis(100));
        }
    }

    fn current(&mut self) -> &mut Process {
        self.all.last_mut().expect("a consumer started")
    }

    /// Reads what the running consumer printed (waiting up to `wait` for a line).
    pub fn pump(&mut self, wait: Duration) {
        let number = self.all.len();
        for line in self.current().read(wait) {
            self.tally.note(number, &line);
        }
    }

    /// Polls until `done` holds of what the consumers printed, for up to `within`; how long
    /// it took. Fails with what was handled and the consumers' errors otherwise.
    pub fn wait_until(
        &mut self,
        what: &str,
        stored: &Stored,
        within: Duration,
        done: impl Fn(&Tally) -> bool,
    ) -> Duration {
        let started = Instant::now();
        while !done(&self.tally) {
            if started.elapsed() > within || !self.current().running() {
                panic!(
                    "{what}: not within {within:?} (consumer {} {}); {}",
                    self.all.len(),
                    if self.current().running() {
                        "running"
                    } else {
                        "exited"
                    },
                    self.progress(stored) + &self.errors()
                );
            }
            self.pump(Duration::from_millis(100));
        }
        started.elapsed()
    }

    /// SIGKILL to the running consumer; its last lines counted.
    pub fn kill(&mut self) {
        let number = self.all.len();
        for line in self.current().kill() {
            self.tally.note(number, &line);
        }
        self.killed.push(number);
    }

    /// SIGTERM to the running consumer: it stops gracefully (status 0, `consumer stopped`).
    pub fn stop(&mut self) {
        let number = self.all.len();
        for line in self.current().terminate(Duration::from_secs(30)) {
            self.tally.note(number, &line);
        }
        let consumer = self.current();
        let status = consumer.status().expect("exited");
        assert!(
            status.success() && consumer.seen.iter().any(|l| l == "consumer stopped"),
            "consumer {number}: a graceful stop, not {status}{}",
            consumer.errors()
        );
    }

    /// How far the consumers got, for messages.
    pub fn progress(&self, stored: &Stored) -> String {
        format!(
            "handled {} of {} placed, {} of {} shipped",
            self.tally.placed_done(stored),
            stored.placed.len(),
            self.tally.shipped_done(stored),
            stored.shipped.len()
        )
    }

    fn errors(&self) -> String {
        self.all.iter().map(Process::errors).collect()
    }

    /// Every line the consumers printed so far, each consumer's (numbered from 1) in order.
    pub fn lines(&self) -> impl Iterator<Item = (usize, &str)> {
        self.all
            .iter()
            .enumerate()
            .flat_map(|(n, consumer)| consumer.seen.iter().map(move |line| (n + 1, line.as_str())))
    }

    /// How many lines of every consumer's standard error contain `needle`.
    pub fn errors_with(&self, needle: &str) -> usize {
        self.all.iter().map(|c| c.errors_with(needle)).sum()
    }

    /// Checks every stored event was handled, the idempotent confirmation once (or again
    /// only where its documentation allows it: see the module), nothing unknown; reports
    /// the duplicates.
    pub fn check(&self, test: &str, stored: &Stored) -> Verdict {
        let tally = &self.tally;
        let missing = |kind: Print, ids: &BTreeSet<Uuid>| -> Vec<Uuid> {
            ids.iter()
                .filter(|id| tally.printed(kind, id) == 0)
                .copied()
                .collect()
        };
        let unconfirmed = missing(Print::Confirmation, &stored.placed);
        let no_crm = missing(Print::CrmUpdated, &stored.placed);
        let not_shipped = missing(Print::Shipping, &stored.shipped);
        let errors = self.errors();
        assert!(
            unconfirmed.is_empty() && no_crm.is_empty() && not_shipped.is_empty(),
            "{test}: never handled: {} unconfirmed {unconfirmed:?}, {} without the CRM \
             update {no_crm:?}, {} not shipped {not_shipped:?}{errors}",
            unconfirmed.len(),
            no_crm.len(),
            not_shipped.len()
        );
        let unknown: BTreeSet<&Uuid> = Print::ALL
            .into_iter()
            .flat_map(|kind| tally.by(kind).map(|(id, _)| id))
            .filter(|id| !stored.placed.contains(id) && !stored.shipped.contains(id))
            .collect();
        assert!(unknown.is_empty(), "{test}: never stored: {unknown:?}");

        // A second confirmation is allowed only after a consumer that confirmed died
        // before recording it: killed, and without the CRM update that follows the record.
        let mut again_after_kill = Vec::new();
        let mut twice = Vec::new();
        for (id, by) in tally.by(Print::Confirmation).filter(|(_, by)| by.len() > 1) {
            let died_before_the_record = by[..by.len() - 1].iter().all(|consumer| {
                self.killed.contains(consumer)
                    && !tally
                        .prints
                        .get(&Print::CrmStarted)
                        .and_then(|ids| ids.get(id))
                        .is_some_and(|started| started.contains(consumer))
            });
            if died_before_the_record {
                again_after_kill.push(*id);
            } else {
                twice.push((*id, by.clone()));
            }
        }
        assert!(
            twice.is_empty(),
            "{test}: the idempotent confirmation ran twice (by consumers {twice:?}; killed: \
             {:?})",
            self.killed
        );
        let verdict = Verdict {
            consumers: self.all.len(),
            killed: self.killed.len(),
            confirmations_again_after_kill: again_after_kill.len(),
            crm_duplicates: tally.extra(Print::CrmUpdated),
            shipping_duplicates: tally.extra(Print::Shipping),
            stalls: self.errors_with("stalled"),
            failed_commits: self.errors_with("commit failed"),
        };
        eprintln!(
            "{test}: all {} stored events handled by {} consumer process(es), {} killed; \
             duplicates: {} CRM updates, {} shipping notices (at least once), {} \
             confirmations run again after a kill between the confirmation and its record \
             (allowed), 0 otherwise; on the consumers' stderr: {} stall lines, {} failed \
             commits; {}",
            stored.len(),
            verdict.consumers,
            verdict.killed,
            verdict.crm_duplicates,
            verdict.shipping_duplicates,
            verdict.confirmations_again_after_kill,
            verdict.stalls,
            verdict.failed_commits,
            tally.per_consumer(self.all.len())
        );
        verdict
    }
}

/// What a scenario's consumers did, once every event was handled.
#[derive(Debug)]
pub struct Verdict {
    pub consumers: usize,
    pub killed: usize,
    /// Confirmations run again because a consumer died between one and its record.
    pub confirmations_again_after_kill: usize,
    pub crm_duplicates: usize,
    pub shipping_duplicates: usize,
    /// Lines of the consumers' standard error saying a group stalled.
    pub stalls: usize,
    /// Lines of the consumers' standard error saying a Kafka commit failed.
    pub failed_commits: usize,
}

// ---- the scenarios ------------------------------------------------------------------------

/// A scenario's working directory: the producer's store (the outbox) and the consumers'
/// shared processed messages.
struct Files {
    dir: PathBuf,
    store: String,
    processed: String,
}

impl Files {
    fn new(test: &str) -> Self {
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

// ---- the broker process -------------------------------------------------------------------

/// The local broker process of `kind` that a test may kill and start again, or `None`
/// (with a visible message) when there is none and none is required
/// (`EVENTSOURCE_REQUIRE_KAFKA=1`, `EVENTSOURCE_REQUIRE_NATS=1`: then it fails).
pub fn local_broker(test: &str, kind: BrokerKind) -> Option<ServerProcess> {
    if kind == BrokerKind::RabbitMq {
        panic!("{test}: no RabbitMQ node is killed here");
    }
    let server = kind.server();
    let variable = server.variable();
    let skip = |why: String| server.skip(test, &why);
    let url = server.address(test)?;
    let Some(addr) = first_addr(&url, kind) else {
        skip(format!("{variable} has no host:port"));
        return None;
    };
    if !listening(addr) {
        skip(format!("nothing listens on {addr}"));
        return None;
    }
    let found = match kind {
        // Apache Kafka as `.ci/run` starts it writes its log in its working directory.
        BrokerKind::Kafka => ServerProcess::find("kafka", is_kafka_broker, addr, None),
        // The binary of `EVENTSOURCE_NATS_SERVER`, when set (the version matrix's).
        _ => ServerProcess::find(
            "nats-server",
            is_nats_server,
            addr,
            Some(std::env::temp_dir().join("eventsource-nats-restart.log")),
        )
        .and_then(|broker| {
            broker.runs_binary_named_by("EVENTSOURCE_NATS_SERVER")?;
            Ok(broker)
        }),
    };
    match found {
        Ok(broker) => Some(broker),
        Err(why) => {
            skip(why);
            None
        }
    }
}

/// Whether `argv` is an Apache Kafka node's (`java ... kafka.Kafka <server.properties>`).
fn is_kafka_broker(argv: &[String]) -> bool {
    let program = argv[0].rsplit('/').next().unwrap_or_default();
    program == "java" && argv.iter().skip(1).any(|a| a == "kafka.Kafka")
}

fn is_nats_server(argv: &[String]) -> bool {
    argv[0].rsplit('/').next().unwrap_or_default() == "nats-server"
}

/// The first `host:port` of a broker list or URL (`kafka://`, `nats://user:password@`),
/// with the broker's default port, resolved.
fn first_addr(url: &str, kind: BrokerKind) -> Option<SocketAddr> {
    let first = url.split(',').next()?.trim();
    let rest = first.split_once("://").map_or(first, |(_, rest)| rest);
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, hp)| hp);
    let host_port = host_port.trim_end_matches('/');
    let has_port = host_port
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
    let with_port = if has_port {
        host_port.to_owned()
    } else {
        let port = if kind == BrokerKind::Kafka {
            9092
        } else {
            4222
        };
        format!("{host_port}:{port}")
    };
    with_port.to_socket_addrs().ok()?.next()
}
