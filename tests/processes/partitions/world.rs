//! One scenario's world: the database schema, the namespace, the appender, the two runner
//! processes, the fault, and the verdict.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use eventsource_runtime::event::{NewEvent, StreamId};
use eventsource_runtime::postgres::PostgresEventStore;
use eventsource_runtime::sqlx::{self, PgPool, postgres::PgPoolOptions};
use eventsource_runtime::store::{EventStore, ExpectedVersion, StoreError};
use eventsource_test_support::history::{
    Call, Delivery, Expectations, History, HistoryWriter, check,
};
use eventsource_test_support::netns::{self, Fault, Namespace};

use super::LEASE_TIMEOUT;
use super::runner::{
    BATCH, CHECKPOINT_EVERY, CHILD, HISTORY, LEASE_TIMEOUT_MS, NAME, PROJECTION, SCHEMA, URL,
};

/// The partition suite's database (see `.ci/run --partitions-only`).
const PG_URL: &str = "EVENTSOURCE_PARTITION_PG_URL";
/// Set: a missing database or tool fails the suite instead of skipping it.
const REQUIRE: &str = "EVENTSOURCE_REQUIRE_PARTITIONS";

/// How long a process may take to stop after SIGTERM: Kubernetes' default grace period.
const STOP_WITHIN: Duration = Duration::from_secs(30);

/// The longest a standby may take to handle after the holder is cut off: the server ends
/// the holder's silent session within `5T/4`; the standby's next try (250 ms) and its
/// takeover grace (250 ms) follow; then the 5 s.
fn takeover_bound() -> Duration {
    LEASE_TIMEOUT * 5 / 4 + Duration::from_millis(500) + Duration::from_secs(5)
}

/// The database URL, or `None` (skipped) when the suite cannot run here.
fn ready() -> Option<String> {
    let missing = match (std::env::var(PG_URL), netns::unavailable()) {
        (Ok(url), None) => return Some(url),
        (Err(_), _) => format!("{PG_URL} is not set (.ci/run --partitions-only)"),
        (Ok(_), Some(why)) => why,
    };
    assert!(std::env::var_os(REQUIRE).is_none(), "{missing}");
    println!("skipped: {missing}");
    None
}

/// What happens to the lease holder.
#[derive(Debug, Clone, Copy)]
pub enum Nemesis {
    /// Its packets dropped or rejected.
    Net(Fault),
    /// The process stopped (SIGSTOP), then continued: its kernel answers for it meanwhile.
    Pause,
    /// Its packets dropped or rejected, its clock off by `skew` (libfaketime's `FAKETIME`,
    /// e.g. `+8s`): leases are judged on the server's clock.
    Skewed(Fault, &'static str),
}

impl Nemesis {
    fn name(self) -> String {
        match self {
            Self::Net(fault) => fault.name().to_owned(),
            Self::Pause => "SIGSTOP".to_owned(),
            Self::Skewed(fault, skew) => format!("{} (clock {skew})", fault.name()),
        }
    }
}

/// A `FAKETIME` offset (`+8s`, `-8s`) in milliseconds.
fn skew_ms(skew: &str) -> i64 {
    let seconds: i64 = skew.trim_end_matches('s').parse().unwrap();
    seconds * 1000
}

/// libfaketime, from Debian's `faketime` (preloaded into a child whose clock is skewed).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

pub struct Scenario;

impl Scenario {
    /// Does `nemesis` to the lease holder for `hold`, then heals, and judges.
    pub async fn run(index: u8, nemesis: Nemesis, hold: Duration) {
        let Some(url) = ready() else {
            return;
        };
        let namespace = Namespace::create(index);
        let db = Db::create(&url).await;
        let dir = std::env::temp_dir().join(format!("eventsource-{}", db.schema));
        let history = Arc::new(HistoryWriter::create(&dir, "appender").unwrap());
        let appender = Appender::start(db.store.clone(), Arc::clone(&history));

        let inner_url = url.replacen("127.0.0.1", &namespace.host_ip().to_string(), 1);
        let skew = match nemesis {
            Nemesis::Skewed(_, skew) => Some(skew),
            _ => None,
        };
        let mut a = Runner::start(Some(&namespace), &inner_url, &db.schema, &dir, "a", skew);
        let a_handles = async || db.handled_by("a").await >= 20;
        a.wait_for("a handles events", Duration::from_secs(30), a_handles)
            .await;
        let mut b = Runner::start(None, &url, &db.schema, &dir, "b", None);
        let b_connected = async || db.connected("b").await;
        b.wait_for("b connects", Duration::from_secs(10), b_connected)
            .await;

        let fault_op = history.note_nemesis(nemesis.name()).unwrap();
        let cut_at = Instant::now();
        match nemesis {
            Nemesis::Net(fault) | Nemesis::Skewed(fault, _) => namespace.cut(fault),
            Nemesis::Pause => a.signal("-STOP"),
        }
        let takeover = if hold >= LEASE_TIMEOUT {
            let b_handles = async || db.handled_by("b").await > 0;
            b.wait_for("b takes over", takeover_bound(), b_handles)
                .await;
            Some(cut_at.elapsed())
        } else {
            None
        };
        tokio::time::sleep_until((cut_at + hold).into()).await;
        match nemesis {
            Nemesis::Net(_) | Nemesis::Skewed(..) => namespace.heal(),
            Nemesis::Pause => a.signal("-CONT"),
        }
        history.note_nemesis_end(&fault_op).unwrap();

        // Events appended after the heal too.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let acknowledged = appender.stop().await;
        let all = async || db.distinct_handled().await >= acknowledged;
        b.wait_for(
            "every acknowledged event handled",
            Duration::from_secs(60),
            all,
        )
        .await;
        let a_stop = a.stop();
        let b_stop = b.stop();

        let mut ops = History::read_dir(&dir).unwrap().ops;
        if let Some(skew) = skew {
            // The test knows the clock it gave `a`: its times are put back on the others'.
            let skew_ms = skew_ms(skew);
            for op in ops.iter_mut().filter(|op| op.process == "a") {
                op.at_ms = op.at_ms.saturating_add_signed(-skew_ms);
            }
        }
        let history = History::from_ops(ops);
        let expectations = Expectations::new().handler(
            PROJECTION,
            Delivery::AtLeastOnce {
                window: (CHECKPOINT_EVERY + 2 * BATCH) as u64,
            },
        );
        let report = check(&history, &expectations);
        report.assert_clean();
        let overlapping = db.handled_by_a_after_b_began().await;
        assert_eq!(
            overlapping, 0,
            "a handled {overlapping} events after b had begun: two holders at once"
        );
        println!(
            "{} held {hold:?} (lease timeout {LEASE_TIMEOUT:?}): {acknowledged} appends \
             acknowledged; b handled {} after the fault began; stopped after SIGTERM in {a_stop:?} \
             (a) and {b_stop:?} (b); longest stall {:?}",
            nemesis.name(),
            takeover.map_or("only after the heal".to_owned(), |t| format!("{t:?}")),
            report.longest_stall.as_ref().map(|stall| stall.cause()),
        );
        db.drop_schema().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The scenario's schema on the suite's database.
struct Db {
    pool: PgPool,
    schema: String,
    store: PostgresEventStore,
}

impl Db {
    async fn create(url: &str) -> Self {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(url)
            .await
            .unwrap();
        let schema = format!("partition_{}", uuid::Uuid::now_v7().simple());
        let store = PostgresEventStore::from_pool(pool.clone())
            .with_schema(&schema)
            .unwrap();
        store.migrate().await.unwrap();
        sqlx::raw_sql(&format!(
            "CREATE TABLE \"{schema}\".handled (event_id uuid NOT NULL, runner text NOT NULL, \
             at timestamptz NOT NULL DEFAULT clock_timestamp())"
        ))
        .execute(&pool)
        .await
        .unwrap();
        Self {
            pool,
            schema,
            store,
        }
    }

    async fn scalar(&self, sql: &str) -> i64 {
        sqlx::query_scalar(&sql.replace("__schema__", &self.schema))
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    async fn handled_by(&self, runner: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM \"__schema__\".handled WHERE runner = '{runner}'");
        self.scalar(&sql).await
    }

    async fn distinct_handled(&self) -> i64 {
        self.scalar("SELECT count(DISTINCT event_id) FROM \"__schema__\".handled")
            .await
    }

    async fn handled_by_a_after_b_began(&self) -> i64 {
        self.scalar(
            "SELECT count(*) FROM \"__schema__\".handled WHERE runner = 'a' AND at > \
             (SELECT min(at) FROM \"__schema__\".handled WHERE runner = 'b')",
        )
        .await
    }

    /// Whether a session named `name` is connected.
    async fn connected(&self, name: &str) -> bool {
        let sql = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{name}' \
             AND datname = current_database()"
        );
        self.scalar(&sql).await > 0
    }

    async fn drop_schema(self) {
        let _ = sqlx::raw_sql(&format!("DROP SCHEMA \"{}\" CASCADE", self.schema))
            .execute(&self.pool)
            .await;
        self.pool.close().await;
    }
}

/// Appends one event every 20 ms, round robin over five streams, recording each append.
struct Appender {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<i64>,
}

impl Appender {
    fn start(store: PostgresEventStore, history: Arc<HistoryWriter>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut acknowledged = 0;
            let mut n = 0_u64;
            while !stopping.load(Ordering::SeqCst) {
                let stream = StreamId::new("Counter", format!("c-{}", n % 5));
                let event = NewEvent::new("Counted", 1, serde_json::json!({ "n": n }));
                let invoked = history
                    .invoke(Call::Append {
                        stream: stream.to_string(),
                        event_ids: vec![event.event_id],
                        positions: None,
                    })
                    .unwrap();
                match store
                    .append(&stream, ExpectedVersion::Any, vec![event])
                    .await
                {
                    Ok(_) => {
                        history.ok(&invoked).unwrap();
                        acknowledged += 1;
                    }
                    Err(StoreError::Unavailable(_)) => history.info(&invoked).unwrap(),
                    Err(_) => history.fail(&invoked).unwrap(),
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            acknowledged
        });
        Self { stop, task }
    }

    /// Stops appending: how many appends were acknowledged.
    async fn stop(self) -> i64 {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

/// A runner process (`runner.rs`), on the host or in a namespace.
struct Runner {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Runner {
    fn start(
        namespace: Option<&Namespace>,
        url: &str,
        schema: &str,
        dir: &Path,
        name: &'static str,
        skew: Option<&str>,
    ) -> Self {
        let exe = std::env::current_exe().unwrap();
        let mut command = namespace.map_or_else(|| Command::new(&exe), |ns| ns.command(&exe));
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        command
            .args(["--exact", "child", "--nocapture", "--test-threads", "1"])
            .env(CHILD, "runner")
            .env(URL, url)
            .env(SCHEMA, schema)
            .env(HISTORY, dir)
            .env(NAME, name)
            .env(LEASE_TIMEOUT_MS, LEASE_TIMEOUT.as_millis().to_string())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        if let Some(skew) = skew {
            command.env("LD_PRELOAD", LIBFAKETIME).env("FAKETIME", skew);
        }
        Self {
            name,
            child: command.spawn().unwrap(),
            log,
        }
    }

    /// Waits up to `within` for `done`, failing with this runner's log when it does not
    /// come (or the runner exits first).
    async fn wait_for(&mut self, what: &str, within: Duration, done: impl AsyncFn() -> bool) {
        let deadline = Instant::now() + within;
        loop {
            if done().await {
                return;
            }
            let exited = self.child.try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "{what}: not within {within:?} ({}): {}",
                exited.map_or("still running".to_owned(), |status| status.to_string()),
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn output(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        format!(
            "{}'s last lines:\n{}",
            self.name,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }

    /// Sends `signal` (`kill`'s spelling, `-STOP`).
    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill {signal} {}", self.name);
    }

    /// SIGTERM, then how long it took to exit (failing past [`STOP_WITHIN`]).
    fn stop(mut self) -> Duration {
        let sent = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "{} exited with {status}: {}",
                    self.name,
                    self.output()
                );
                return sent.elapsed();
            }
            if sent.elapsed() > STOP_WITHIN {
                let _ = self.child.kill();
                panic!(
                    "{} did not stop within {STOP_WITHIN:?} of SIGTERM: {}",
                    self.name,
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
