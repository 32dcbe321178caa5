//! A claimed segment as a runner's lease: held while its claim is renewed in time, its
//! checkpoint saved only under its epoch; and the fence a handler can read
//! ([`Fence::current`]) to make its own writes conditional on the claim.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_trait::async_trait;

use super::claims::{Claim, SegmentClaims};
use super::instrument;
use crate::projection::checkpoint::{CheckpointStore, ProjectionLease};
use crate::store::StoreError;

/// Whether a claim still holds, as its worker knows it: until a deadline that each renewal
/// moves (short of the store's expiry), unless it was found taken over.
#[derive(Debug)]
pub(super) struct ClaimState {
    valid_until: Mutex<Instant>,
    revoked: AtomicBool,
}

impl ClaimState {
    pub(super) fn until(deadline: Instant) -> Arc<Self> {
        Arc::new(Self {
            valid_until: Mutex::new(deadline),
            revoked: AtomicBool::new(false),
        })
    }

    pub(super) fn extend(&self, deadline: Instant) {
        let mut until = self
            .valid_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *until = (*until).max(deadline);
    }

    pub(super) fn revoke(&self) {
        self.revoked.store(true, Ordering::Release);
    }

    /// Revokes the claim if its deadline passed unrenewed (the worker stalled past it):
    /// whether it was counted as held until now, so that its loss is told once.
    pub(super) fn expire(&self) -> bool {
        let expired = Instant::now()
            >= *self
                .valid_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
        expired && !self.revoked.swap(true, Ordering::AcqRel)
    }

    pub(super) fn is_held(&self) -> bool {
        !self.revoked.load(Ordering::Acquire)
            && Instant::now()
                < *self
                    .valid_until
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The claim a segment's handlers run under: what a handler that writes its read model in
/// the checkpoint's transaction needs to make that write conditional on the claim (as
/// `postgres::FencedProjection`s do).
#[derive(Debug, Clone)]
pub struct Fence {
    pub(super) projection: Arc<str>,
    pub(super) worker: Arc<str>,
    pub(super) claim: Claim,
    pub(super) checkpoint: Arc<str>,
    pub(super) state: Arc<ClaimState>,
}

tokio::task_local! {
    static FENCE: Fence;
}

impl Fence {
    /// The fence of the segment whose handler is running in this task, `None` outside a
    /// [`SegmentedRunner`](super::SegmentedRunner)'s segment.
    #[must_use]
    pub fn current() -> Option<Self> {
        FENCE.try_with(Clone::clone).ok()
    }

    /// The segment whose handler is running in this task, without copying the fence.
    pub(crate) fn current_segment() -> Option<crate::store::Segment> {
        FENCE.try_with(|fence| fence.claim.segment).ok()
    }

    /// The projection's name.
    #[must_use]
    pub fn projection(&self) -> &str {
        &self.projection
    }

    /// The worker holding the claim.
    #[must_use]
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// The claim: the segment and its epoch.
    #[must_use]
    pub fn claim(&self) -> Claim {
        self.claim
    }

    /// The segment's checkpoint name.
    #[must_use]
    pub fn checkpoint(&self) -> &str {
        &self.checkpoint
    }

    /// Whether the worker still counts the claim as its own (its renewals are in time, and
    /// no save found it taken over). A stalled worker learns here that its time is up.
    #[must_use]
    pub fn is_held(&self) -> bool {
        self.state.is_held()
    }

    /// Records that a conditional write found the claim taken over: the segment stops at
    /// once (its runner sees the lease lost), and the fenced save is counted.
    pub fn fenced(&self) {
        if !self.state.revoked.swap(true, Ordering::AcqRel) {
            instrument::fenced(&self.projection, self.claim);
        }
    }

    /// Runs `work` with this fence as [`current`](Self::current).
    pub(super) async fn scope<F: Future>(self, work: F) -> F::Output {
        FENCE.scope(self, work).await
    }
}

/// A claimed segment as the lease its runner holds.
pub(super) struct ClaimLease {
    pub(super) fence: Fence,
    pub(super) claims: Arc<dyn SegmentClaims>,
    pub(super) checkpoints: Arc<dyn CheckpointStore>,
}

#[async_trait]
impl ProjectionLease for ClaimLease {
    fn is_held(&self) -> bool {
        self.fence.is_held()
    }

    async fn save_checkpoint(
        &self,
        projection: &str,
        position: u64,
    ) -> Option<Result<(), StoreError>> {
        let fence = &self.fence;
        if projection != &*fence.checkpoint {
            return None;
        }
        let lost = || StoreError::LeaseLost {
            projection: projection.to_owned(),
        };
        if !fence.is_held() {
            return Some(Err(lost()));
        }
        let saved = self
            .claims
            .save_fenced(
                &fence.projection,
                &fence.worker,
                fence.claim,
                &*self.checkpoints,
                projection,
                position,
            )
            .await;
        Some(match saved {
            Ok(true) => Ok(()),
            Ok(false) => {
                fence.fenced();
                Err(lost())
            }
            Err(error) => Err(error),
        })
    }

    async fn release(self: Box<Self>) {}
}
