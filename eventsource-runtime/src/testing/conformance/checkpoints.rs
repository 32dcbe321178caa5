//! The behaviour every `CheckpointStore` must have: checkpoints per projection, shared by
//! every handle on the same data, never moved back by a save (a late one, a retry, one
//! through a lease) but reset back on purpose (a rebuild); leases that exclude every other
//! runner on the same data, one at a time among racing ones, and no runner on other data;
//! parked events per projection, replaced at the same position, listed by position, removed
//! one by one; an operator's retry requests kept with the parked event they name; why a
//! runner stopped, listed with its checkpoint until cleared.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::projection::checkpoint::{CheckpointStore, ParkedEvent, RunnerStop};

/// How soon a dropped lease is free again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DroppedLease {
    /// At once (a lease in the process).
    FreeAtOnce,
    /// Once its holder's session has ended in the background (a database session's lock).
    FreeSoon,
}

/// Checkpoints per projection (0 before the first save), the furthest save wins, seen by
/// `second`, a handle on the same checkpoints; a reset (a rebuild) moves one back.
pub async fn saves_and_loads_positions(
    first: Arc<dyn CheckpointStore>,
    second: Arc<dyn CheckpointStore>,
) {
    assert_eq!(first.load("orders").await.unwrap(), 0);
    first.save("orders", 5).await.unwrap();
    first.save("invoices", 3).await.unwrap();
    first.save("orders", 42).await.unwrap();
    assert_eq!(first.load("orders").await.unwrap(), 42);
    assert_eq!(second.load("orders").await.unwrap(), 42);
    assert_eq!(second.load("invoices").await.unwrap(), 3);
    // A rebuild resets a checkpoint back.
    second.reset("orders", 0).await.unwrap();
    assert_eq!(first.load("orders").await.unwrap(), 0);
    assert_eq!(first.load("invoices").await.unwrap(), 3);
    second.reset("invoices", 0).await.unwrap();
    assert_eq!(first.load("invoices").await.unwrap(), 0);
    // A reset forward, and onto a projection never saved.
    first.save("refunds", 3).await.unwrap();
    first.reset("refunds", 17).await.unwrap();
    assert_eq!(second.load("refunds").await.unwrap(), 17);
    first.reset("shipments", 4).await.unwrap();
    assert_eq!(second.load("shipments").await.unwrap(), 4);
}

/// A save never moves a checkpoint back, whether it comes late from the same handle (a
/// background save overtaken by a later one), from another handle (a retry, another
/// process), or through a lease ([`CheckpointStore::save_leased`]); a reset does, directly
/// or through a lease ([`CheckpointStore::reset_leased`]), and saves go on from there.
pub async fn a_save_never_moves_a_checkpoint_back(
    first: Arc<dyn CheckpointStore>,
    second: Arc<dyn CheckpointStore>,
) {
    first.save("ledger", 40).await.unwrap();
    first.save("ledger", 12).await.unwrap();
    assert_eq!(second.load("ledger").await.unwrap(), 40, "a late save");
    second.save("ledger", 39).await.unwrap();
    assert_eq!(first.load("ledger").await.unwrap(), 40, "another handle's");
    second.save("ledger", 40).await.unwrap();
    assert_eq!(first.load("ledger").await.unwrap(), 40, "the same again");

    let lease = first.try_acquire("ledger").await.unwrap().expect("free");
    first.save_leased(&*lease, "ledger", 50).await.unwrap();
    first.save_leased(&*lease, "ledger", 45).await.unwrap();
    assert_eq!(
        second.load("ledger").await.unwrap(),
        50,
        "a late leased save"
    );
    first.reset_leased(&*lease, "ledger", 8).await.unwrap();
    assert_eq!(second.load("ledger").await.unwrap(), 8, "a leased reset");
    first.save_leased(&*lease, "ledger", 9).await.unwrap();
    assert_eq!(
        second.load("ledger").await.unwrap(),
        9,
        "saves go on after it"
    );
    lease.release().await;

    second.reset("ledger", 2).await.unwrap();
    first.save("ledger", 1).await.unwrap();
    assert_eq!(first.load("ledger").await.unwrap(), 2);
}

/// A lease excludes every runner on the same checkpoints (`first`, `second`: two handles,
/// two pools), even its own store's, but not another projection nor the same one on
/// `elsewhere` (other data); checkpoints are still saved while it is held; released or
/// dropped, it is free again.
pub async fn leases_exclude_other_runners(
    first: Arc<dyn CheckpointStore>,
    second: Arc<dyn CheckpointStore>,
    elsewhere: Arc<dyn CheckpointStore>,
    dropped: DroppedLease,
) {
    let lease = first.try_acquire("orders").await.unwrap().expect("free");
    assert!(
        second.try_acquire("orders").await.unwrap().is_none(),
        "held by the first: same database, other pool"
    );
    assert!(
        first.try_acquire("orders").await.unwrap().is_none(),
        "held, even for the first"
    );
    // The store still works: a database lease has a connection of its own.
    first.save("orders", 7).await.unwrap();
    assert_eq!(second.load("orders").await.unwrap(), 7);
    let invoices = second
        .try_acquire("invoices")
        .await
        .unwrap()
        .expect("another projection is free");
    let there = elsewhere
        .try_acquire("orders")
        .await
        .unwrap()
        .expect("another database is free");
    there.release().await;

    lease.release().await;
    let taken = second
        .try_acquire("orders")
        .await
        .unwrap()
        .expect("released by the first");
    assert!(first.try_acquire("orders").await.unwrap().is_none());

    // Dropping a lease frees it too.
    drop(taken);
    match dropped {
        DroppedLease::FreeAtOnce => {
            let lease = first.try_acquire("orders").await.unwrap();
            assert!(lease.is_some(), "dropped");
        }
        DroppedLease::FreeSoon => {
            super::eventually("the dropped lease to be freed", async || {
                match first.try_acquire("orders").await.unwrap() {
                    Some(lease) => {
                        lease.release().await;
                        true
                    }
                    None => false,
                }
            })
            .await;
        }
    }
    invoices.release().await;
}

/// Concurrent takers of one projection on one store: exactly one wins.
pub async fn one_winner_among_concurrent_takers(checkpoints: Arc<dyn CheckpointStore>) {
    let takers: Vec<_> = (0..16)
        .map(|_| {
            let checkpoints = Arc::clone(&checkpoints);
            tokio::spawn(async move { checkpoints.try_acquire("race").await.unwrap() })
        })
        .collect();
    let mut winners = Vec::new();
    for taker in takers {
        winners.push(taker.await.unwrap());
    }
    assert_eq!(winners.iter().filter(|l| l.is_some()).count(), 1);
}

/// Leases exclude runners in the sense that matters: of many racing for one projection,
/// each on a handle of its own (`stores`, on the same checkpoints), exactly one holds it
/// at a time. Returns how often each won (some did).
pub async fn one_lease_at_a_time_among_racing_runners(
    stores: Vec<Arc<dyn CheckpointStore>>,
) -> Vec<u64> {
    let holders = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for store in stores {
        let holders = Arc::clone(&holders);
        tasks.push(tokio::spawn(async move {
            let mut held = 0;
            for _ in 0..30 {
                if let Some(lease) = store.try_acquire("race").await.unwrap() {
                    assert_eq!(holders.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    holders.fetch_sub(1, Ordering::SeqCst);
                    lease.release().await;
                    held += 1;
                }
                tokio::task::yield_now().await;
            }
            held
        }));
    }
    let mut wins = Vec::new();
    for task in tasks {
        wins.push(task.await.unwrap());
    }
    assert!(wins.iter().sum::<u64>() > 0);
    wins
}

/// Parked events per projection: replaced at the same position, listed by position,
/// removed one by one. `reopen` gets the store that parked them and gives the one to
/// read them back from (the same database reopened, another pool on it): they are kept.
pub async fn parked_events_are_kept_per_projection(
    checkpoints: Arc<dyn CheckpointStore>,
    reopen: impl AsyncFnOnce(Arc<dyn CheckpointStore>) -> Arc<dyn CheckpointStore>,
) {
    assert!(checkpoints.parked("a").await.unwrap().is_empty());
    for (projection, position, error) in [
        ("a", 7, "first"),
        ("a", 3, "other"),
        ("a", 7, "again"),
        ("b", 7, "b's"),
    ] {
        checkpoints
            .park(projection, &ParkedEvent::new(position, error))
            .await
            .unwrap();
    }

    let checkpoints = reopen(checkpoints).await;
    let a = checkpoints.parked("a").await.unwrap();
    let listed: Vec<(u64, &str)> = a.iter().map(|p| (p.position, p.error.as_str())).collect();
    assert_eq!(listed, [(3, "other"), (7, "again")]);
    assert!(checkpoints.unpark("a", 7).await.unwrap());
    assert!(!checkpoints.unpark("a", 7).await.unwrap());
    assert_eq!(checkpoints.parked("a").await.unwrap().len(), 1);
    assert_eq!(checkpoints.parked("b").await.unwrap()[0].error, "b's");
    assert!(checkpoints.parked("c").await.unwrap().is_empty());
    assert!(!checkpoints.unpark("c", 3).await.unwrap());
}

/// An operator's retry requests ([`CheckpointStore::request_retry`]): only a parked event
/// takes one; the requested positions list in order, per projection; parking the event again
/// clears its request, unparking it removes it. `checkpoints` must hold no parked event yet.
pub async fn retry_requests_are_kept_with_the_parked_event(checkpoints: Arc<dyn CheckpointStore>) {
    assert!(
        !checkpoints.request_retry("a", 7).await.unwrap(),
        "nothing parked"
    );
    assert!(checkpoints.retry_requests("a").await.unwrap().is_empty());
    for (projection, position) in [("a", 7), ("a", 3), ("a", 9), ("b", 7)] {
        let parked = ParkedEvent::new(position, "unreadable");
        checkpoints.park(projection, &parked).await.unwrap();
    }
    assert!(checkpoints.request_retry("a", 9).await.unwrap());
    assert!(checkpoints.request_retry("a", 3).await.unwrap());
    assert!(
        checkpoints.request_retry("a", 3).await.unwrap(),
        "asked twice"
    );
    assert!(!checkpoints.request_retry("a", 8).await.unwrap());
    assert_eq!(checkpoints.retry_requests("a").await.unwrap(), [3, 9]);
    assert!(checkpoints.retry_requests("b").await.unwrap().is_empty());

    let again = ParkedEvent::new(9, "still unreadable");
    checkpoints.park("a", &again).await.unwrap();
    assert_eq!(checkpoints.retry_requests("a").await.unwrap(), [3]);
    assert!(checkpoints.unpark("a", 3).await.unwrap());
    assert!(checkpoints.retry_requests("a").await.unwrap().is_empty());
    let left: Vec<u64> = checkpoints
        .parked("a")
        .await
        .unwrap()
        .iter()
        .map(|p| p.position)
        .collect();
    assert_eq!(left, [7, 9], "a request changes no parked event");
}

/// What an operator lists: every checkpoint by name with its position (a reset one at its
/// new position), the parked counts of the projections that parked any, and who holds a
/// lease while it is held (nobody once it is released); a projection forgotten leaves both
/// lists. `checkpoints` must hold no checkpoint and no parked event yet.
pub async fn lists_checkpoints_parked_counts_and_lease_holders(
    checkpoints: Arc<dyn CheckpointStore>,
) {
    assert!(checkpoints.checkpoints().await.unwrap().is_empty());
    assert!(checkpoints.parked_counts().await.unwrap().is_empty());
    checkpoints.save("b", 5).await.unwrap();
    checkpoints.save("a", 9).await.unwrap();
    checkpoints.reset("b", 2).await.unwrap();
    let listed: Vec<(String, u64)> = checkpoints
        .checkpoints()
        .await
        .unwrap()
        .into_iter()
        .map(|record| (record.projection, record.position))
        .collect();
    assert_eq!(listed, [("a".to_owned(), 9), ("b".to_owned(), 2)]);

    for (projection, position) in [("a", 3), ("a", 4), ("c", 1)] {
        let parked = ParkedEvent::new(position, "unreadable");
        checkpoints.park(projection, &parked).await.unwrap();
    }
    let counts: Vec<(String, u64)> = checkpoints
        .parked_counts()
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(counts, [("a".to_owned(), 2), ("c".to_owned(), 1)]);

    assert_eq!(checkpoints.lease_holder("a").await.unwrap(), None);
    let lease = checkpoints.try_acquire("a").await.unwrap().expect("free");
    let holder = checkpoints.lease_holder("a").await.unwrap().expect("held");
    assert!(holder.process_id.is_some(), "{holder}");
    assert_eq!(checkpoints.lease_holder("b").await.unwrap(), None);
    lease.release().await;
    super::eventually("the released lease to have no holder", async || {
        checkpoints.lease_holder("a").await.unwrap().is_none()
    })
    .await;

    // Forgotten (a projection retired): gone from both lists; the others kept.
    assert!(
        checkpoints.forget("a").await.unwrap(),
        "a checkpoint, parked events"
    );
    assert!(checkpoints.forget("c").await.unwrap(), "parked events only");
    assert!(!checkpoints.forget("z").await.unwrap(), "nothing to forget");
    let listed: Vec<String> = (checkpoints.checkpoints().await.unwrap())
        .into_iter()
        .map(|record| record.projection)
        .collect();
    assert_eq!(listed, ["b"]);
    assert!(checkpoints.parked_counts().await.unwrap().is_empty());
    assert!(checkpoints.parked("a").await.unwrap().is_empty());
    assert_eq!(
        checkpoints.load("a").await.unwrap(),
        0,
        "from the start again"
    );
}

/// Why a runner stopped, listed with its checkpoint: recorded for a projection with no
/// checkpoint yet (listed at 0) and for one with a checkpoint (kept), kept by a save,
/// replaced by the next stop, gone once cleared (the checkpoint kept) or forgotten.
/// `checkpoints` must hold no checkpoint yet.
pub async fn a_runner_stop_is_listed_until_cleared(checkpoints: Arc<dyn CheckpointStore>) {
    let stops = async || -> Vec<(String, u64, Option<String>)> {
        let records = checkpoints.checkpoints().await.unwrap();
        let listed = records.into_iter().map(|record| {
            let stopped = record.stopped.map(|stop| stop.error);
            (record.projection, record.position, stopped)
        });
        listed.collect()
    };
    let first = RunnerStop::new("handler `mailer` failed 5 times on event 3: timed out");
    checkpoints.record_stop("fresh", &first).await.unwrap();
    checkpoints.save("kept", 7).await.unwrap();
    checkpoints
        .record_stop("kept", &RunnerStop::new("store unavailable"))
        .await
        .unwrap();
    checkpoints.save("kept", 8).await.unwrap();
    assert_eq!(
        stops().await,
        [
            ("fresh".to_owned(), 0, Some(first.error.clone())),
            ("kept".to_owned(), 8, Some("store unavailable".to_owned())),
        ]
    );
    let records = checkpoints.checkpoints().await.unwrap();
    let at = records[0].stopped.as_ref().expect("stopped").at;
    let drift = (at - first.at).num_milliseconds().abs();
    assert!(
        drift < 1,
        "kept to the store's precision: {at} for {}",
        first.at
    );

    checkpoints
        .record_stop("kept", &RunnerStop::new("unreadable event 9"))
        .await
        .unwrap();
    checkpoints.clear_stop("fresh").await.unwrap();
    checkpoints.clear_stop("unknown").await.unwrap();
    assert_eq!(
        stops().await,
        [
            ("fresh".to_owned(), 0, None),
            ("kept".to_owned(), 8, Some("unreadable event 9".to_owned())),
        ],
        "cleared, the checkpoint kept; the next stop replaces the last; nothing made"
    );
    assert!(checkpoints.forget("kept").await.unwrap());
    assert_eq!(stops().await, [("fresh".to_owned(), 0, None)]);
}
