//! `eventsource projection rebuild NAME --as NEW` on PostgreSQL, where the leases are seen
//! across processes: NEW is recorded at checkpoint 0 beside NAME (which keeps running and is
//! left as it is), and refused when NEW exists or a worker holds it already.

use eventsource_runtime::projection::checkpoint::CheckpointStore;

use crate::postgres::{database_url, drop_schema, seeded_schema};
use crate::{eventsource, joined, projection};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_starts_beside_the_running_projection() {
    let Some(url) = database_url("a_rebuild_starts_beside_the_running_projection") else {
        return;
    };
    let (store, schema) = seeded_schema(&url).await;
    let checkpoints = store.checkpoint_store();
    let target = ["--store", url.as_str(), "--schema", schema.as_str()];
    let with = |args: &[&str]| joined(&target, args);

    // The old one runs (its lease held): a rebuild beside it changes nothing of it.
    let running = checkpoints
        .try_acquire("orders")
        .await
        .unwrap()
        .expect("free");
    let made = eventsource(&with(&[
        "projection",
        "rebuild",
        "orders",
        "--as",
        "orders-v2",
        "--json",
    ]))
    .expect(0)
    .json();
    assert_eq!(made["rebuilt_as"], "orders-v2", "{made:#}");
    assert_eq!(
        (made["checkpoint"].as_u64(), made["head"].as_u64()),
        (Some(0), Some(6))
    );
    let status = eventsource(&with(&["status", "--json"])).expect(0).json();
    let rebuilt = projection(&status, "orders-v2");
    assert_eq!(rebuilt["checkpoint"], 0, "{rebuilt:#}");
    assert_eq!(rebuilt["lag"]["events"], 6);
    assert_eq!(
        checkpoints.load("orders").await.unwrap(),
        2,
        "the old one as it was"
    );
    assert_eq!(checkpoints.parked("orders").await.unwrap().len(), 1);
    running.release().await;

    // The text says what to do next.
    let text = eventsource(&with(&[
        "projection",
        "rebuild",
        "orders",
        "--as",
        "orders-v3",
    ]))
    .expect(0)
    .stdout;
    assert!(
        text.starts_with("orders-v3: created beside orders, checkpoint 0: 6 event(s) to replay."),
        "{text}"
    );
    assert!(
        text.contains("deploy the projection's handler under the name `orders-v3`"),
        "{text}"
    );

    // NEW exists: refused, nothing changed.
    checkpoints.save("orders-v2", 4).await.unwrap();
    let refused = eventsource(&with(&[
        "projection",
        "rebuild",
        "orders",
        "--as",
        "orders-v2",
    ]))
    .expect(4);
    assert!(
        refused.stderr.contains("`orders-v2` exists already"),
        "{}",
        refused.stderr
    );
    assert_eq!(checkpoints.load("orders-v2").await.unwrap(), 4);

    // A worker runs NEW already: refused, and no checkpoint is made for it.
    let early = checkpoints
        .try_acquire("orders-v4")
        .await
        .unwrap()
        .expect("free");
    let refused = eventsource(&with(&[
        "projection",
        "rebuild",
        "orders",
        "--as",
        "orders-v4",
    ]))
    .expect(4);
    assert!(
        refused.stderr.contains("already held by a running worker"),
        "{}",
        refused.stderr
    );
    early.release().await;
    let names: Vec<String> = checkpoints
        .checkpoints()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.projection)
        .collect();
    assert!(!names.iter().any(|n| n == "orders-v4"), "{names:?}");

    // Bad names and unknown projections.
    eventsource(&with(&["projection", "rebuild", "nosuch", "--as", "x"])).expect(3);
    eventsource(&with(&[
        "projection",
        "rebuild",
        "orders",
        "--as",
        "orders",
    ]))
    .expect(2);
    eventsource(&with(&[
        "projection",
        "rebuild",
        "orders",
        "--as",
        "orders[0/2]",
    ]))
    .expect(2);

    drop_schema(store.pool(), &schema).await;
}
