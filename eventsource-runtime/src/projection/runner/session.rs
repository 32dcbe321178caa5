//! What a runner does while it holds the lease: load the checkpoint, read batches, hand
//! their events over one at a time, save the checkpoint, wait for new events; and how it
//! gets the lease.

use tokio::sync::MutexGuard;

use super::cadence::{Cadence, alongside};
use super::retry::{log_retry, log_stopped};
use super::shutdown::Shutdown;
use super::unreadable::{Delivered, Read, RetryRequests, upcast_batch};
use super::{Halt, Mode, ProjectionRunner, RunnerError};
use crate::event::EventEnvelope;
use crate::health::ComponentState;
use crate::projection::checkpoint::ProjectionLease;
use crate::projection::{Projection, ProjectionError, handle_many, handle_one};
use crate::store::{AppendSignal, EventStore, LogReader, ReadBatch, Segment, StoreError};
use crate::telemetry::otel::log::log_info;
use crate::telemetry::values::Chain;

impl<P: Projection> ProjectionRunner<P> {
    /// The work done while holding the lease.
    pub(super) async fn hold(
        &self,
        name: &str,
        mode: Mode,
        lease: &dyn ProjectionLease,
        shutdown: &mut Shutdown<'_>,
    ) -> Result<u64, Halt> {
        if mode == Mode::Rebuild {
            // Back to 0: a reset, which a save never does.
            self.retrying(name, "reset checkpoint", shutdown, || {
                self.checkpoints.reset_leased(lease, name, 0)
            })
            .await?;
            self.projection
                .lock()
                .await
                .reset()
                .await
                .map_err(|source| RunnerError::ResetFailed {
                    projection: name.to_owned(),
                    source,
                })?;
        }
        let mut position = self
            .reading(name, "load checkpoint", shutdown, || {
                self.checkpoints.load(name)
            })
            .await?;
        let upcasters = self.projection.lock().await.upcasters();
        let mut signal = match mode {
            Mode::Follow => self.store.appended_signal(),
            Mode::CatchUp | Mode::Rebuild => None,
        };
        let mut cadence = Cadence::since(position);
        // The next batch, read while the last one was handled.
        let mut ahead: Option<Result<ReadBatch, StoreError>> = None;
        // What reads the batches ahead while the runner catches up (full batches follow one
        // another), and where its next batch starts.
        let mut reader: Option<(u64, Box<dyn LogReader + '_>)> = None;
        // Parked events an operator asked to retry are looked for when caught up.
        let mut retry_requests = RetryRequests::default();
        loop {
            if let Some(signal) = &mut signal {
                // Seen: a later append wakes the wait below, even one made during the read.
                signal.borrow_and_update();
            }
            let read = match ahead.take() {
                Some(Ok(batch)) => upcast_batch(&upcasters, batch.into_events()),
                // Read again, with the retries and the rules for unreadable events.
                Some(Err(_)) | None => {
                    match self.read(name, position + 1, &upcasters, shutdown).await {
                        Ok(read) => read,
                        Err(halt) => {
                            return Err(self
                                .saved_before(halt, name, lease, position, &mut cadence, shutdown)
                                .await);
                        }
                    }
                }
            };
            let batch = match read {
                Read::Events(batch) => batch,
                Read::Unreadable {
                    position: at,
                    error,
                } => {
                    if let Err(halt) = self.unreadable(name, lease, at, error, shutdown).await {
                        return Err(self
                            .saved_before(halt, name, lease, position, &mut cadence, shutdown)
                            .await);
                    }
                    cadence.settle().await?;
                    position = at;
                    self.save_checkpoint(name, lease, position, shutdown)
                        .await?;
                    cadence.saved(position);
                    continue;
                }
            };
            let checkpoint = position;
            let full = batch.len() >= self.settings.batch_size;
            let following = mode == Mode::Follow && !full;
            let head = self.probe.after_read(checkpoint, &batch, following).await;
            // The checkpoint is saved in the background, and the next batch read, while this
            // batch is handled.
            if cadence.must_settle(batch.len(), &self.settings) {
                cadence.settle().await?;
            }
            cadence.start_if_due(checkpoint, &self.settings, || {
                self.checkpoints.save_leased(lease, name, checkpoint)
            });
            let next_from = batch.last().filter(|_| full).map(|last| last.position + 1);
            let limit = self.settings.batch_size;
            let reading = reader.take();
            let read_next = async {
                let from = next_from?;
                let mut reader = match reading {
                    Some((at, reader)) if at == from => reader,
                    _ => self.batches(from, limit),
                };
                let read = reader.next_batch().await;
                Some((from, read, reader))
            };
            let handle = self.handle_batch(name, lease, &batch, &mut position, shutdown);
            let ((next, handled), saved) = cadence.while_saving(alongside(read_next, handle)).await;
            saved?;
            cadence.handled(batch.len());
            if handled.is_err() {
                position = before_unfinished_split(&batch, position, checkpoint);
            }
            // A full batch's checkpoint is saved in the background; any other batch's at
            // once, and whatever stopped the batch (the failing event stays the next one).
            if (handled.is_err() || !full) && !matches!(handled, Err(Halt::LeaseLost)) {
                cadence.settle().await?;
                if position > cadence.saved_at() {
                    self.save_checkpoint(name, lease, position, shutdown)
                        .await?;
                    cadence.saved(position);
                }
            }
            handled?;
            self.probe.after_batch(position, head, following);
            if full {
                ahead = match next {
                    Some((from, read, next_reader)) if from == position + 1 => {
                        if let Ok(batch) = &read {
                            reader = Some((batch.next_position(from), next_reader));
                        }
                        Some(read)
                    }
                    _ => None,
                };
                continue;
            }
            if mode != Mode::Follow {
                if batch.is_empty() {
                    return Ok(position);
                }
                // A short batch may have stopped before an unreadable event: read on.
                continue;
            }
            if retry_requests.due(self.settings.poll_interval) {
                self.retry_requested(name, lease, &upcasters, shutdown)
                    .await?;
            }
            self.wait_for_events(&mut signal, lease, shutdown).await?;
        }
    }

    /// `halt`, once the checkpoint is saved at `position` if it is not yet (a runner stops
    /// with its checkpoint saved, unless its lease is lost).
    async fn saved_before(
        &self,
        halt: Halt,
        name: &str,
        lease: &dyn ProjectionLease,
        position: u64,
        cadence: &mut Cadence<'_>,
        shutdown: &mut Shutdown<'_>,
    ) -> Halt {
        if matches!(halt, Halt::LeaseLost) {
            return halt;
        }
        if let Err(lost) = cadence.settle().await {
            return lost;
        }
        if position <= cadence.saved_at() {
            return halt;
        }
        match self.save_checkpoint(name, lease, position, shutdown).await {
            Ok(()) => halt,
            Err(failed) => failed,
        }
    }

    /// Saves the checkpoint as the lease's holder; `Halt::LeaseLost` once it is lost.
    pub(super) async fn save_checkpoint(
        &self,
        name: &str,
        lease: &dyn ProjectionLease,
        position: u64,
        shutdown: &mut Shutdown<'_>,
    ) -> Result<(), Halt> {
        self.retrying(name, "save checkpoint", shutdown, || {
            self.checkpoints.save_leased(lease, name, position)
        })
        .await
    }

    /// Waits for the lease; `Halt::Shutdown` if shutdown comes first.
    pub(super) async fn acquire(
        &self,
        name: &str,
        shutdown: &mut Shutdown<'_>,
    ) -> Result<Box<dyn ProjectionLease>, Halt> {
        let mut waiting = false;
        loop {
            let lease = self
                .reading(name, "acquire lease", shutdown, || {
                    self.checkpoints.try_acquire(name)
                })
                .await?;
            if let Some(lease) = lease {
                if waiting {
                    log_info!(
                        projection = name,
                        "lease acquired; taking over the projection"
                    );
                    // The runner it takes over from may not know yet that its lease is gone.
                    let grace = self.settings.takeover_grace;
                    if !grace.is_zero() {
                        shutdown
                            .or(tokio::time::sleep(grace))
                            .await
                            .ok_or(Halt::Shutdown)?;
                    }
                }
                return Ok(lease);
            }
            if !waiting {
                let status = &self.probe.status;
                if status.state() != ComponentState::LeaseLost {
                    status.set(ComponentState::WaitingForLease);
                }
                log_info!(
                    projection = name,
                    "another runner holds the projection; waiting for it"
                );
                waiting = true;
            }
            shutdown
                .or(tokio::time::sleep(self.settings.lease_retry_interval))
                .await
                .ok_or(Halt::Shutdown)?;
        }
    }

    /// Hands the batch's events over in order, moving `position` past each success: one at
    /// a time, or in runs of up to [`Projection::max_batch`] events the projection handles.
    async fn handle_batch(
        &self,
        name: &str,
        lease: &dyn ProjectionLease,
        batch: &[EventEnvelope],
        position: &mut u64,
        shutdown: &mut Shutdown<'_>,
    ) -> Result<(), Halt> {
        let max_batch = self.projection.lock().await.max_batch();
        if max_batch > 1 {
            return self
                .handle_runs(name, lease, batch, max_batch, position, shutdown)
                .await;
        }
        for event in batch {
            if shutdown.requested() {
                return Err(Halt::Shutdown);
            }
            self.deliver(name, lease, event, shutdown).await?;
            *position = event.position;
        }
        Ok(())
    }

    /// Hands the batch over in runs: each run the longest stretch (up to `max_batch`) of
    /// consecutive events the projection handles; the others are passed over.
    async fn handle_runs(
        &self,
        name: &str,
        lease: &dyn ProjectionLease,
        batch: &[EventEnvelope],
        max_batch: usize,
        position: &mut u64,
        shutdown: &mut Shutdown<'_>,
    ) -> Result<(), Halt> {
        let mut rest = batch;
        while let Some(first) = rest.first() {
            if shutdown.requested() {
                return Err(Halt::Shutdown);
            }
            let run = {
                let projection = self.locked().await;
                rest.iter()
                    .take(max_batch)
                    .take_while(|event| projection.handles(&event.event_type))
                    .count()
            };
            if run == 0 {
                *position = first.position;
                rest = &rest[1..];
                continue;
            }
            let (events, after) = rest.split_at(run);
            self.deliver_run(name, lease, events, position, shutdown)
                .await?;
            rest = after;
        }
        Ok(())
    }

    /// A run of events in one call, retried from the first one not applied, with backoff,
    /// until all are applied or attempts run out (counted per event: progress starts the
    /// count again); never handed over once the lease is lost.
    async fn deliver_run(
        &self,
        name: &str,
        lease: &dyn ProjectionLease,
        mut events: &[EventEnvelope],
        position: &mut u64,
        shutdown: &mut Shutdown<'_>,
    ) -> Result<(), Halt> {
        let mut attempt = 1;
        while !events.is_empty() {
            let result = {
                let mut projection = self.locked().await;
                if !lease.is_held() {
                    return Err(Halt::LeaseLost);
                }
                handle_many(&mut *projection, events).await
            };
            let failure = match result {
                Ok(()) => {
                    *position = events[events.len() - 1].position;
                    return Ok(());
                }
                Err(failure) => failure,
            };
            let handled = failure.handled.min(events.len() - 1);
            if handled > 0 {
                *position = events[handled - 1].position;
                events = &events[handled..];
                attempt = 1;
            }
            if !lease.is_held() {
                // Fenced, or the claim expired while the handler ran: no retry.
                return Err(Halt::LeaseLost);
            }
            let Err(error) = self
                .park_if_undecodable(name, lease, &events[0], failure.error, shutdown)
                .await?
            else {
                *position = events[0].position;
                events = &events[1..];
                attempt = 1;
                continue;
            };
            self.retry_or_stop(name, &events[0], attempt, error, shutdown)
                .await?;
            attempt += 1;
        }
        Ok(())
    }

    /// One event, retried with backoff until it succeeds or attempts run out (parked at
    /// once when its handler cannot decode it and the policy parks); never handed over
    /// once the lease is lost.
    pub(super) async fn deliver(
        &self,
        name: &str,
        lease: &dyn ProjectionLease,
        event: &EventEnvelope,
        shutdown: &mut Shutdown<'_>,
    ) -> Result<Delivered, Halt> {
        let mut attempt = 1;
        loop {
            let result = {
                let mut projection = self.locked().await;
                if !projection.handles(&event.event_type) {
                    return Ok(Delivered::Handled);
                }
                // Asked with the projection locked, right before the call.
                if !lease.is_held() {
                    return Err(Halt::LeaseLost);
                }
                handle_one(&mut *projection, event).await
            };
            let Err(error) = result else {
                return Ok(Delivered::Handled);
            };
            if !lease.is_held() {
                return Err(Halt::LeaseLost);
            }
            let error = match self
                .park_if_undecodable(name, lease, event, error, shutdown)
                .await?
            {
                Ok(reason) => return Ok(Delivered::Parked(reason)),
                Err(error) => error,
            };
            self.retry_or_stop(name, event, attempt, error, shutdown)
                .await?;
            attempt += 1;
        }
    }

    /// The projection, locked: at once when no one holds it (the usual case: once per event
    /// while catching up), without making and polling a lock future.
    async fn locked(&self) -> MutexGuard<'_, P> {
        match self.projection.try_lock() {
            Ok(projection) => projection,
            Err(_) => self.projection.lock().await,
        }
    }

    /// After attempt number `attempt` at `event` failed with `error`: stops with
    /// [`RunnerError::HandlerFailed`] once the attempts ran out, else waits the backoff.
    async fn retry_or_stop(
        &self,
        name: &str,
        event: &EventEnvelope,
        attempt: u32,
        error: ProjectionError,
        shutdown: &mut Shutdown<'_>,
    ) -> Result<(), Halt> {
        // A store the handler writes to that is unavailable is waited for as the runner's
        // own stores are: without limit unless `max_store_attempts` says otherwise.
        let limit = match error {
            ProjectionError::Unavailable(_) => self.settings.max_store_attempts,
            _ => Some(self.settings.max_attempts),
        };
        if limit.is_some_and(|limit| attempt >= limit) {
            let error = RunnerError::HandlerFailed {
                projection: name.to_owned(),
                position: event.position,
                event_type: event.event_type.to_string(),
                attempts: attempt,
                source: error,
            };
            log_stopped(&error);
            return Err(error.into());
        }
        self.probe
            .status
            .set_after(ComponentState::Retrying, &error);
        let delay = self.settings.backoff(attempt);
        let position = event.position;
        log_retry(name, "handler", position, attempt, delay, &Chain(&error));
        // Not held across the wait: an error need not be `Sync`.
        drop(error);
        shutdown
            .or(tokio::time::sleep(delay))
            .await
            .ok_or(Halt::Shutdown)
    }

    /// Caught up: waits for the poll interval, an append signal, or shutdown; then
    /// `Halt::LeaseLost` if the lease was lost meanwhile.
    async fn wait_for_events(
        &self,
        signal: &mut Option<AppendSignal>,
        lease: &dyn ProjectionLease,
        shutdown: &mut Shutdown<'_>,
    ) -> Result<(), Halt> {
        let interval = self.settings.poll_interval;
        let woken = shutdown
            .or(async {
                match signal.as_mut() {
                    None => {
                        tokio::time::sleep(interval).await;
                        true
                    }
                    Some(signal) => tokio::select! {
                        () = tokio::time::sleep(interval) => true,
                        changed = signal.changed() => changed.is_ok(),
                    },
                }
            })
            .await
            .ok_or(Halt::Shutdown)?;
        if !woken {
            // The store is gone or stopped signalling: poll only.
            *signal = None;
        }
        if !lease.is_held() {
            return Err(Halt::LeaseLost);
        }
        Ok(())
    }
}

impl<P: Projection> ProjectionRunner<P> {
    /// Reads the runner's part of the log from `from` on, a batch at a time: the store's
    /// own reader for the whole log, one [`EventStore::read_segment`] per batch for a
    /// segment.
    fn batches(&self, from: u64, limit: usize) -> Box<dyn LogReader + '_> {
        if self.segment.is_whole() {
            return self.store.read_all_batches(from, limit);
        }
        Box::new(SegmentPages {
            store: &*self.store,
            segment: self.segment,
            next: from,
            limit,
        })
    }
}

/// A segment's batches, one [`EventStore::read_segment`] each.
struct SegmentPages<'a> {
    store: &'a dyn EventStore,
    segment: Segment,
    next: u64,
    limit: usize,
}

#[async_trait::async_trait]
impl LogReader for SegmentPages<'_> {
    async fn next_batch(&mut self) -> Result<ReadBatch, StoreError> {
        let batch = self
            .store
            .read_segment(self.segment, self.next, self.limit)
            .await?;
        self.next = batch.next_position(self.next);
        Ok(batch)
    }
}

/// The position to save after a batch stopped at `position`: the events a split made of
/// one stored event share its position, so a batch that stopped among them saves the
/// position before it (the next run hands the whole stored event over again).
fn before_unfinished_split(batch: &[EventEnvelope], position: u64, checkpoint: u64) -> u64 {
    if batch
        .iter()
        .filter(|e| e.position == position)
        .nth(1)
        .is_none()
    {
        return position;
    }
    batch
        .iter()
        .map(|e| e.position)
        .filter(|&p| p < position)
        .max()
        .unwrap_or(checkpoint)
}
