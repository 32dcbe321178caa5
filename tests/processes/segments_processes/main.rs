//! One projection split into segments over worker processes (the `scale_out` example, one
//! worker per process) on a real PostgreSQL, with faults: a worker killed (SIGKILL), a
//! worker paused (SIGSTOP) past its claim timeout and woken, a worker joining and one
//! stopped gracefully, a worker's database sessions terminated, the database gone for longer
//! than the claim timeout and back (`segments_processes/outage.rs`). Whatever happens, every
//! stored event ends up in the fenced read model exactly once (counted by event id), each
//! order's events applied in version order. Every wait polls the database with a bound.

use eventsource_test_support::otlp;
mod outage;
use eventsource_test_support::postgres;
mod worker;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use eventsource_runtime::sqlx::{self, PgPool};
use postgres::TestDb;
use tokio::sync::{Mutex, MutexGuard};
use uuid::Uuid;
use worker::Worker;

const AGGREGATES: usize = 40;
const VERSIONS: u64 = 10;
const EVENTS: usize = AGGREGATES * VERSIONS as usize;

/// The scenarios run one after the other: their bounds hold without another scenario's
/// processes on the same cores.
async fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::const_new(());
    LOCK.lock().await
}

fn example() -> PathBuf {
    otlp::example_binary("scale_out", &[])
}

/// One scenario: its schema, seeded; the example; the database to poll.
struct Scenario {
    binary: PathBuf,
    url: String,
    schema: String,
    worker_args: Vec<String>,
    pool: PgPool,
    stored: BTreeSet<Uuid>,
}

impl Scenario {
    async fn new(db: &TestDb, url: &str, worker_args: &[&str]) -> Self {
        let binary = example();
        let schema = db.schema();
        let seeded = Command::new(&binary)
            .args(["--role", "seed", "--store", url, "--schema", &schema])
            .args(["--aggregates", &AGGREGATES.to_string()])
            .args(["--versions", &VERSIONS.to_string()])
            .env("OTEL_SDK_DISABLED", "true")
            .output()
            .unwrap();
        assert!(
            seeded.status.success(),
            "seed: {}",
            String::from_utf8_lossy(&seeded.stderr)
        );
        let pool = db.pool(2).await;
        let stored: Vec<Uuid> =
            sqlx::query_scalar(&format!("SELECT event_id FROM \"{schema}\".events"))
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(stored.len(), EVENTS);
        Self {
            binary,
            url: url.to_owned(),
            schema,
            worker_args: worker_args.iter().map(|&a| a.to_owned()).collect(),
            pool,
            stored: stored.into_iter().collect(),
        }
    }

    /// Events applied to the read model.
    async fn applied(&self) -> usize {
        let schema = &self.schema;
        let count: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM \"{schema}\".handled_events"))
                .fetch_one(&self.pool)
                .await
                .unwrap_or(0);
        usize::try_from(count).unwrap()
    }

    /// Each segment's owner (`None`: free or expired), by segment.
    async fn owners(&self) -> Vec<Option<String>> {
        let schema = &self.schema;
        sqlx::query_scalar(&format!(
            "SELECT CASE WHEN owner IS NOT NULL \
                          AND renewed_at > now() - interval '1 second' * $1 THEN owner END \
               FROM \"{schema}\".projection_segments WHERE projection = 'OrderProgress' \
              ORDER BY segment"
        ))
        .bind(self.claim_timeout().as_secs_f64())
        .fetch_all(&self.pool)
        .await
        .unwrap_or_default()
    }

    fn claim_timeout(&self) -> Duration {
        let at = self
            .worker_args
            .iter()
            .position(|a| a == "--claim-timeout-ms")
            .expect("a claim timeout");
        Duration::from_millis(self.worker_args[at + 1].parse().unwrap())
    }

    /// Polls `done` every 50 ms for up to `within`, the workers' output pumped.
    async fn wait_for(
        &self,
        what: &str,
        within: Duration,
        workers: &mut [&mut Worker],
        mut done: impl AsyncFnMut(&Self) -> bool,
    ) -> Duration {
        let start = Instant::now();
        while !done(self).await {
            if start.elapsed() > within {
                let logs: String = workers.iter_mut().map(|w| w.log()).collect();
                panic!("{what}: not within {within:?}{logs}");
            }
            for worker in workers.iter_mut() {
                worker.pump();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        start.elapsed()
    }

    /// Waits until two workers own every segment between them and have applied 20 events.
    async fn wait_for_both_to_work(&self, a: &mut Worker, b: &mut Worker) {
        let both_work = async |s: &Scenario| {
            let owners = s.owners().await;
            let distinct: BTreeSet<_> = owners.iter().flatten().collect();
            distinct.len() == 2 && owners.iter().all(Option::is_some) && s.applied().await >= 20
        };
        let within = Duration::from_secs(30);
        self.wait_for("both work", within, &mut [a, b], both_work)
            .await;
    }

    /// Every stored event applied exactly once, each order's in version order.
    async fn assert_model_exact(&self) {
        let schema = &self.schema;
        let rows: Vec<(Uuid, i32)> = sqlx::query_as(&format!(
            "SELECT event_id, applied FROM \"{schema}\".handled_events"
        ))
        .fetch_all(&self.pool)
        .await
        .unwrap();
        let applied: BTreeSet<Uuid> = rows.iter().map(|(id, _)| *id).collect();
        assert_eq!(applied, self.stored, "every stored event applied, by id");
        let twice: Vec<_> = rows.iter().filter(|(_, n)| *n != 1).collect();
        assert!(twice.is_empty(), "applied more than once: {twice:?}");
        let (orders, out_of_order, complete): (i64, i64, i64) = sqlx::query_as(&format!(
            "SELECT count(*), coalesce(sum(out_of_order), 0), \
                    count(*) FILTER (WHERE version = {VERSIONS}) \
               FROM \"{schema}\".order_progress"
        ))
        .fetch_one(&self.pool)
        .await
        .unwrap();
        assert_eq!((orders, complete), (AGGREGATES as i64, AGGREGATES as i64));
        assert_eq!(out_of_order, 0, "each order's events in version order");
    }
}

fn all_owned_by_live(owners: &[Option<String>], dead: &str) -> bool {
    !owners.is_empty()
        && owners
            .iter()
            .all(|owner| owner.as_deref().is_some_and(|o| o != dead))
}

async fn open(test: &str) -> Option<(TestDb, String)> {
    let db = TestDb::open(test).await?;
    let url = std::env::var("DATABASE_URL").unwrap();
    Some((db, url))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_segments_are_taken_over_within_the_claim_timeout() {
    let _one = one_at_a_time().await;
    let Some((db, url)) = open("a_killed_workers_segments_are_taken_over").await else {
        return;
    };
    let args = [
        "--segments",
        "12",
        "--claim-timeout-ms",
        "3000",
        "--rebalance-ms",
        "200",
        "--handler-delay-ms",
        "5",
    ];
    let scenario = Scenario::new(&db, &url, &args).await;
    let mut a = Worker::start(&scenario, "w-a", &[]);
    let mut b = Worker::start(&scenario, "w-b", &[]);
    let mut c = Worker::start(&scenario, "w-c", &[]);
    let three_share = async |s: &Scenario| {
        let owners = s.owners().await;
        let distinct: BTreeSet<_> = owners.iter().flatten().collect();
        distinct.len() == 3 && owners.iter().all(Option::is_some) && s.applied().await >= 40
    };
    let within = Duration::from_secs(30);
    scenario
        .wait_for(
            "three workers share",
            within,
            &mut [&mut a, &mut b, &mut c],
            three_share,
        )
        .await;

    b.kill();
    let taken = async |s: &Scenario| all_owned_by_live(&s.owners().await, "w-b");
    // The claim timeout and a rebalance or two (about 3.2 s on a quiet machine), with room
    // for a loaded one's slow debug workers.
    let bound = scenario.claim_timeout() + Duration::from_secs(10);
    let took = scenario
        .wait_for(
            "w-b's segments taken over",
            bound,
            &mut [&mut a, &mut c],
            taken,
        )
        .await;
    eprintln!("takeover after SIGKILL: {took:?} (claim timeout 3 s)");

    let all = async |s: &Scenario| s.applied().await == EVENTS;
    let within = Duration::from_secs(60);
    scenario
        .wait_for("every event applied", within, &mut [&mut a, &mut c], all)
        .await;
    scenario.assert_model_exact().await;
    a.terminate(Duration::from_secs(10));
    c.terminate(Duration::from_secs(10));
    scenario.pool.close().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_worker_is_fenced_when_it_wakes_and_the_model_stays_exact() {
    let _one = one_at_a_time().await;
    let Some((db, url)) = open("a_paused_worker_is_fenced").await else {
        return;
    };
    let args = [
        "--segments",
        "4",
        "--claim-timeout-ms",
        "2000",
        "--rebalance-ms",
        "200",
        "--handler-delay-ms",
        "20",
    ];
    let scenario = Scenario::new(&db, &url, &args).await;
    let mut a = Worker::start(&scenario, "w-a", &[]);
    let mut b = Worker::start(&scenario, "w-b", &[]);
    let both_work = async |s: &Scenario| {
        let owners = s.owners().await;
        let distinct: BTreeSet<_> = owners.iter().flatten().collect();
        distinct.len() == 2 && s.applied().await >= 20
    };
    let within = Duration::from_secs(30);
    scenario
        .wait_for("both work", within, &mut [&mut a, &mut b], both_work)
        .await;

    // Paused, most likely inside a transaction of its handler, past its claim timeout.
    a.signal("-STOP");
    let b_holds_all = async |s: &Scenario| {
        let owners = s.owners().await;
        owners.iter().all(|o| o.as_deref() == Some("w-b"))
    };
    // The claim timeout, then (if `a` stopped while saving) its idle transaction ended by
    // the server (10 s): no longer.
    let bound = scenario.claim_timeout() + Duration::from_secs(20);
    scenario
        .wait_for("w-b takes every segment", bound, &mut [&mut b], b_holds_all)
        .await;
    let before = scenario.applied().await;
    let b_moves_on = async |s: &Scenario| s.applied().await >= before + 10;
    scenario
        .wait_for(
            "w-b moves on",
            Duration::from_secs(30),
            &mut [&mut b],
            b_moves_on,
        )
        .await;

    a.signal("-CONT");
    let all = async |s: &Scenario| s.applied().await == EVENTS;
    scenario
        .wait_for(
            "every event applied",
            Duration::from_secs(90),
            &mut [&mut a, &mut b],
            all,
        )
        .await;
    // Woken, `a` learnt that its segments were taken over while it stalled (its renewal
    // refused: fenced, with who holds each now), said so, and claimed its share again as a
    // newcomer; it never took its stall for a lost database.
    let fenced = a.said("taken over while this worker stalled") + a.said("(fenced)");
    assert!(fenced >= 1, "w-a says its segments were fenced{}", a.log());
    let lost = a.said("did not answer its renewals");
    assert_eq!(lost, 0, "w-a took its stall for a lost database{}", a.log());
    let rejoined =
        async |s: &Scenario| s.owners().await.iter().any(|o| o.as_deref() == Some("w-a"));
    scenario
        .wait_for(
            "w-a rejoins",
            Duration::from_secs(15),
            &mut [&mut a, &mut b],
            rejoined,
        )
        .await;
    scenario.assert_model_exact().await;
    a.terminate(Duration::from_secs(10));
    b.terminate(Duration::from_secs(10));
    scenario.pool.close().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_rebalance_as_workers_join_and_a_graceful_stop_hands_over_at_once() {
    let _one = one_at_a_time().await;
    let Some((db, url)) = open("shares_rebalance").await else {
        return;
    };
    // A long claim timeout: what moves here moves by rebalancing and release alone.
    let args = [
        "--segments",
        "8",
        "--claim-timeout-ms",
        "60000",
        "--rebalance-ms",
        "200",
        "--handler-delay-ms",
        "10",
    ];
    let scenario = Scenario::new(&db, &url, &args).await;
    let mut a = Worker::start(&scenario, "w-a", &[]);
    let a_holds_all = async |s: &Scenario| {
        let owners = s.owners().await;
        owners.len() == 8 && owners.iter().all(|o| o.as_deref() == Some("w-a"))
    };
    let within = Duration::from_secs(30);
    scenario
        .wait_for(
            "w-a holds every segment",
            within,
            &mut [&mut a],
            a_holds_all,
        )
        .await;

    let mut b = Worker::start(&scenario, "w-b", &[]);
    let halves = async |s: &Scenario| {
        let owners = s.owners().await;
        let of = |w: &str| owners.iter().filter(|o| o.as_deref() == Some(w)).count();
        of("w-a") == 4 && of("w-b") == 4
    };
    let within = Duration::from_secs(15);
    scenario
        .wait_for("four segments each", within, &mut [&mut a, &mut b], halves)
        .await;

    a.terminate(Duration::from_secs(15));
    let b_holds_all = async |s: &Scenario| {
        let owners = s.owners().await;
        owners.iter().all(|o| o.as_deref() == Some("w-b"))
    };
    let took = scenario
        .wait_for(
            "w-b takes w-a's share",
            Duration::from_secs(10),
            &mut [&mut b],
            b_holds_all,
        )
        .await;
    eprintln!("hand-over after a graceful stop: {took:?} (claim timeout 60 s)");
    let all = async |s: &Scenario| s.applied().await == EVENTS;
    scenario
        .wait_for(
            "every event applied",
            Duration::from_secs(60),
            &mut [&mut b],
            all,
        )
        .await;
    scenario.assert_model_exact().await;
    b.terminate(Duration::from_secs(10));
    scenario.pool.close().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workers_terminated_sessions_leave_no_segment_unowned() {
    let _one = one_at_a_time().await;
    let Some((db, url)) = open("a_workers_terminated_sessions").await else {
        return;
    };
    let args = [
        "--segments",
        "6",
        "--claim-timeout-ms",
        "3000",
        "--rebalance-ms",
        "200",
        "--handler-delay-ms",
        "10",
    ];
    let scenario = Scenario::new(&db, &url, &args).await;
    let mut a = Worker::start(&scenario, "w-a", &[]);
    let mut b = Worker::start(&scenario, "w-b", &[]);
    scenario.wait_for_both_to_work(&mut a, &mut b).await;

    let bound = scenario.claim_timeout() + Duration::from_secs(10);
    // PostgreSQL's clock at the last strike: each round strikes a worker at work, one that
    // reconnected and renewed a claim since (in its own time: its retries back off).
    let mut struck_at = String::from("-infinity");
    for _ in 0..3 {
        let schema = scenario.schema.clone();
        let a_at_work = async |_: &Scenario| {
            sqlx::query_scalar::<_, bool>(&format!(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity \
                                 WHERE application_name = 'w-a' AND backend_start > $1::timestamptz) \
                    AND EXISTS (SELECT 1 FROM \"{schema}\".projection_segments \
                                 WHERE owner = 'w-a' AND renewed_at > $1::timestamptz)"
            ))
            .bind(&struck_at)
            .fetch_one(db.admin())
            .await
            .unwrap()
        };
        let back = scenario
            .wait_for(
                "w-a reconnects and renews a claim",
                Duration::from_secs(30),
                &mut [&mut a, &mut b],
                a_at_work,
            )
            .await;
        eprintln!("w-a at work again after {back:?}");
        let (at, terminated): (String, i64) = sqlx::query_as(
            "SELECT now()::text, count(*) FILTER (WHERE pg_terminate_backend(pid)) \
               FROM pg_stat_activity WHERE application_name = 'w-a'",
        )
        .fetch_one(db.admin())
        .await
        .unwrap();
        assert!(terminated > 0, "w-a's sessions terminated");
        struck_at = at;
        // The work goes on, and no segment stays unowned longer than the claim timeout
        // and a rebalance or two (sampled every 50 ms meanwhile).
        let before = scenario.applied().await;
        let mut unowned_since: Vec<Option<Instant>> = Vec::new();
        let goes_on = async |s: &Scenario| {
            let owners = s.owners().await;
            unowned_since.resize(owners.len(), None);
            for (since, owner) in unowned_since.iter_mut().zip(&owners) {
                match (owner, &since) {
                    (Some(_), _) => *since = None,
                    (None, None) => *since = Some(Instant::now()),
                    (None, Some(at)) => {
                        assert!(at.elapsed() <= bound, "a segment unowned for {bound:?}");
                    }
                }
            }
            s.applied().await >= (before + 30).min(EVENTS)
        };
        scenario
            .wait_for(
                "the work goes on",
                Duration::from_secs(30),
                &mut [&mut a, &mut b],
                goes_on,
            )
            .await;
    }
    let all = async |s: &Scenario| s.applied().await == EVENTS;
    scenario
        .wait_for(
            "every event applied",
            Duration::from_secs(60),
            &mut [&mut a, &mut b],
            all,
        )
        .await;
    scenario.assert_model_exact().await;
    a.terminate(Duration::from_secs(10));
    b.terminate(Duration::from_secs(10));
    scenario.pool.close().await;
    db.cleanup().await;
}
