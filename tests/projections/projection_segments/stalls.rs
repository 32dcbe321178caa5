//! How a worker's claims are lost, as counted (`eventsource.projection.segment.changes`):
//! a worker that stalls past its claim timeout while another takes its segments over is
//! `fenced` when it wakes, once per segment; one that stalls while nobody takes them resumes
//! them at once, at the same epoch; one whose claims store does not answer counts them
//! `lost` as they lapse, and resumes them once it answers again.
//!
//! Each worker runs on a thread of its own (a runtime of one thread): a handler that blocks
//! that thread stalls the whole worker, renewals included, as a paused process.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use eventsource_runtime::async_trait;
use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::{CheckpointStore, InMemoryCheckpointStore};
use eventsource_runtime::projection::runner::{ProjectionRunner, RunnerError};
use eventsource_runtime::projection::segments::{
    Claim, Claimed, InMemorySegmentClaims, SegmentClaims, SegmentOwner, SegmentedRunner,
};
use eventsource_runtime::store::StoreError;

use super::{METRICS, seed, seed_more, wait_for};

const TIMEOUT: Duration = Duration::from_millis(600);

/// Holds the handler that passes it while closed, blocking its thread.
#[derive(Default)]
struct Gate {
    closed: Mutex<bool>,
    opened: Condvar,
    holding: AtomicBool,
}

impl Gate {
    fn close(&self) {
        *self.closed.lock().unwrap() = true;
    }

    fn open(&self) {
        *self.closed.lock().unwrap() = false;
        self.opened.notify_all();
    }

    fn pass(&self) {
        let mut closed = self.closed.lock().unwrap();
        while *closed {
            self.holding.store(true, Ordering::SeqCst);
            closed = self.opened.wait(closed).unwrap();
        }
        self.holding.store(false, Ordering::SeqCst);
    }

    fn is_holding(&self) -> bool {
        self.holding.load(Ordering::SeqCst)
    }
}

/// Each order's versions as this worker handled them, behind a gate.
struct Gated {
    name: &'static str,
    gate: Arc<Gate>,
    seen: Arc<Mutex<Vec<(String, u64)>>>,
}

#[async_trait]
impl Projection for Gated {
    fn name(&self) -> &str {
        self.name
    }

    async fn handle(&mut self, event: &EventEnvelope) -> Result<(), ProjectionError> {
        self.gate.pass();
        let order = event.stream.aggregate_id().to_owned();
        self.seen.lock().unwrap().push((order, event.version));
        Ok(())
    }
}

/// A worker on a thread of its own.
struct Threaded {
    worker: Arc<SegmentedRunner<Gated>>,
    gate: Arc<Gate>,
    seen: Arc<Mutex<Vec<(String, u64)>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), RunnerError>>>,
    /// What the worker logged (each event's message), on its thread.
    logs: Arc<Mutex<Vec<String>>>,
}

/// Keeps the message of every event logged on the thread it is the default of.
struct Messages(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Messages {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message<'a>(&'a mut String);
        impl tracing::field::Visit for Message<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    *self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = String::new();
        event.record(&mut Message(&mut message));
        self.0.lock().unwrap().push(message);
    }
}

impl Threaded {
    fn start(
        name: &'static str,
        worker_name: &str,
        store: &InMemoryEventStore,
        checkpoints: &InMemoryCheckpointStore,
        claims: Arc<dyn SegmentClaims>,
    ) -> Self {
        let gate = Arc::new(Gate::default());
        let seen = Arc::default();
        let projection = Gated {
            name,
            gate: Arc::clone(&gate),
            seen: Arc::clone(&seen),
        };
        let runner = ProjectionRunner::new(
            Arc::new(store.clone()),
            Arc::new(checkpoints.clone()),
            projection,
        )
        .poll_interval(Duration::from_millis(10));
        let worker = Arc::new(
            runner
                .segmented(claims, 4)
                .claim_timeout(TIMEOUT)
                .rebalance_interval(Duration::from_millis(40))
                .worker_name(worker_name),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = Arc::clone(&worker);
        let logs = Arc::<Mutex<Vec<String>>>::default();
        let kept = Messages(Arc::clone(&logs));
        let thread = std::thread::spawn(move || {
            use tracing_subscriber::layer::SubscriberExt as _;
            let _logs = tracing::subscriber::set_default(tracing_subscriber::registry().with(kept));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(running.run(stopped))
        });
        Self {
            worker,
            gate,
            seen,
            stop: Some(stop),
            thread: Some(thread),
            logs,
        }
    }

    /// The messages the worker logged that contain `text`.
    fn logged(&self, text: &str) -> Vec<String> {
        let logs = self.logs.lock().unwrap();
        logs.iter()
            .filter(|line| line.contains(text))
            .cloned()
            .collect()
    }

    fn held(&self) -> Vec<Claim> {
        self.worker.held()
    }

    fn handled(&self) -> Vec<(String, u64)> {
        self.seen.lock().unwrap().clone()
    }

    /// Stops the worker and waits for its thread (off the test's runtime).
    async fn stop(mut self) {
        self.gate.open();
        let _ = self.stop.take().unwrap().send(());
        let thread = self.thread.take().unwrap();
        let outcome = tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
        outcome.unwrap();
    }
}

fn changes(projection: &str, change: &str) -> u64 {
    METRICS.total(
        "eventsource.projection.segment.changes",
        &[("projection.name", projection), ("change", change)],
    )
}

/// Every event of `orders` orders of `versions` versions handled (by one worker or the
/// other, at least once), and each worker's handling of each order in version order: after
/// the first version it handled of an order, the next, or one again (a segment resumed or
/// taken over goes on from its checkpoint), never one ahead.
fn assert_all_handled(workers: &[&Threaded], orders: usize, versions: u64) {
    let mut all = BTreeSet::new();
    for worker in workers {
        let mut last: BTreeMap<String, u64> = BTreeMap::new();
        for (order, version) in worker.handled() {
            if let Some(previous) = last.insert(order.clone(), version) {
                assert!(
                    version <= previous + 1,
                    "{order}: {version} after {previous}"
                );
            }
            all.insert((order, version));
        }
    }
    for n in 0..orders {
        for version in 1..=versions {
            let order = format!("o-{n}");
            assert!(
                all.contains(&(order.clone(), version)),
                "{order} v{version}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stalled_while_another_takes_over_is_fenced_once_per_segment() {
    let name = "StalledAndFenced";
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    let claims: Arc<dyn SegmentClaims> = Arc::new(InMemorySegmentClaims::new());
    seed(&store, 20, 2).await;
    let a = Threaded::start(name, "a", &store, &checkpoints, Arc::clone(&claims));
    let b = Threaded::start(name, "b", &store, &checkpoints, Arc::clone(&claims));
    let shared = async || a.held().len() == 2 && b.held().len() == 2;
    wait_for("two segments each", Duration::from_secs(10), shared).await;
    let (fenced, lost) = (changes(name, "fenced"), changes(name, "lost"));

    let a_held = a.held();
    a.gate.close();
    seed_more(&store, 20, 3).await;
    let stalled = async || a.gate.is_holding();
    wait_for("a stalls in a handler", Duration::from_secs(10), stalled).await;
    let taken = async || b.held().len() == 4;
    wait_for("b takes a's segments over", Duration::from_secs(10), taken).await;
    a.gate.open();

    let told = async || changes(name, "fenced") - fenced == a_held.len() as u64;
    wait_for("a's segments counted fenced", Duration::from_secs(10), told).await;
    let rejoined = async || a.held().len() == 2 && b.held().len() == 2;
    wait_for("a rejoins as a newcomer", Duration::from_secs(10), rejoined).await;
    let epochs_after: Vec<u64> = a.held().iter().map(|claim| claim.epoch).collect();
    assert!(
        epochs_after.iter().all(|&epoch| epoch > 1),
        "claimed anew: {epochs_after:?}"
    );
    assert_eq!(
        changes(name, "fenced") - fenced,
        a_held.len() as u64,
        "once per segment"
    );
    assert_eq!(
        changes(name, "lost"),
        lost,
        "a stall is not a lost database"
    );
    let all = async || {
        let mut handled: BTreeSet<(String, u64)> = a.handled().into_iter().collect();
        handled.extend(b.handled());
        handled.len() == 60
    };
    wait_for("every event handled", Duration::from_secs(10), all).await;
    assert_all_handled(&[&a, &b], 20, 3);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stalled_while_nobody_takes_over_resumes_its_claims_at_once() {
    let name = "StalledAndResumed";
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    let claims = InMemorySegmentClaims::new();
    seed(&store, 20, 2).await;
    let a = Threaded::start(name, "a", &store, &checkpoints, Arc::new(claims.clone()));
    let holds = async || a.held().len() == 4 && a.handled().len() == 40;
    wait_for("a holds every segment", Duration::from_secs(10), holds).await;
    let before = a.held();
    let counted = |change| changes(name, change);
    let (claimed, lost, fenced) = (counted("claimed"), counted("lost"), counted("fenced"));

    a.gate.close();
    seed_more(&store, 20, 3).await;
    wait_for("a stalls", Duration::from_secs(10), async || {
        a.gate.is_holding()
    })
    .await;
    // Past its timeout: the store says every claim expired, but nobody took one.
    let expired = async || {
        let owners = claims.owners(name).await.unwrap();
        owners.len() == 4 && owners.iter().all(|owner| owner.expired)
    };
    wait_for("the claims expire", Duration::from_secs(10), expired).await;
    a.gate.open();

    let resumed = async || a.held() == before;
    wait_for(
        "a holds its claims again, at the same epochs",
        Duration::from_secs(10),
        resumed,
    )
    .await;
    let all = async || {
        let handled: BTreeSet<(String, u64)> = a.handled().into_iter().collect();
        handled.len() == 60
    };
    wait_for("every event handled", Duration::from_secs(10), all).await;
    assert_eq!(
        (counted("claimed"), counted("lost"), counted("fenced")),
        (claimed, lost, fenced),
        "nothing changed hands"
    );
    assert_all_handled(&[&a], 20, 3);
    a.stop().await;
}

/// A worker paused (its whole thread blocked, as SIGSTOP would) after it saw its claims in
/// time and sent their renewal, but before the renewal reached the store, while another
/// worker takes its segments over: when it wakes it says it stalled past its claim timeout,
/// never that it renewed in time (which of the two it said once depended on where the
/// pause fell).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_paused_mid_renewal_says_it_stalled_not_that_it_was_in_time() {
    let name = "PausedMidRenewal";
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    let inner = InMemorySegmentClaims::new();
    let pausing = Switchable {
        inner: inner.clone(),
        ..Switchable::default()
    };
    seed(&store, 20, 2).await;
    let a = Threaded::start(name, "a", &store, &checkpoints, Arc::new(pausing.clone()));
    let b = Threaded::start(name, "b", &store, &checkpoints, Arc::new(inner));
    let shared = async || a.held().len() == 2 && b.held().len() == 2;
    wait_for("two segments each", Duration::from_secs(10), shared).await;
    let fenced = changes(name, "fenced");

    pausing.pause_next_renewal.store(true, Ordering::SeqCst);
    let told = async || changes(name, "fenced") - fenced == 2;
    wait_for(
        "a's two segments counted fenced",
        Duration::from_secs(10),
        told,
    )
    .await;
    let rejoined = async || a.held().len() == 2 && b.held().len() == 2;
    wait_for("a rejoins as a newcomer", Duration::from_secs(10), rejoined).await;

    assert_eq!(
        a.logged("renewed it in time"),
        Vec::<String>::new(),
        "a was paused past its timeout, not in time"
    );
    assert_eq!(
        a.logged("stalled past its claim timeout").len(),
        2,
        "each segment told as a stall: {:?}",
        a.logged("segment")
    );
    seed_more(&store, 20, 3).await;
    let all = async || {
        let mut handled: BTreeSet<(String, u64)> = a.handled().into_iter().collect();
        handled.extend(b.handled());
        handled.len() == 60
    };
    wait_for("every event handled", Duration::from_secs(10), all).await;
    assert_all_handled(&[&a, &b], 20, 3);
    a.stop().await;
    b.stop().await;
}

/// In-memory claims that can be cut off: every call fails while `down`; and whose next
/// renewal, once `pause_next_renewal` is set, blocks the calling thread for three claim
/// timeouts before it reaches the store.
#[derive(Clone, Default)]
struct Switchable {
    inner: InMemorySegmentClaims,
    down: Arc<AtomicBool>,
    pause_next_renewal: Arc<AtomicBool>,
}

impl Switchable {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the claims store is down".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl SegmentClaims for Switchable {
    async fn split(&self, projection: &str, count: u32) -> Result<(u32, bool), StoreError> {
        self.check()?;
        self.inner.split(projection, count).await
    }

    async fn heartbeat(&self, p: &str, worker: &str, timeout: Duration) -> Result<u32, StoreError> {
        self.check()?;
        self.inner.heartbeat(p, worker, timeout).await
    }

    async fn renew(&self, p: &str, w: &str, claims: &[Claim]) -> Result<Vec<Claim>, StoreError> {
        self.check()?;
        if self.pause_next_renewal.swap(false, Ordering::SeqCst) {
            std::thread::sleep(TIMEOUT * 3);
        }
        self.inner.renew(p, w, claims).await
    }

    async fn claim(
        &self,
        p: &str,
        worker: &str,
        most: usize,
        timeout: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.check()?;
        self.inner.claim(p, worker, most, timeout).await
    }

    async fn release(&self, p: &str, w: &str, claims: &[Claim]) -> Result<(), StoreError> {
        self.check()?;
        self.inner.release(p, w, claims).await
    }

    async fn leave(&self, projection: &str, worker: &str) -> Result<(), StoreError> {
        self.check()?;
        self.inner.leave(projection, worker).await
    }

    async fn save_fenced(
        &self,
        projection: &str,
        worker: &str,
        claim: Claim,
        checkpoints: &dyn CheckpointStore,
        checkpoint: &str,
        position: u64,
    ) -> Result<bool, StoreError> {
        self.check()?;
        let inner = &self.inner;
        inner
            .save_fenced(projection, worker, claim, checkpoints, checkpoint, position)
            .await
    }

    async fn owners(&self, projection: &str) -> Result<Vec<SegmentOwner>, StoreError> {
        self.check()?;
        self.inner.owners(projection).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_cut_from_its_claims_store_counts_its_claims_lost_then_resumes_them() {
    let name = "CutOff";
    let store = InMemoryEventStore::new();
    let checkpoints = InMemoryCheckpointStore::new();
    let claims = Switchable::default();
    seed(&store, 20, 2).await;
    let a = Threaded::start(name, "a", &store, &checkpoints, Arc::new(claims.clone()));
    let holds = async || a.held().len() == 4 && a.handled().len() == 40;
    wait_for("a holds every segment", Duration::from_secs(10), holds).await;
    let before = a.held();
    let counted = |change| changes(name, change);
    let (claimed, lost, fenced) = (counted("claimed"), counted("lost"), counted("fenced"));

    claims.down.store(true, Ordering::SeqCst);
    let told = async || counted("lost") - lost == 4;
    wait_for(
        "every claim counted lost while the store is down",
        TIMEOUT + Duration::from_secs(5),
        told,
    )
    .await;
    assert!(a.held().is_empty(), "stopped handling: {:?}", a.held());
    assert_eq!(counted("fenced"), fenced, "nobody refused a write");

    claims.down.store(false, Ordering::SeqCst);
    let resumed = async || a.held() == before;
    wait_for(
        "a holds its claims again, at the same epochs",
        Duration::from_secs(10),
        resumed,
    )
    .await;
    assert_eq!(counted("claimed") - claimed, 4, "each claimed again");
    assert_eq!(counted("lost") - lost, 4, "each lost once");
    seed_more(&store, 20, 3).await;
    let all = async || {
        let handled: BTreeSet<(String, u64)> = a.handled().into_iter().collect();
        handled.len() == 60
    };
    wait_for("the new events handled", Duration::from_secs(10), all).await;
    assert_all_handled(&[&a], 20, 3);
    a.stop().await;
}
