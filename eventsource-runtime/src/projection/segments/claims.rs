//! Where workers claim a projection's segments: the [`SegmentClaims`] trait, what a claim
//! is, and the claims of one process ([`InMemorySegmentClaims`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::projection::checkpoint::CheckpointStore;
use crate::store::{Segment, StoreError};

/// A worker's claim on one segment: the segment and its **epoch**, the fencing token that
/// grows by one with every new claim of the segment (by any worker). A save made under an
/// older epoch is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Claim {
    /// The segment claimed.
    pub segment: Segment,
    /// The claim's fencing token.
    pub epoch: u64,
}

impl Claim {
    /// A claim of `segment` at `epoch`.
    #[must_use]
    pub fn new(segment: Segment, epoch: u64) -> Self {
        Self { segment, epoch }
    }
}

/// A claim just taken, and from whom.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Claimed {
    /// The claim.
    pub claim: Claim,
    /// The worker whose claim had expired (a takeover), `None` for a free segment.
    pub from: Option<String>,
}

impl Claimed {
    /// `claim`, taken over from `from` (`None`: the segment was free).
    #[must_use]
    pub fn new(claim: Claim, from: Option<String>) -> Self {
        Self { claim, from }
    }
}

/// Who holds a segment, as the claims store sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentOwner {
    /// The segment.
    pub segment: Segment,
    /// The worker holding it (`None`: free).
    pub owner: Option<String>,
    /// Its epoch (0: never claimed).
    pub epoch: u64,
    /// Whether the owner's claim has expired: its owner did not renew it within the claim
    /// timeout it claimed it with (any worker may take the segment).
    pub expired: bool,
}

/// What [`SegmentClaims::resplit`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resplit {
    /// The projection is split into the new count now; it was split into `from`.
    Done {
        /// The count it had.
        from: u32,
    },
    /// Workers hold these segments (their claims not expired): nothing changed.
    Held(Vec<SegmentOwner>),
    /// The projection was never split: nothing changed.
    NotSplit,
    /// The new count is not a multiple of the recorded one (larger than it), so a
    /// segment's streams would not all come from one old segment: nothing changed.
    NotAMultiple {
        /// The count recorded.
        recorded: u32,
    },
}

/// What [`SegmentClaims::retire`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Retire {
    /// The projection is gone: its registration, its workers, and every checkpoint and
    /// parked event of its segments. It was split into `segments`.
    Done {
        /// The count it had.
        segments: u32,
    },
    /// Workers hold these segments (their claims not expired): nothing changed.
    Held(Vec<SegmentOwner>),
    /// The projection was never split: nothing changed.
    NotSplit,
}

/// Where the workers of split projections claim their segments
/// ([`SegmentedRunner`](super::SegmentedRunner)): the PostgreSQL checkpoint store across
/// processes, [`InMemorySegmentClaims`] within one process (the in-memory and SQLite
/// stores).
///
/// Time (when a claim or a worker expires) is the store's: the database's clock for
/// PostgreSQL, so the workers' clocks need not agree.
#[async_trait]
pub trait SegmentClaims: Send + Sync + 'static {
    /// Records `projection` as split into `count` segments, unless it is recorded already:
    /// the count it is recorded with (`count`, or another one, which the caller must not
    /// override), and whether this call recorded it.
    ///
    /// # Errors
    /// The backend's.
    async fn split(&self, projection: &str, count: u32) -> Result<(u32, bool), StoreError>;

    /// Says that `worker` is alive, forgets the workers silent for longer than `timeout`,
    /// and returns how many are alive (`worker` included).
    ///
    /// # Errors
    /// The backend's.
    async fn heartbeat(
        &self,
        projection: &str,
        worker: &str,
        timeout: Duration,
    ) -> Result<u32, StoreError>;

    /// Renews `worker`'s `claims` (their expiry starts again, with the timeout each was
    /// claimed with); returns those it still holds, at the same epoch. A claim that expired
    /// but that no other worker took is renewed too (its epoch is unchanged: no one else
    /// wrote under another). A claim missing from the answer was taken over.
    ///
    /// # Errors
    /// The backend's.
    async fn renew(
        &self,
        projection: &str,
        worker: &str,
        claims: &[Claim],
    ) -> Result<Vec<Claim>, StoreError>;

    /// Claims for `worker` up to `most` segments that are free or whose claim expired (its
    /// owner did not renew it within the timeout that owner claimed it with), each at a new
    /// epoch, recording `timeout` as the new claim's: it expires when `worker` does not
    /// renew it for that long.
    ///
    /// # Errors
    /// The backend's.
    async fn claim(
        &self,
        projection: &str,
        worker: &str,
        most: usize,
        timeout: Duration,
    ) -> Result<Vec<Claimed>, StoreError>;

    /// Gives `claims` up (those `worker` still holds), for other workers to take at once.
    ///
    /// # Errors
    /// The backend's.
    async fn release(
        &self,
        projection: &str,
        worker: &str,
        claims: &[Claim],
    ) -> Result<(), StoreError>;

    /// Forgets `worker` (a graceful stop), so that the others count it out at once.
    ///
    /// # Errors
    /// The backend's.
    async fn leave(&self, projection: &str, worker: &str) -> Result<(), StoreError>;

    /// Saves `position` as the checkpoint `checkpoint` (the segment's, in `checkpoints`)
    /// if `worker` still holds `claim` at its epoch: `true` when saved, `false` when the
    /// claim was taken over (the save is **fenced**). The PostgreSQL store checks and saves
    /// in one statement, and ignores `checkpoints` (its own table is the one).
    ///
    /// # Errors
    /// The backend's.
    async fn save_fenced(
        &self,
        projection: &str,
        worker: &str,
        claim: Claim,
        checkpoints: &dyn CheckpointStore,
        checkpoint: &str,
        position: u64,
    ) -> Result<bool, StoreError>;

    /// Every segment of `projection`, by index, with its owner (none when the projection
    /// was never split).
    ///
    /// # Errors
    /// The backend's.
    async fn owners(&self, projection: &str) -> Result<Vec<SegmentOwner>, StoreError>;

    /// Every split projection the store knows, with its segment count: what an operator's
    /// tool lists (the `eventsource status` command). The default, for a claims store of
    /// your own, fails with [`StoreError::Unsupported`].
    ///
    /// # Errors
    /// [`StoreError::Unsupported`], the backend's errors.
    async fn split_projections(&self) -> Result<BTreeMap<String, u32>, StoreError> {
        Err(StoreError::Unsupported {
            operation: "list split projections",
        })
    }

    /// Splits `projection` again, into `count` segments, a multiple of its recorded count,
    /// without a rebuild (Axon's split): a stream's segment of `count` lies within its
    /// segment of the old count, so each new segment `j` starts from the checkpoint of the
    /// old segment `j % old` and takes over the events that segment parked. Only while no
    /// worker holds a segment (every claim free or expired), all in one transaction; the
    /// new segments are free, at an epoch above every old claim's, so a stalled worker's
    /// save is fenced. Workers still running with the old count stop with
    /// [`RunnerError::SegmentCountChanged`](crate::projection::runner::RunnerError::SegmentCountChanged):
    /// start them with `count`. The default fails with [`StoreError::Unsupported`] (the
    /// in-process claims are made anew at each start: start the workers with the new count
    /// after a rebuild instead).
    ///
    /// # Errors
    /// [`StoreError::Unsupported`], the backend's.
    async fn resplit(&self, projection: &str, count: u32) -> Result<Resplit, StoreError> {
        let _ = (projection, count);
        Err(StoreError::Unsupported {
            operation: "split a projection's segments again",
        })
    }

    /// Retires `projection`, a split projection no worker runs any more (the old name after
    /// a rebuild under a new one): deletes its segments' registration, its workers, and
    /// every checkpoint and parked event of its segments, so that operators' tools stop
    /// listing it. Only while no worker holds a segment (every claim free or expired), all
    /// in one transaction. A worker started again afterwards starts it anew, from 0. The
    /// default fails with [`StoreError::Unsupported`] (the in-process claims are gone when
    /// the process is: forget the segments' checkpoints with
    /// [`CheckpointStore::forget`](crate::projection::checkpoint::CheckpointStore::forget)).
    ///
    /// # Errors
    /// [`StoreError::Unsupported`], the backend's.
    async fn retire(&self, projection: &str) -> Result<Retire, StoreError> {
        let _ = projection;
        Err(StoreError::Unsupported {
            operation: "retire a split projection",
        })
    }
}

/// One segment's row.
#[derive(Debug, Clone, Default)]
struct Row {
    owner: Option<String>,
    epoch: u64,
    renewed: Option<Instant>,
    /// The claim timeout its owner claimed it with.
    timeout: Duration,
}

impl Row {
    /// Whether its owner did not renew it within its own timeout.
    fn expired(&self) -> bool {
        self.renewed.is_none_or(|at| at.elapsed() > self.timeout)
    }
}

#[derive(Debug, Default)]
struct Split {
    rows: Vec<Row>,
    workers: HashMap<String, Instant>,
}

impl Split {
    /// The row of `claim`'s segment while `worker` holds it at the claim's epoch.
    fn held(&mut self, worker: &str, claim: &Claim) -> Option<&mut Row> {
        self.rows
            .get_mut(claim.segment.index() as usize)
            .filter(|row| row.owner.as_deref() == Some(worker) && row.epoch == claim.epoch)
    }
}

/// The segment claims of one process: for the in-memory and SQLite stores, whose
/// projections run in one process (share one value between the runners of a process).
///
/// ```
/// use std::time::Duration;
///
/// use eventsource_runtime::projection::segments::{InMemorySegmentClaims, SegmentClaims};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let claims = InMemorySegmentClaims::new();
/// let timeout = Duration::from_secs(10);
/// assert_eq!(claims.split("orders", 4).await?, (4, true));
/// let mine = claims.claim("orders", "worker-a", 3, timeout).await?;
/// let theirs = claims.claim("orders", "worker-b", 3, timeout).await?;
/// assert_eq!((mine.len(), theirs.len()), (3, 1));
/// assert_eq!(claims.split_projections().await?.get("orders"), Some(&4));
/// # Ok::<(), eventsource_runtime::store::StoreError>(()) }).unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct InMemorySegmentClaims {
    splits: Arc<Mutex<HashMap<String, Split>>>,
}

impl InMemorySegmentClaims {
    /// No projection split yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, projection: &str, f: impl FnOnce(&mut Split) -> T) -> T {
        // Nothing panics while the lock is held: a poisoned map is still consistent.
        let mut splits = self.splits.lock().unwrap_or_else(PoisonError::into_inner);
        f(splits.entry(projection.to_owned()).or_default())
    }

    fn holds(&self, projection: &str, worker: &str, claim: Claim) -> bool {
        self.with(projection, |split| split.held(worker, &claim).is_some())
    }
}

fn count_of(split: &Split) -> u32 {
    u32::try_from(split.rows.len()).unwrap_or(Segment::MAX_COUNT)
}

#[async_trait]
impl SegmentClaims for InMemorySegmentClaims {
    async fn split(&self, projection: &str, count: u32) -> Result<(u32, bool), StoreError> {
        Ok(self.with(projection, |split| {
            if split.rows.is_empty() {
                split.rows = vec![Row::default(); count.clamp(1, Segment::MAX_COUNT) as usize];
                (count_of(split), true)
            } else {
                (count_of(split), false)
            }
        }))
    }

    async fn heartbeat(
        &self,
        projection: &str,
        worker: &str,
        timeout: Duration,
    ) -> Result<u32, StoreError> {
        Ok(self.with(projection, |split| {
            split.workers.insert(worker.to_owned(), Instant::now());
            split.workers.retain(|_, seen| seen.elapsed() <= timeout);
            u32::try_from(split.workers.len()).unwrap_or(u32::MAX)
        }))
    }

    async fn renew(
        &self,
        projection: &str,
        worker: &str,
        claims: &[Claim],
    ) -> Result<Vec<Claim>, StoreError> {
        Ok(self.with(projection, |split| {
            let mut kept = Vec::new();
            for claim in claims {
                if let Some(row) = split.held(worker, claim) {
                    row.renewed = Some(Instant::now());
                    kept.push(*claim);
                }
            }
            kept
        }))
    }

    async fn claim(
        &self,
        projection: &str,
        worker: &str,
        most: usize,
        timeout: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        Ok(self.with(projection, |split| {
            let count = count_of(split);
            let mut taken = Vec::new();
            for (index, row) in split.rows.iter_mut().enumerate() {
                if taken.len() >= most {
                    break;
                }
                if row.owner.is_some() && !row.expired() {
                    continue;
                }
                let from = row.owner.take();
                row.owner = Some(worker.to_owned());
                row.epoch += 1;
                row.renewed = Some(Instant::now());
                row.timeout = timeout;
                let index = u32::try_from(index).unwrap_or(0);
                if let Some(segment) = Segment::new(index, count) {
                    taken.push(Claimed::new(Claim::new(segment, row.epoch), from));
                }
            }
            taken
        }))
    }

    async fn release(
        &self,
        projection: &str,
        worker: &str,
        claims: &[Claim],
    ) -> Result<(), StoreError> {
        self.with(projection, |split| {
            for claim in claims {
                if let Some(row) = split.held(worker, claim) {
                    row.owner = None;
                    row.renewed = None;
                }
            }
        });
        Ok(())
    }

    async fn leave(&self, projection: &str, worker: &str) -> Result<(), StoreError> {
        self.with(projection, |split| split.workers.remove(worker));
        Ok(())
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
        // One process: a claim is only taken over by a worker of this process, which
        // claims after this check or waits for the save's outcome.
        if !self.holds(projection, worker, claim) {
            return Ok(false);
        }
        checkpoints.save(checkpoint, position).await?;
        Ok(true)
    }

    async fn owners(&self, projection: &str) -> Result<Vec<SegmentOwner>, StoreError> {
        Ok(self.with(projection, |split| {
            let count = count_of(split);
            split
                .rows
                .iter()
                .enumerate()
                .filter_map(|(index, row)| {
                    let segment = Segment::new(u32::try_from(index).ok()?, count)?;
                    Some(SegmentOwner {
                        segment,
                        owner: row.owner.clone(),
                        epoch: row.epoch,
                        expired: row.owner.is_some() && row.expired(),
                    })
                })
                .collect()
        }))
    }

    async fn split_projections(&self) -> Result<BTreeMap<String, u32>, StoreError> {
        let splits = self.splits.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(splits
            .iter()
            .filter(|(_, split)| !split.rows.is_empty())
            .map(|(name, split)| (name.clone(), count_of(split)))
            .collect())
    }
}
