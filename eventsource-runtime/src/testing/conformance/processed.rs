//! The behaviour every `ProcessedMessages` store must have: a message is claimed per
//! handler, recorded only by its claim's `record`, seen recorded by every handle on the same
//! data; a released or dropped claim records nothing; a second claim of the same pair waits
//! for the first. (`tests/domain/idempotent_handlers.rs` runs the `Idempotent` handler over each
//! store.)

use std::sync::Arc;
use std::time::Duration;

use crate::bus::ProcessedMessages;
use uuid::Uuid;

/// Claims and records per handler, through `first`, seen through `second` (another handle
/// on the same records).
pub async fn claims_and_records_per_handler(
    first: Arc<dyn ProcessedMessages>,
    second: Arc<dyn ProcessedMessages>,
) {
    let message = Uuid::now_v7();
    assert!(!first.is_recorded("send", message).await.unwrap());
    let claim = first.claim("send", message).await.unwrap().expect("new");
    assert!(
        !first.is_recorded("send", message).await.unwrap(),
        "claimed is not recorded"
    );
    claim.record().await.unwrap();
    assert!(first.is_recorded("send", message).await.unwrap());
    assert!(
        second.is_recorded("send", message).await.unwrap(),
        "recorded for every handle"
    );
    assert!(
        second.claim("send", message).await.unwrap().is_none(),
        "a recorded message is not claimed again"
    );
    assert!(
        !first.is_recorded("audit", message).await.unwrap(),
        "recorded per handler"
    );
    assert!(
        !first.is_recorded("send", Uuid::now_v7()).await.unwrap(),
        "recorded per message"
    );

    // Released or dropped, a claim records nothing and the message can be claimed again.
    let audit = first
        .claim("audit", message)
        .await
        .unwrap()
        .expect("per handler");
    audit.release().await;
    assert!(
        !second.is_recorded("audit", message).await.unwrap(),
        "released"
    );
    let again = second
        .claim("audit", message)
        .await
        .unwrap()
        .expect("claimed again after a release");
    drop(again);
    let third = first
        .claim("audit", message)
        .await
        .unwrap()
        .expect("claimed again after a drop");
    assert!(
        !second.is_recorded("audit", message).await.unwrap(),
        "dropped"
    );
    third.record().await.unwrap();
    assert!(second.is_recorded("audit", message).await.unwrap());
}

/// A second claim of a handler's message (through `second`) waits while the first is held:
/// it finds the message recorded once the first records it, and gets the claim once the
/// first is released.
pub async fn a_second_claim_waits_for_the_first(
    first: Arc<dyn ProcessedMessages>,
    second: Arc<dyn ProcessedMessages>,
) {
    for recorded in [true, false] {
        let message = Uuid::now_v7();
        let claim = first.claim("send", message).await.unwrap().expect("new");
        let waiting = {
            let second = Arc::clone(&second);
            tokio::spawn(async move {
                let claim = second.claim("send", message).await.unwrap();
                let found = claim.is_some();
                if let Some(claim) = claim {
                    claim.release().await;
                }
                found
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !waiting.is_finished(),
            "waits while the first claim is held"
        );
        if recorded {
            claim.record().await.unwrap();
        } else {
            claim.release().await;
        }
        let claimed = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the second claim goes on once the first ends")
            .unwrap();
        assert_eq!(
            claimed, !recorded,
            "recorded: nothing to claim; released: the second claim holds it"
        );
    }
}

/// Every check, on two handles on the same (fresh) records.
pub async fn run_all(first: Arc<dyn ProcessedMessages>, second: Arc<dyn ProcessedMessages>) {
    claims_and_records_per_handler(Arc::clone(&first), Arc::clone(&second)).await;
    a_second_claim_waits_for_the_first(first, second).await;
}
