//! The rules every claims store follows (shares, expiry, epochs, fenced saves), in memory
//! and on PostgreSQL.

use std::time::{Duration, Instant};

use eventsource_runtime::postgres::PostgresCheckpointStore;
use eventsource_runtime::projection::checkpoint::{CheckpointStore, InMemoryCheckpointStore};
use eventsource_runtime::projection::segments::{InMemorySegmentClaims, SegmentClaims};

use super::postgres::TestDb;

/// The rules every claims store follows, with a short timeout (long enough that the two
/// workers' first heartbeats, a few statements apart, are never a timeout apart on a loaded
/// machine: 300 ms was, once in 60 runs).
async fn claims_follow_the_rules(claims: &dyn SegmentClaims, checkpoints: &dyn CheckpointStore) {
    let timeout = Duration::from_millis(1000);
    let p = "Totals";
    assert_eq!(claims.split(p, 4).await.unwrap(), (4, true));
    assert_eq!(claims.split(p, 4).await.unwrap(), (4, false));
    assert_eq!(claims.split(p, 8).await.unwrap().0, 4, "the recorded count");

    assert_eq!(claims.heartbeat(p, "a", timeout).await.unwrap(), 1);
    assert_eq!(claims.heartbeat(p, "b", timeout).await.unwrap(), 2);
    let a = claims.claim(p, "a", 3, timeout).await.unwrap();
    let b = claims.claim(p, "b", 3, timeout).await.unwrap();
    assert_eq!((a.len(), b.len()), (3, 1), "one owner per segment");
    assert!(
        a.iter()
            .chain(&b)
            .all(|c| c.from.is_none() && c.claim.epoch == 1)
    );

    // b stops renewing; a renews, and then takes b's segment over at a new epoch.
    let a_claims: Vec<_> = a.iter().map(|c| c.claim).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    let taken = loop {
        assert_eq!(claims.renew(p, "a", &a_claims).await.unwrap(), a_claims);
        let taken = claims.claim(p, "a", 1, timeout).await.unwrap();
        if !taken.is_empty() {
            break taken;
        }
        assert!(Instant::now() < deadline, "b's claim expires");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stale = b[0].claim;
    assert_eq!(taken[0].claim.segment, stale.segment);
    assert_eq!(taken[0].claim.epoch, stale.epoch + 1, "a new epoch");
    assert_eq!(taken[0].from.as_deref(), Some("b"));
    assert!(claims.renew(p, "b", &[stale]).await.unwrap().is_empty());

    // Fenced: b's save under its old epoch is refused, a's lands.
    let name = stale.segment.checkpoint_name(p);
    let saved = claims.save_fenced(p, "b", stale, checkpoints, &name, 9);
    assert!(!saved.await.unwrap(), "a stale save is fenced");
    assert_eq!(checkpoints.load(&name).await.unwrap(), 0);
    let saved = claims.save_fenced(p, "a", taken[0].claim, checkpoints, &name, 7);
    assert!(saved.await.unwrap());
    assert_eq!(checkpoints.load(&name).await.unwrap(), 7);
    // A late save under the claim (a background save overtaken, a retry) is accepted but
    // never moves the checkpoint back.
    let late = claims.save_fenced(p, "a", taken[0].claim, checkpoints, &name, 5);
    assert!(late.await.unwrap(), "still the claim's");
    assert_eq!(checkpoints.load(&name).await.unwrap(), 7, "not moved back");

    // A release frees at once; b, silent, is counted out.
    claims.release(p, "a", &[taken[0].claim]).await.unwrap();
    let again = claims.claim(p, "b", 4, timeout).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].claim.epoch, stale.epoch + 2);
    assert_eq!(claims.heartbeat(p, "a", timeout).await.unwrap(), 1);
    let owners = claims.owners(p).await.unwrap();
    assert_eq!(owners.len(), 4);
    assert_eq!(
        owners[stale.segment.index() as usize].owner.as_deref(),
        Some("b")
    );
    claims.leave(p, "a").await.unwrap();
    assert_eq!(claims.heartbeat(p, "b", timeout).await.unwrap(), 1);
}

#[tokio::test]
async fn in_memory_claims_follow_the_rules() {
    let claims = InMemorySegmentClaims::new();
    claims_follow_the_rules(&claims, &InMemoryCheckpointStore::new()).await;
}

#[tokio::test]
async fn postgres_claims_follow_the_rules() {
    let Some(db) = TestDb::open("postgres_claims_follow_the_rules").await else {
        return;
    };
    let pool = db.pool(4).await;
    let schema = db.schema();
    let store = db.store_in(&pool, &schema).await;
    let checkpoints: PostgresCheckpointStore = store.checkpoint_store();
    claims_follow_the_rules(&checkpoints, &checkpoints).await;
    pool.close().await;
    db.cleanup().await;
}
