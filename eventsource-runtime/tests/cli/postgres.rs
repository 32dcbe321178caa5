//! The command line on a PostgreSQL schema: what the SQLite file gives, and what only a
//! database shared by processes shows: who holds a lease, and who holds a split
//! projection's segments, refusing to reset while they do; who holds the high-water mark
//! back.

use std::io::Write as _;
use std::time::Duration;

use eventsource_runtime::event::{NewEvent, StreamId};
use eventsource_runtime::postgres::{PostgresCheckpointStore, PostgresEventStore};
use eventsource_runtime::projection::checkpoint::{CheckpointStore, ParkedEvent, RunnerStop};
use eventsource_runtime::projection::segments::SegmentClaims;
use eventsource_runtime::sqlx::{self, PgPool};
use eventsource_runtime::store::{EventStore, ExpectedVersion};

use crate::{common_checks, eventsource, projection, seed};

/// The server from `DATABASE_URL`, or `None` (said on stderr) when there is none and none
/// is required.
pub fn database_url(test: &str) -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("EVENTSOURCE_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "{test}: EVENTSOURCE_REQUIRE_POSTGRES=1 but DATABASE_URL is not set"
            );
            let line =
                format!("{test}: skipped: DATABASE_URL not set (PostgreSQL tests need a server)\n");
            let _ = std::io::stderr().write_all(line.as_bytes());
            None
        }
    }
}

/// A migrated store in a schema of its own.
pub async fn store_in_new_schema(url: &str) -> (PostgresEventStore, String) {
    let schema = format!(
        "es_cli_{}_{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    );
    let store = PostgresEventStore::connect(url)
        .await
        .unwrap()
        .with_schema(&schema)
        .unwrap();
    store.migrate().await.unwrap();
    (store, schema)
}

/// A migrated store in a schema of its own, seeded (`seed`).
pub async fn seeded_schema(url: &str) -> (PostgresEventStore, String) {
    let (store, schema) = store_in_new_schema(url).await;
    seed(&store, &store.checkpoint_store()).await;
    (store, schema)
}

pub async fn drop_schema(pool: &PgPool, schema: &str) {
    sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(pool)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_resets_a_postgres_store() {
    let Some(url) = database_url("reads_and_resets_a_postgres_store") else {
        return;
    };
    let (store, schema) = seeded_schema(&url).await;
    let checkpoints = store.checkpoint_store();
    let target = ["--store", url.as_str(), "--schema", schema.as_str()];
    common_checks(&target, &checkpoints).await;
    let with = |args: &[&str]| crate::joined(&target, args);

    // A running worker holds the lease: status names its session, a reset is refused
    // (saying who) and changes nothing; once it stops, the reset goes through.
    let lease = checkpoints
        .try_acquire("orders")
        .await
        .unwrap()
        .expect("free");
    let status = eventsource(&with(&["status", "--json"])).expect(0).json();
    let holder = &projection(&status, "orders")["lease"];
    let pid = holder["process_id"].as_u64().expect("a session's pid");
    let refused = eventsource(&with(&["projection", "reset", "orders", "--to", "0"])).expect(4);
    assert!(
        refused.stderr.starts_with(&format!(
            "eventsource: error: projection `orders` is held by pid {pid}"
        )),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("nothing changed"),
        "{}",
        refused.stderr
    );
    assert_eq!(checkpoints.load("orders").await.unwrap(), 5, "unchanged");
    lease.release().await;
    eventsource(&with(&["projection", "reset", "orders", "--to", "0"])).expect(0);
    assert_eq!(checkpoints.load("orders").await.unwrap(), 0);

    // A split projection: its segments' owners and epochs; a reset refused while a worker
    // holds one, naming it, then done under the command line's own claims.
    let timeout = Duration::from_secs(30);
    assert_eq!(checkpoints.split("totals", 2).await.unwrap(), (2, true));
    let claimed = checkpoints
        .claim("totals", "worker-a", 1, timeout)
        .await
        .unwrap();
    checkpoints.save("totals[0/2]", 4).await.unwrap();
    let status = eventsource(&with(&["status", "--json"])).expect(0).json();
    let totals = projection(&status, "totals");
    assert_eq!(totals["kind"], "split");
    assert_eq!(totals["segments"][0]["owner"], "worker-a", "{totals:#}");
    assert_eq!(totals["segments"][0]["epoch"], 1);
    assert_eq!(totals["segments"][0]["checkpoint"], 4);
    assert!(totals["segments"][1]["owner"].is_null());
    assert_eq!(totals["checkpoint"], 0, "the furthest-behind segment's");
    assert!(totals["segments"][1]["stopped"].is_null(), "{totals:#}");
    // A segment's runner that stopped on an error: under its segment, and the projection's
    // latest stop.
    let stop = RunnerStop::new("projection `totals[1/2]` stopped: its handler failed");
    checkpoints.record_stop("totals[1/2]", &stop).await.unwrap();
    let status = eventsource(&with(&["status", "--json"])).expect(0).json();
    let totals = projection(&status, "totals");
    assert_eq!(
        totals["segments"][1]["stopped"]["error"],
        stop.error.as_str()
    );
    assert!(totals["segments"][0]["stopped"].is_null(), "{totals:#}");
    assert_eq!(
        totals["stopped"]["error"],
        stop.error.as_str(),
        "{totals:#}"
    );
    let text = eventsource(&with(&["status"])).expect(0).stdout;
    let row = text.lines().find(|l| l.starts_with("  1/2 ")).unwrap();
    assert!(row.ends_with("- (stopped)"), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("STOPPED totals[1/2] at "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.ends_with(&format!("Z: {}", stop.error)), "{line}");
    assert!(
        !text.contains("STOPPED totals at"),
        "once, by segment: {text}"
    );
    checkpoints.clear_stop("totals[1/2]").await.unwrap();
    let refused = eventsource(&with(&["projection", "reset", "totals", "--to", "1"])).expect(4);
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
    let owners = checkpoints.owners("totals").await.unwrap();
    assert!(
        owners[1].owner.is_none(),
        "the command line's claims given back: {owners:?}"
    );
    let mine: Vec<_> = claimed.iter().map(|c| c.claim).collect();
    checkpoints
        .release("totals", "worker-a", &mine)
        .await
        .unwrap();
    let reset = eventsource(&with(&[
        "projection",
        "reset",
        "totals",
        "--to",
        "1",
        "--json",
    ]))
    .expect(0)
    .json();
    assert_eq!(reset["checkpoints"][0]["from"], 4, "{reset:#}");
    assert_eq!(checkpoints.load("totals[0/2]").await.unwrap(), 1);
    assert_eq!(checkpoints.load("totals[1/2]").await.unwrap(), 1);
    let owners = checkpoints.owners("totals").await.unwrap();
    assert!(owners.iter().all(|o| o.owner.is_none()), "{owners:?}");

    split_again(&with, &store, &checkpoints).await;

    // The runtime role's grants, for this schema.
    let grants = eventsource(&with(&["grants", "app_runtime"]))
        .expect(0)
        .stdout;
    assert!(
        grants.contains(&format!(
            "GRANT USAGE ON SCHEMA \"{schema}\" TO \"app_runtime\";"
        )),
        "{grants}"
    );
    let run = eventsource(&["--store", &url, "--schema", "Bad-Name", "status"]).expect(2);
    assert!(run.stderr.contains("Bad-Name"), "{}", run.stderr);
    // A schema the service never migrated: not found, said on one line naming it and what
    // makes one (it was the database's `relation ... does not exist`, exit 1).
    let never = format!("{schema}_never");
    let run = eventsource(&["--store", &url, "--schema", &never, "status"]).expect(3);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("no eventsource store in schema `{never}`"))
            && run.stderr.contains("eventsource migrate"),
        "{}",
        run.stderr
    );

    drop_schema(store.pool(), &schema).await;
    store.pool().close().await;
}

/// A transaction that appended and is still open holds the high-water mark: `status` names
/// its session (pid, application, client, state, for how long) on the line after the
/// header, `WARN` once it has held it past `store::MARK_HELD_WARN_AFTER`; gone once it
/// commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_names_the_session_holding_the_mark_back() {
    let Some(url) = database_url("status_names_the_session_holding_the_mark_back") else {
        return;
    };
    let (store, schema) = store_in_new_schema(&url).await;
    // Held past the warning without the server ending it.
    let store = store.idle_transaction_timeout(Duration::from_secs(60));
    let target = ["--store", url.as_str(), "--schema", schema.as_str()];
    let with = |args: &[&str]| crate::joined(&target, args);
    let status = eventsource(&with(&["status", "--json"])).expect(0).json();
    assert!(status["mark_held_by"].is_null(), "{status:#}");

    let mut held = store.pool().begin().await.unwrap();
    sqlx::query("SET application_name = 'stalled-writer'")
        .execute(&mut *held)
        .await
        .unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *held)
        .await
        .unwrap();
    let event = NewEvent::new("Stalled", 1, serde_json::json!({}));
    let appended = store
        .append_in_transaction(
            &mut held,
            &StreamId::new("S", "stalled"),
            ExpectedVersion::NoStream,
            vec![event],
        )
        .await
        .unwrap();
    let position = appended.events[0].position;
    let started = std::time::Instant::now();

    let holder_line = || {
        let text = eventsource(&with(&["status"])).expect(0).stdout;
        let mut lines = text.lines();
        assert!(
            lines
                .next()
                .unwrap_or_default()
                .starts_with("store postgresql")
        );
        let line = lines.next().unwrap_or_default().to_owned();
        (line, text)
    };
    let (line, text) = holder_line();
    let named = format!("mark held at #{position} by pid {pid} (app stalled-writer, client ");
    assert!(
        line.contains(&named),
        "{named} in
{text}"
    );
    assert!(line.contains(" idle in transaction for "), "{text}");
    if started.elapsed() < Duration::from_secs(4) {
        assert!(line.starts_with("mark held"), "not yet a warning: {text}");
    }
    let status = eventsource(&with(&["status", "--json"])).expect(0).json();
    let by = &status["mark_held_by"];
    assert_eq!(by["position"], position, "{status:#}");
    assert_eq!(by["process_id"], pid, "{status:#}");
    assert_eq!(by["application"], "stalled-writer", "{status:#}");
    assert_eq!(by["state"], "idle in transaction", "{status:#}");
    assert!(by["held_seconds"].as_f64().is_some(), "{status:#}");

    // Held past the warning's threshold.
    let threshold = eventsource_runtime::store::MARK_HELD_WARN_AFTER;
    tokio::time::sleep((threshold + Duration::from_millis(500)).saturating_sub(started.elapsed()))
        .await;
    let (line, text) = holder_line();
    assert!(line.starts_with(&format!("WARN {named}")), "{text}");
    let status = eventsource(&with(&["status", "--json"])).expect(0).json();
    assert_eq!(status["mark_held_by"]["warn"], true, "{status:#}");

    held.commit().await.unwrap();
    let text = eventsource(&with(&["status"])).expect(0).stdout;
    assert!(!text.contains("mark held"), "{text}");
    let status = eventsource(&with(&["status", "--json"])).expect(0).json();
    assert!(status["mark_held_by"].is_null(), "{status:#}");

    drop_schema(store.pool(), &schema).await;
    store.pool().close().await;
}

/// `projection split`: `totals`, in 2 segments (checkpoints 3 and 5, an event parked by
/// one, a stalled worker's expired claim), split into 4: each new segment from its old
/// segment's checkpoint, the parked event under its new segment, the stalled worker
/// fenced; refused, changing nothing, while a worker holds a segment or for a count that is
/// no multiple.
async fn split_again(
    with: &dyn Fn(&[&str]) -> Vec<String>,
    store: &PostgresEventStore,
    checkpoints: &PostgresCheckpointStore,
) {
    checkpoints.save("totals[0/2]", 3).await.unwrap();
    checkpoints.save("totals[1/2]", 5).await.unwrap();
    let shipment = StreamId::new("Shipment", "s-1"); // position 3
    let old_segment = store.segment_of(&shipment, 2).await.unwrap();
    let parked_under = old_segment.checkpoint_name("totals");
    checkpoints
        .park(&parked_under, &ParkedEvent::new(3, "unreadable"))
        .await
        .unwrap();

    let refused = eventsource(&with(&["projection", "split", "totals", "--into", "3"])).expect(2);
    assert!(
        refused.stderr.contains("give a multiple of 2"),
        "{}",
        refused.stderr
    );
    let refused = eventsource(&with(&["projection", "split", "orders", "--into", "4"])).expect(3);
    assert!(refused.stderr.contains("not split"), "{}", refused.stderr);
    let timeout = Duration::from_secs(30);
    let live = checkpoints
        .claim("totals", "worker-b", 1, timeout)
        .await
        .unwrap();
    let refused = eventsource(&with(&["projection", "split", "totals", "--into", "4"])).expect(4);
    assert!(refused.stderr.contains("by worker-b"), "{}", refused.stderr);
    assert_eq!(
        checkpoints.split_projections().await.unwrap()["totals"],
        2,
        "unchanged"
    );
    let live: Vec<_> = live.iter().map(|c| c.claim).collect();
    checkpoints
        .release("totals", "worker-b", &live)
        .await
        .unwrap();

    // A worker that stalled past its claim's timeout does not hold the segment any more.
    let stalled = checkpoints
        .claim("totals", "worker-c", 1, Duration::from_millis(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let old_epochs = checkpoints.owners("totals").await.unwrap();
    let highest = old_epochs.iter().map(|o| o.epoch).max().unwrap();

    let split = eventsource(&with(&[
        "projection",
        "split",
        "totals",
        "--into",
        "4",
        "--json",
    ]))
    .expect(0)
    .json();
    assert_eq!(
        (split["from"].as_u64(), split["to"].as_u64()),
        (Some(2), Some(4)),
        "{split:#}"
    );
    for index in 0..4 {
        let position = checkpoints
            .load(&format!("totals[{index}/4]"))
            .await
            .unwrap();
        assert_eq!(
            position,
            [3, 5][index % 2],
            "segment {index}/4 from {}/2",
            index % 2
        );
    }
    let new_segment = store.segment_of(&shipment, 4).await.unwrap();
    let parked = checkpoints
        .parked(&new_segment.checkpoint_name("totals"))
        .await
        .unwrap();
    assert_eq!(parked.len(), 1, "the parked event follows its stream");
    assert!(checkpoints.parked(&parked_under).await.unwrap().is_empty());
    let owners = checkpoints.owners("totals").await.unwrap();
    assert_eq!(owners.len(), 4);
    assert!(
        owners
            .iter()
            .all(|o| o.owner.is_none() && o.epoch >= highest),
        "{owners:?}"
    );
    let claim = stalled[0].claim;
    let saved = checkpoints
        .save_fenced("totals", "worker-c", claim, checkpoints, "totals[0/2]", 6)
        .await
        .unwrap();
    assert!(!saved, "the stalled worker is fenced");
    let status = eventsource(&with(&["status", "--json"])).expect(0).json();
    let totals = projection(&status, "totals");
    assert_eq!(
        totals["segments"].as_array().unwrap().len(),
        4,
        "{totals:#}"
    );
    assert_eq!(totals["parked"], 1);
}
