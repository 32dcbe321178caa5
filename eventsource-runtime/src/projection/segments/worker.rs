//! A worker's loop: split the projection, then every rebalance interval say it is alive,
//! renew its claims, give up or claim segments toward its fair share (`rebalance`); each
//! claimed segment's runner runs (in the worker's task) until it is given up, lost or the
//! worker stops.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use tokio::sync::oneshot;

use super::claims::Claim;
use super::health::HeldSegment;
use super::lease::{ClaimLease, ClaimState, Fence};
use super::{SegmentedRunner, instrument};
use crate::health::{ComponentState, LeaseState};
use crate::projection::Projection;
use crate::projection::runner::{Probe, RunnerError};
use crate::store::{Segment, StoreError};
use crate::telemetry::otel::log::log_warn;
use crate::telemetry::values::Chain;

/// A segment this worker claimed.
pub(super) struct Running {
    pub(super) claim: Claim,
    /// Its runner's: its state and last error, for the worker's health.
    pub(super) probe: Arc<Probe>,
    pub(super) state: Arc<ClaimState>,
    /// Stops the segment's runner (it saves its checkpoint first); `None` once sent, or
    /// once the runner returned.
    pub(super) stop: Option<oneshot::Sender<()>>,
    /// Stopped to be given up (its claim released once its runner returns).
    pub(super) releasing: bool,
    /// Whether its runner runs: `false` once it returned because the claim lapsed, while the
    /// claim waits for the store's word (resumed when the store still has it).
    pub(super) active: bool,
}

/// The segments this worker claimed, by segment.
pub(super) type Claims = HashMap<Segment, Running>;

/// What a segment's runner returns.
type Finished = (Claim, Result<(), RunnerError>);

/// The segments' runners, polled in the worker's own task: a projection shared by the
/// segments passes its lock from one to the next without waking another thread.
pub(super) type Segments =
    FuturesUnordered<std::pin::Pin<Box<dyn Future<Output = Finished> + Send>>>;

impl<P: Projection> SegmentedRunner<P> {
    /// Runs this worker until `shutdown` completes (returning `Ok`, its segments' runners
    /// stopped, their checkpoints saved, its claims released) or a segment's runner fails
    /// (its error, once the other segments stopped; why it stopped recorded on the
    /// segment's checkpoint, as [`CheckpointStore::record_stop`] says, and its claim given
    /// up too).
    ///
    /// [`CheckpointStore::record_stop`]: crate::projection::checkpoint::CheckpointStore::record_stop
    ///
    /// A claims store that cannot be reached is retried every rebalance interval; the
    /// segments whose claims then lapse stop on their own (counted `lost`), and are resumed
    /// or claimed again once the store answers.
    ///
    /// # Errors
    /// [`RunnerError::SegmentCountChanged`] when the projection was split into another
    /// count; otherwise as [`ProjectionRunner::run`](crate::projection::runner::ProjectionRunner::run).
    pub async fn run<F>(&self, shutdown: F) -> Result<(), RunnerError>
    where
        F: Future + Send,
    {
        let name = self.template.projection_name().await;
        let status = &self.probe.status;
        status.set(ComponentState::Starting);
        let mut shutdown = std::pin::pin!(shutdown);
        tokio::select! {
            _ = &mut shutdown => {
                status.set(ComponentState::Stopped);
                return Ok(());
            }
            prepared = self.prepared(&name) => if let Err(error) = prepared {
                status.set_after(ComponentState::Failed, &error);
                return Err(error);
            },
        }
        status.set(ComponentState::Following);
        let mut running = Claims::new();
        let mut tasks: Segments = FuturesUnordered::new();
        let mut outage = Outage::default();
        let mut tick = tokio::time::interval(self.interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first rebalance only says the worker is alive: workers started together then
        // see each other before they claim, and share from the start.
        let mut joined = false;
        let outcome = 'worker: loop {
            tokio::select! {
                _ = &mut shutdown => break Ok(()),
                Some(finished) = tasks.next(), if !tasks.is_empty() => {
                    let finished = self.finished(&name, &mut running, &mut tasks, &outage, finished);
                    if let Err(error) = finished.await {
                        break Err(error);
                    }
                }
                _ = tick.tick() => {
                    if !joined {
                        joined = self.claims.heartbeat(&name, &self.worker, self.claim_timeout).await.is_ok();
                        continue;
                    }
                    self.tell_lost(&name, &running, &outage);
                    // The segments go on while the worker talks to the claims store: the
                    // runners that end meanwhile are dealt with after.
                    let mut ended = Vec::new();
                    let rebalanced = {
                        let rebalance = std::pin::pin!(self.rebalance(&name, &mut running));
                        drive_alongside(rebalance, &mut tasks, &mut ended).await
                    };
                    match rebalanced {
                        Ok(claimed) => {
                            outage = Outage::default();
                            for (claim, valid_until) in claimed {
                                let state = ClaimState::until(valid_until);
                                self.start(&name, claim, state, &mut running, &mut tasks);
                            }
                            self.resume_held(&name, &mut running, &mut tasks);
                            self.record_held(&running);
                            status.set(ComponentState::Following);
                        }
                        Err(error) => {
                            outage.failed();
                            self.tell_lost(&name, &running, &outage);
                            self.record_held(&running);
                            status.set_after(ComponentState::Retrying, &error);
                            log_warn!(
                                projection = name.as_str(),
                                worker = self.worker.as_str(),
                                error = %Chain(&error),
                                "could not rebalance the projection's segments; trying again"
                            );
                        }
                    }
                    for finished in ended {
                        let finished = self.finished(&name, &mut running, &mut tasks, &outage, finished);
                        if let Err(error) = finished.await {
                            break 'worker Err(error);
                        }
                    }
                }
            }
        };
        self.stop_all(&name, &mut running, &mut tasks).await;
        match &outcome {
            Ok(()) => status.set_with_lease(ComponentState::Stopped, LeaseState::NotHeld),
            Err(error) => status.set_after(ComponentState::Failed, error),
        }
        if let Err(error) = self.claims.leave(&name, &self.worker).await {
            log_warn!(
                projection = name.as_str(),
                error = %Chain(&error),
                "could not say the worker left: the others count it out after the claim timeout"
            );
        }
        outcome
    }

    /// [`prepare`](Self::prepare), tried again every rebalance interval while a store is
    /// unavailable.
    async fn prepared(&self, name: &str) -> Result<(), RunnerError> {
        loop {
            match self.prepare(name).await {
                Err(RunnerError::Store {
                    source: StoreError::Unavailable(error),
                    ..
                }) => {
                    self.probe
                        .status
                        .set_after(ComponentState::Retrying, &*error);
                    log_warn!(
                        projection = name,
                        error = %Chain(&*error),
                        "could not split the projection: the store is unavailable; trying again"
                    );
                    tokio::time::sleep(self.interval()).await;
                }
                prepared => return prepared,
            }
        }
    }

    /// Records the split (or checks it), creates the store's segment index, and starts the
    /// segments of a projection split for the first time from its whole-log checkpoint.
    async fn prepare(&self, name: &str) -> Result<(), RunnerError> {
        let store_error = |operation: &'static str| {
            move |source: StoreError| RunnerError::Store {
                projection: name.to_owned(),
                operation,
                source,
            }
        };
        if let Err(error) = self.template.store.prepare_segments(self.count).await {
            log_warn!(
                projection = name,
                error = %Chain(&error),
                "could not prepare the store's segment reads (an index): reading without it"
            );
        }
        let first = self
            .claims
            .owners(name)
            .await
            .map_err(store_error("read segments"))?
            .is_empty();
        if first {
            // Split for the first time: every segment has handled what the whole did.
            let checkpoints = &self.template.checkpoints;
            let whole = checkpoints
                .load(name)
                .await
                .map_err(store_error("load checkpoint"))?;
            for segment in Segment::all(self.count) {
                let segment_name = segment.checkpoint_name(name);
                let load = checkpoints.load(&segment_name).await;
                if whole > 0 && load.map_err(store_error("load checkpoint"))? == 0 {
                    checkpoints
                        .save(&segment_name, whole)
                        .await
                        .map_err(store_error("save checkpoint"))?;
                }
            }
        }
        let (recorded, _) = self
            .claims
            .split(name, self.count)
            .await
            .map_err(store_error("split"))?;
        if recorded != self.count {
            return Err(RunnerError::SegmentCountChanged {
                projection: name.to_owned(),
                recorded,
                asked: self.count,
            });
        }
        Ok(())
    }

    /// Starts the runner of `claim` (just claimed, or resumed with its `state`).
    fn start(
        &self,
        name: &str,
        claim: Claim,
        state: Arc<ClaimState>,
        running: &mut Claims,
        tasks: &mut Segments,
    ) {
        let segment = claim.segment;
        let checkpoint = segment.checkpoint_name(name);
        let fence = Fence {
            projection: Arc::from(name),
            worker: Arc::from(self.worker.as_str()),
            claim,
            checkpoint: Arc::from(checkpoint.as_str()),
            state: Arc::clone(&state),
        };
        let lease = ClaimLease {
            fence: fence.clone(),
            claims: Arc::clone(&self.claims),
            checkpoints: Arc::clone(&self.template.checkpoints),
        };
        let runner = self.template.for_segment(segment, name);
        let probe = Arc::clone(runner.health_probe());
        let (stop, stopped) = oneshot::channel::<()>();
        tasks.push(Box::pin(fence.scope(async move {
            let result = runner.run_claimed(&lease, stopped).await;
            (claim, result)
        })));
        let entry = Running {
            claim,
            probe,
            state,
            stop: Some(stop),
            releasing: false,
            active: true,
        };
        // A claim of this segment still winding down (taken over, then claimed again) is
        // replaced: its runner stops at its next check (its state is revoked).
        if let Some(previous) = running.insert(segment, entry)
            && previous.claim != claim
        {
            previous.state.revoke();
        }
    }

    /// Starts again the runners of the claims that lapsed and are held again (renewed, the
    /// store still having them at their epoch); gives up those being given up.
    fn resume_held(&self, name: &str, running: &mut Claims, tasks: &mut Segments) {
        let resumed: Vec<(Claim, Arc<ClaimState>)> = running
            .values()
            .filter(|segment| !segment.active && !segment.releasing && segment.state.is_held())
            .map(|segment| (segment.claim, Arc::clone(&segment.state)))
            .collect();
        for (claim, state) in resumed {
            self.start(name, claim, state, running, tasks);
        }
    }

    /// A segment's runner returned: give its claim up if asked to, forget it if taken over,
    /// keep it (its runner stopped) while its lapsed claim waits for the store's word; a
    /// failure gives it up and stops the worker.
    async fn finished(
        &self,
        name: &str,
        running: &mut Claims,
        tasks: &mut Segments,
        outage: &Outage,
        (claim, result): Finished,
    ) -> Result<(), RunnerError> {
        let current = running
            .get(&claim.segment)
            .is_some_and(|segment| segment.claim == claim);
        if !current {
            // A replaced claim's runner: nothing of it is kept.
            return match result {
                Ok(()) | Err(RunnerError::LeaseLost { .. }) => Ok(()),
                Err(error) => Err(error),
            };
        }
        match result {
            Ok(()) => {
                if let Some(entry) = running.remove(&claim.segment)
                    && entry.releasing
                {
                    self.give_up(name, entry.claim).await;
                }
            }
            Err(RunnerError::LeaseLost { .. }) => {
                let Some(entry) = running.get_mut(&claim.segment) else {
                    return Ok(());
                };
                entry.active = false;
                entry.stop = None;
                let state = Arc::clone(&entry.state);
                if state.is_revoked() {
                    // Taken over: told where it was learnt.
                    running.remove(&claim.segment);
                } else if state.is_held() && !entry.releasing {
                    // Renewed since its runner saw it lapse.
                    self.start(name, claim, state, running, tasks);
                } else {
                    // Lapsed: lost now if the store is not answering, else the next
                    // renewal says whether another worker took it.
                    self.tell_lost(name, running, outage);
                }
            }
            Err(error) => {
                // Given up as a runner's lease is: its stop is recorded, and the worker
                // that takes it next need not wait out the claim timeout.
                if let Some(entry) = running.remove(&claim.segment) {
                    self.give_up(name, entry.claim).await;
                }
                self.record_held(running);
                return Err(error);
            }
        }
        self.record_held(running);
        Ok(())
    }

    /// Releases `claim` in the store (counted).
    pub(super) async fn give_up(&self, name: &str, claim: Claim) {
        match self.claims.release(name, &self.worker, &[claim]).await {
            Ok(()) => instrument::released(name, &self.worker, claim),
            Err(error) => log_warn!(
                projection = name,
                segment = claim.segment.to_string(),
                error = %Chain(&error),
                "could not release the segment: it is taken over after the claim timeout"
            ),
        }
    }

    /// Stops every segment (each saves its checkpoint) and releases the claims, those whose
    /// runner stopped already (a lapsed claim) too: the store refuses a release under an
    /// epoch another worker took over.
    async fn stop_all(&self, name: &str, running: &mut Claims, tasks: &mut Segments) {
        for segment in running.values_mut() {
            segment.releasing = true;
            if let Some(stop) = segment.stop.take() {
                let _ = stop.send(());
            }
        }
        let idle: Vec<Segment> = running
            .values()
            .filter(|segment| !segment.active)
            .map(|segment| segment.claim.segment)
            .collect();
        for segment in idle {
            if let Some(entry) = running.remove(&segment)
                && !entry.state.is_revoked()
            {
                self.give_up(name, entry.claim).await;
            }
        }
        while let Some((claim, _)) = tasks.next().await {
            if running
                .get(&claim.segment)
                .is_some_and(|segment| segment.claim == claim)
            {
                running.remove(&claim.segment);
                self.give_up(name, claim).await;
            }
        }
        running.clear();
        self.record_held(running);
    }

    pub(super) fn record_held(&self, running: &Claims) {
        let mut held: Vec<HeldSegment> = running
            .values()
            .filter(|segment| !segment.releasing && segment.state.is_held())
            .map(|segment| HeldSegment {
                claim: segment.claim,
                probe: Arc::clone(&segment.probe),
            })
            .collect();
        held.sort_unstable_by_key(|held| held.claim.segment);
        *self
            .probe
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = held;
    }
}

/// `work`'s output, the segments' runners polled meanwhile; those that end are kept in
/// `ended`.
async fn drive_alongside<W: Future>(
    mut work: std::pin::Pin<&mut W>,
    tasks: &mut Segments,
    ended: &mut Vec<Finished>,
) -> W::Output {
    loop {
        tokio::select! {
            output = &mut work => return output,
            Some(finished) = tasks.next(), if !tasks.is_empty() => ended.push(finished),
        }
    }
}

/// Since when the worker's rebalances have been failing (the claims store not answering).
#[derive(Debug, Default)]
pub(super) struct Outage {
    since: Option<Instant>,
}

impl Outage {
    /// A rebalance failed.
    pub(super) fn failed(&mut self) {
        self.since.get_or_insert_with(Instant::now);
    }

    pub(super) fn failing_for(&self) -> Option<Duration> {
        self.since.map(|since| since.elapsed())
    }
}

/// Until when a claim renewed (or taken) at `sent` counts as held by its worker: nine tenths
/// of the timeout, so it stops before the store lets another worker take it.
pub(super) fn deadline(sent: Instant, timeout: Duration) -> Instant {
    sent + timeout.mul_f64(0.9)
}
