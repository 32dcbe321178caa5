//! `eventsource projection retire NAME`: a projection no runner runs any more leaves
//! `status` with its checkpoints and parked events; refused while a runner holds its lease
//! or a worker one of its segments (PostgreSQL, where they are seen across processes).

use std::time::Duration;

use eventsource_runtime::projection::checkpoint::{CheckpointStore, ParkedEvent};
use eventsource_runtime::projection::segments::SegmentClaims;

use crate::postgres::{database_url, drop_schema, seeded_schema};
use crate::sqlite::seeded_file;
use crate::{eventsource, joined};

/// The projections `status` lists.
fn listed(with: &dyn Fn(&[&str]) -> Vec<String>) -> Vec<String> {
    let status = eventsource(&with(&["status", "--json"])).expect(0).json();
    status["projections"]
        .as_array()
        .expect("a list of projections")
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_projection_leaves_status_and_a_held_one_is_refused() {
    let Some(url) = database_url("a_retired_projection_leaves_status") else {
        return;
    };
    let (store, schema) = seeded_schema(&url).await;
    let checkpoints = store.checkpoint_store();
    let target = ["--store", url.as_str(), "--schema", schema.as_str()];
    let with = |args: &[&str]| joined(&target, args);

    // Held by a runner: refused, naming its session; nothing changed.
    let lease = (checkpoints.try_acquire("orders").await.unwrap()).expect("free");
    let refused = eventsource(&with(&["projection", "retire", "orders"])).expect(4);
    assert!(
        refused
            .stderr
            .contains("projection `orders` is held by pid")
            && refused.stderr.contains("nothing changed"),
        "{}",
        refused.stderr
    );
    assert_eq!(checkpoints.load("orders").await.unwrap(), 2, "unchanged");
    assert_eq!(checkpoints.parked("orders").await.unwrap().len(), 1);
    lease.release().await;

    // Free: its checkpoint and its parked event gone, the others kept.
    let retired =
        (eventsource(&with(&["projection", "retire", "orders", "--json"])).expect(0)).json();
    assert_eq!(
        retired["checkpoints"],
        serde_json::json!(["orders"]),
        "{retired:#}"
    );
    assert!(retired["segments"].is_null(), "{retired:#}");
    assert!(!listed(&with).contains(&"orders".to_owned()));
    assert!(listed(&with).contains(&"eventsource.relay".to_owned()));
    assert!(checkpoints.parked("orders").await.unwrap().is_empty());
    assert!(checkpoints.parked_counts().await.unwrap().is_empty());

    // Unknown now (or ever): not found; one segment's name: the whole projection, please.
    let again = eventsource(&with(&["projection", "retire", "orders"])).expect(3);
    assert!(
        again.stderr.contains("no projection `orders`"),
        "{}",
        again.stderr
    );

    // A split projection: refused while a worker holds a segment, naming it; then its
    // segments' checkpoints, parked events, registration and workers all gone.
    let timeout = Duration::from_secs(30);
    assert_eq!(checkpoints.split("totals", 2).await.unwrap(), (2, true));
    let claimed = (checkpoints.claim("totals", "worker-a", 1, timeout).await).unwrap();
    checkpoints.save("totals[0/2]", 4).await.unwrap();
    checkpoints.save("totals[1/2]", 3).await.unwrap();
    (checkpoints
        .park("totals[1/2]", &ParkedEvent::new(3, "boom"))
        .await)
        .unwrap();
    let segment = eventsource(&with(&["projection", "retire", "totals[0/2]"])).expect(2);
    assert!(
        segment.stderr.contains("retire the whole projection"),
        "{}",
        segment.stderr
    );
    let refused = eventsource(&with(&["projection", "retire", "totals"])).expect(4);
    assert!(
        refused.stderr.contains("0/2 by worker-a (epoch 1)"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        checkpoints.load("totals[0/2]").await.unwrap(),
        4,
        "unchanged"
    );
    let mine: Vec<_> = claimed.iter().map(|c| c.claim).collect();
    (checkpoints.release("totals", "worker-a", &mine).await).unwrap();
    let text = eventsource(&with(&["projection", "retire", "totals"])).expect(0);
    assert_eq!(
        text.stdout,
        "totals: retired (2 segments and its parked events deleted)\n"
    );
    assert!(!listed(&with).contains(&"totals".to_owned()));
    assert!(checkpoints.split_projections().await.unwrap().is_empty());
    assert!(checkpoints.owners("totals").await.unwrap().is_empty());
    assert!(checkpoints.parked_counts().await.unwrap().is_empty());
    let names: Vec<String> = (checkpoints.checkpoints().await.unwrap())
        .into_iter()
        .map(|record| record.projection)
        .collect();
    assert_eq!(names, ["eventsource.relay"]);

    drop_schema(store.pool(), &schema).await;
    store.pool().close().await;
}

/// SQLite keeps leases in the service's process: the command line says so, then retires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_projection_is_retired_with_a_note() {
    let (_dir, store, target) = seeded_file("retire").await;
    let checkpoints = store.checkpoint_store();
    let with = |args: &[&str]| joined(&["--store", &target], args);

    let run = eventsource(&with(&["projection", "retire", "orders"])).expect(0);
    assert!(
        run.stderr.contains("make sure no worker of `orders` runs"),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stdout,
        "orders: retired (its checkpoint and its parked events deleted)\n"
    );
    assert_eq!(listed(&with), ["eventsource.relay"]);
    assert!(checkpoints.parked("orders").await.unwrap().is_empty());
    store.close().await;
}
