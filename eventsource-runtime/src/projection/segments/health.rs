//! A worker's health: its own state, and every segment of the projection as the claims store
//! and the checkpoints say (who holds it, at which epoch, how far it got, how far behind).

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use super::SegmentClaims;
use super::claims::Claim;
use crate::health::{
    ComponentHealth, ComponentState, Lag, LastError, LeaseState, ReportsHealth, SegmentHealth,
    Status, late_mark_holder,
};
use crate::projection::runner::{Probe, lag_after};

/// A segment this worker runs, and its runner's probe (its state and last error).
#[derive(Clone)]
pub(super) struct HeldSegment {
    pub(super) claim: Claim,
    pub(super) probe: Arc<Probe>,
}

/// What a worker shares with its health reporters.
pub(super) struct WorkerProbe {
    /// The worker's runner's (the projection's name, its stores).
    pub(super) runner: Arc<Probe>,
    pub(super) claims: Arc<dyn SegmentClaims>,
    /// The worker's own state: starting, following once the projection is split, retrying
    /// while the claims store cannot be reached, stopped or failed.
    pub(super) status: Status,
    /// The segments it runs, as of its last rebalance.
    pub(super) held: Mutex<Vec<HeldSegment>>,
}

impl WorkerProbe {
    pub(super) fn held(&self) -> Vec<HeldSegment> {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The worker's state, its segments' runners considered: a worker that follows is
    /// catching up (or retrying) while one of its segments is, and a standby while it holds
    /// none.
    fn state(&self, held: &[HeldSegment]) -> ComponentState {
        let state = self.status.state();
        if state != ComponentState::Following {
            return state;
        }
        if held.is_empty() {
            return ComponentState::WaitingForLease;
        }
        let states: Vec<ComponentState> = held.iter().map(|s| s.probe.status.state()).collect();
        if states.contains(&ComponentState::Retrying) {
            ComponentState::Retrying
        } else if states
            .iter()
            .any(|s| matches!(s, ComponentState::CatchingUp | ComponentState::Starting))
        {
            ComponentState::CatchingUp
        } else {
            ComponentState::Following
        }
    }

    /// Every segment's health: a few queries per segment (its checkpoint, parked events and
    /// first waiting event), the store's newest position asked once.
    async fn segments(&self, name: &str) -> Result<Vec<SegmentHealth>, crate::store::StoreError> {
        let owners = self.claims.owners(name).await?;
        let store = &*self.runner.store;
        let checkpoints = &self.runner.checkpoints;
        let head = store.head_position().await.ok().flatten();
        let mut segments = Vec::with_capacity(owners.len());
        for owner in owners {
            let checkpoint_name = owner.segment.checkpoint_name(name);
            let checkpoint = checkpoints.load(&checkpoint_name).await.ok();
            let lag = match checkpoint {
                Some(checkpoint) => lag_after(store, owner.segment, checkpoint, head).await.ok(),
                None => None,
            };
            let parked = checkpoints
                .parked(&checkpoint_name)
                .await
                .map_or(0, |parked| parked.len() as u64);
            segments.push(SegmentHealth {
                segment: owner.segment.to_string(),
                owner: owner.owner,
                epoch: owner.epoch,
                expired: owner.expired,
                checkpoint: checkpoint.unwrap_or(0),
                lag,
                parked,
            });
        }
        Ok(segments)
    }
}

#[async_trait]
impl ReportsHealth for WorkerProbe {
    /// The worker's state and lease (held: it runs a segment at least), the projection's lag
    /// (the largest of its segments'; unknown before it is split or when a segment's cannot
    /// be asked), parked events (all its segments'), the newest last error (the worker's or
    /// a segment runner's), and every segment.
    async fn health(&self) -> ComponentHealth {
        let name = self.runner.reported_name().to_owned();
        let held = self.held();
        let now = self.status.now();
        let lease = if held.is_empty() {
            LeaseState::NotHeld
        } else {
            LeaseState::Held
        };
        let mut health = ComponentHealth::new(self.runner.kind, &name, self.state(&held), lease);
        health.last_error = held
            .iter()
            .filter_map(|segment| segment.probe.status.now().last_error)
            .chain(now.last_error)
            .max_by_key(|error| error.at);
        match self.segments(&name).await {
            Ok(segments) => {
                health.parked = segments.iter().map(|segment| segment.parked).sum();
                health.lag = whole_lag(&segments);
                health.segments = segments;
            }
            Err(error) => health.last_error = Some(LastError::now(&error)),
        }
        health.mark_holder = late_mark_holder(&*self.runner.store, self.runner.kind, &name).await;
        health
    }
}

/// The projection's lag from its segments': the furthest behind (events) and the oldest
/// waiting event (age); `None` when there are none or one is unknown.
fn whole_lag(segments: &[SegmentHealth]) -> Option<Lag> {
    if segments.is_empty() {
        return None;
    }
    segments.iter().try_fold(Lag::ZERO, |whole, segment| {
        let lag = segment.lag?;
        Some(Lag {
            events: whole.events.max(lag.events),
            oldest_age: whole.oldest_age.max(lag.oldest_age),
        })
    })
}
