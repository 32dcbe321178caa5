//! A worker's rebalance: say it is alive, renew its claims, and hear the store's word on
//! those that lapsed; then give up or claim segments toward its fair share. And how a claim's
//! loss is told, once, by what the worker saw:
//!
//! - its renewals were failing (the claims store did not answer) when the claim lapsed: it
//!   is `lost`, told as soon as it lapses: the worker lost the database;
//! - they were not (the worker did not run in time: a stall): the claim waits for the next
//!   renewal, sent after its deadline. The store still has it at its epoch: no other worker
//!   took it, and it is resumed at once. It does not: another worker took it over, and it
//!   is `fenced`, logged with who holds it now.
//!
//! A write refused under an old epoch (`Fence::fenced`) is `fenced` too.

use std::time::{Duration, Instant};

use super::claims::{Claim, SegmentOwner};
use super::worker::{Claims, Outage, deadline};
use super::{SegmentedRunner, instrument};
use crate::projection::Projection;
use crate::store::{Segment, StoreError};

/// The claims store did not answer a rebalance's heartbeat and renewals in time.
#[derive(Debug, thiserror::Error)]
#[error("the claims store did not answer within {within:?}")]
struct NoAnswer {
    within: Duration,
}

/// `work`'s output, unless it takes longer than `budget` of the time this process runs:
/// counted in ticks of a tenth of it, so that a stall (a paused process, whose timers are
/// all due when it wakes) counts as one tick, not as its length. Bounded by the clock, an
/// answer already waiting when a paused worker wakes could lose the race with the bound,
/// and the stall pass for a database that did not answer.
async fn within_running_time<F: Future>(budget: Duration, work: F) -> Option<F::Output> {
    const TICKS: u32 = 10;
    let mut ticks = tokio::time::interval((budget / TICKS).max(Duration::from_millis(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut work = std::pin::pin!(work);
    // The first tick is at once: TICKS more are the budget.
    for _ in 0..=TICKS {
        tokio::select! {
            biased;
            output = &mut work => return Some(output),
            _ = ticks.tick() => {}
        }
    }
    None
}

/// A claim renewed, with how long past its deadline it was when the renewal went out or,
/// later, when the store's word came back (zero: held throughout).
struct Renewing {
    claim: Claim,
    late_by: Duration,
}

impl<P: Projection> SegmentedRunner<P> {
    /// Tells each claim that lapsed while the claims store was not answering as `lost` (once).
    pub(super) fn tell_lost(&self, name: &str, running: &Claims, outage: &Outage) {
        let Some(failing_for) = outage.failing_for() else {
            return;
        };
        for segment in running.values() {
            if segment.state.is_lapsed() && segment.state.tell() {
                instrument::lost(name, &self.worker, segment.claim, failing_for);
            }
        }
    }

    /// One rebalance: heartbeat, renewals (and their verdicts), then toward the fair share;
    /// the claims just taken, with the deadline of each, for the caller to start.
    pub(super) async fn rebalance(
        &self,
        name: &str,
        running: &mut Claims,
    ) -> Result<Vec<(Claim, Instant)>, StoreError> {
        let timeout = self.claim_timeout;
        // Every claim not known to be taken over: held ones, and lapsed ones, whose renewal,
        // sent after their deadline, is the store's word on them.
        let mine: Vec<Renewing> = running
            .values()
            .filter(|segment| !segment.state.is_revoked())
            .map(|segment| Renewing {
                claim: segment.claim,
                late_by: segment.state.lapsed_for(),
            })
            .collect();
        let claims: Vec<Claim> = mine.iter().map(|renewing| renewing.claim).collect();
        let sent = Instant::now();
        // Bounded: a store that does not answer within the claim timeout counts as failing,
        // so that the claims lapsing meanwhile are told lost while it lasts.
        let answer = async {
            let live = self.claims.heartbeat(name, &self.worker, timeout).await?;
            let kept = self.claims.renew(name, &self.worker, &claims).await?;
            Ok::<_, StoreError>((live, kept))
        };
        let no_answer = || StoreError::Unavailable(Box::new(NoAnswer { within: timeout }));
        let (live, kept) = within_running_time(timeout, answer)
            .await
            .unwrap_or_else(|| Err(no_answer()))?;
        let mut taken = Vec::new();
        for renewing in mine {
            let Some(segment) = running.get_mut(&renewing.claim.segment) else {
                continue;
            };
            if segment.claim != renewing.claim {
                continue;
            }
            // Late is judged when the store's word is in: a worker paused after it saw its
            // claims in time, but before its renewal reached the store, was late all the
            // same.
            let renewing = Renewing {
                late_by: renewing.late_by.max(segment.state.lapsed_for()),
                ..renewing
            };
            if kept.contains(&renewing.claim) {
                segment.state.extend(deadline(sent, timeout));
                if !renewing.late_by.is_zero() {
                    let after_lost = segment.state.was_told();
                    segment.state.untell();
                    instrument::resumed(
                        name,
                        &self.worker,
                        renewing.claim,
                        renewing.late_by,
                        after_lost,
                    );
                }
            } else {
                segment.state.revoke();
                if segment.state.tell() {
                    taken.push(renewing);
                }
            }
        }
        if !taken.is_empty() {
            self.tell_taken(name, &taken).await;
        }
        self.settle_idle(name, running).await;
        self.toward_fair_share(name, running, live).await
    }

    /// Tells the claims a renewal found taken over as `fenced`, with who holds each now.
    async fn tell_taken(&self, name: &str, taken: &[Renewing]) {
        // Who holds them is for the log: a store that cannot say it leaves it unknown.
        let owners: Vec<SegmentOwner> = self.claims.owners(name).await.unwrap_or_default();
        for renewing in taken {
            let holder = owners
                .iter()
                .find(|owner| owner.segment == renewing.claim.segment)
                .and_then(|owner| Some((owner.owner.as_deref()?, owner.epoch)));
            instrument::taken_over_from(
                name,
                &self.worker,
                renewing.claim,
                renewing.late_by,
                holder,
            );
        }
    }

    /// Forgets the claims taken over whose runner returned, and gives up those being given
    /// up whose runner returned before the store's word (kept: released now).
    async fn settle_idle(&self, name: &str, running: &mut Claims) {
        running.retain(|_, segment| segment.active || !segment.state.is_revoked());
        let kept_to_release: Vec<Segment> = running
            .values()
            .filter(|segment| !segment.active && segment.releasing && segment.state.is_held())
            .map(|segment| segment.claim.segment)
            .collect();
        for segment in kept_to_release {
            if let Some(entry) = running.remove(&segment) {
                self.give_up(name, entry.claim).await;
            }
        }
    }

    /// Gives up the segments above the fair share (`ceil(segments / live)`), or claims free
    /// and expired ones up to it.
    async fn toward_fair_share(
        &self,
        name: &str,
        running: &mut Claims,
        live: u32,
    ) -> Result<Vec<(Claim, Instant)>, StoreError> {
        let timeout = self.claim_timeout;
        let active: Vec<Segment> = running
            .values()
            .filter(|segment| !segment.releasing && segment.state.is_held())
            .map(|segment| segment.claim.segment)
            .collect();
        let fair = self.count.div_ceil(live.max(1)) as usize;
        if active.len() > fair {
            let mut surplus = active;
            surplus.sort_unstable();
            for segment in surplus.split_off(fair) {
                let Some(entry) = running.get_mut(&segment) else {
                    continue;
                };
                entry.releasing = true;
                match entry.stop.take() {
                    // Its runner saves the checkpoint, then the claim is released.
                    Some(stop) => {
                        let _ = stop.send(());
                    }
                    // Lapsed and kept, its runner not started again yet: released now.
                    None if !entry.active => {
                        if let Some(entry) = running.remove(&segment) {
                            self.give_up(name, entry.claim).await;
                        }
                    }
                    None => {}
                }
            }
        } else if active.len() < fair {
            let sent = Instant::now();
            let claimed = self
                .claims
                .claim(name, &self.worker, fair - active.len(), timeout)
                .await?;
            let mut started = Vec::new();
            for taken in claimed {
                instrument::claimed(name, &self.worker, taken.claim, taken.from.as_deref());
                started.push((taken.claim, deadline(sent, timeout)));
            }
            return Ok(started);
        }
        Ok(Vec::new())
    }
}
