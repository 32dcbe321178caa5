//! A claimed segment as a runner's lease: held while its claim is renewed in time, its
//! checkpoint saved only under its epoch; and the fence a handler can read
//! ([`Fence::current`]) to make its own writes conditional on the claim.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::claims::{Claim, SegmentClaims};
use super::instrument;
use crate::projection::checkpoint::{CheckpointStore, ProjectionLease};
use crate::store::StoreError;

/// Whether a claim still holds, as its worker knows it: until a deadline that each renewal
/// moves (short of the store's expiry), unless it was found taken over. Its loss, when it
/// comes, is told once (counted and logged), by whoever learns it first.
#[derive(Debug)]
pub(super) struct ClaimState {
    valid_until: Mutex<Instant>,
    /// Found taken over (a renewal, a save or a fenced write refused its epoch) or replaced:
    /// never held again.
    revoked: AtomicBool,
    /// Its loss was told (`lost` or `fenced`).
    told: AtomicBool,
}

impl ClaimState {
    pub(super) fn until(deadline: Instant) -> Arc<Self> {
        Arc::new(Self {
            valid_until: Mutex::new(deadline),
            revoked: AtomicBool::new(false),
            told: AtomicBool::new(false),
        })
    }

    fn deadline(&self) -> Instant {
        *self
            .valid_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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

    pub(super) fn is_revoked(&self) -> bool {
        self.revoked.load(Ordering::Acquire)
    }

    /// Not renewed in time (its deadline passed), though not known to be taken over: the
    /// worker stopped handling it and waits for the store's word.
    pub(super) fn is_lapsed(&self) -> bool {
        !self.is_revoked() && Instant::now() >= self.deadline()
    }

    /// How long ago its deadline passed (zero before it).
    pub(super) fn lapsed_for(&self) -> Duration {
        Instant::now().saturating_duration_since(self.deadline())
    }

    pub(super) fn is_held(&self) -> bool {
        !self.is_revoked() && Instant::now() < self.deadline()
    }

    /// Whether this call is the first to tell its loss (the caller counts and logs it).
    pub(super) fn tell(&self) -> bool {
        !self.told.swap(true, Ordering::AcqRel)
    }

    /// Whether its loss was told.
    pub(super) fn was_told(&self) -> bool {
        self.told.load(Ordering::Acquire)
    }

    /// Held again (renewed after it lapsed): a later loss is told anew.
    pub(super) fn untell(&self) {
        self.told.store(false, Ordering::Release);
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
    /// once (its runner sees the lease lost), and the fenced write is counted (`fenced`),
    /// unless the claim's loss was told already.
    pub fn fenced(&self) {
        self.state.revoke();
        if self.state.tell() {
            instrument::fenced(&self.projection, &self.worker, self.claim);
        }
    }

    /// Runs `work` with this fence as [`current`](Self::current), its projection spans
    /// naming the segment.
    pub(super) async fn scope<F: Future>(self, work: F) -> F::Output {
        let segment = self.claim.segment;
        crate::projection::instrument::in_segment(segment, FENCE.scope(self, work)).await
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
