//! What every scenario is made of: the suite's database and a schema of its own, the
//! namespace the process under test runs in, the appender, the child processes, and what
//! is done to them (`Nemesis`).

use std::collections::HashSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use eventsource_runtime::event::{NewEvent, StreamId};
use eventsource_runtime::postgres::{PostgresCheckpointStore, PostgresEventStore};
use eventsource_runtime::sqlx::{self, PgPool, postgres::PgPoolOptions};
use eventsource_runtime::store::{EventStore, ExpectedVersion, StoreError};
use eventsource_test_support::history::{Call, History, HistoryWriter, Op, OpKind, OpRef, Report};
use eventsource_test_support::netns::{self, Fault, Namespace};
use tokio::sync::oneshot;

use super::TIMEOUT;
use super::child::{CHILD, HISTORY, NAME, SCHEMA, TIMEOUT_MS, URL};

/// The partition suite's database (see `.ci/run --partitions-only`).
const PG_URL: &str = "EVENTSOURCE_PARTITION_PG_URL";
/// Set: a missing database or tool fails the suite instead of skipping it.
const REQUIRE: &str = "EVENTSOURCE_REQUIRE_PARTITIONS";

/// How long a process may take to stop after SIGTERM: Kubernetes' default grace period.
const STOP_WITHIN: Duration = Duration::from_secs(30);

/// libfaketime, from Debian's `faketime` (preloaded into a child whose clock is skewed).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// What happens to the process under test.
#[derive(Debug, Clone, Copy)]
pub enum Nemesis {
    /// Its packets dropped or rejected.
    Net(Fault),
    /// Its packets to and from one server of the host (the one on this TCP port) dropped or
    /// rejected; the others pass.
    Server(Fault, u16),
    /// The process stopped (SIGSTOP), then continued: its kernel answers for it meanwhile.
    Pause,
    /// Its packets dropped or rejected, its clock off by a skew (libfaketime's `FAKETIME`,
    /// e.g. `+8s`): leases and claims are judged on the server's clock.
    Skewed(Fault, &'static str),
}

impl Nemesis {
    pub fn name(self) -> String {
        match self {
            Self::Net(fault) => fault.name().to_owned(),
            Self::Server(fault, port) => format!("{} (port {port} only)", fault.name()),
            Self::Pause => "SIGSTOP".to_owned(),
            Self::Skewed(fault, skew) => format!("{} (clock {skew})", fault.name()),
        }
    }

    fn skew(self) -> Option<&'static str> {
        match self {
            Self::Skewed(_, skew) => Some(skew),
            _ => None,
        }
    }
}

/// A nemesis begun: what, its note in the history, and when.
pub struct Struck {
    nemesis: Nemesis,
    noted: OpRef,
    pub at: Instant,
}

/// One scenario: its schema, its namespace, its histories' folder, the appender.
pub struct World {
    pub db: Db,
    pub namespace: Namespace,
    url: String,
    dir: PathBuf,
    history: Arc<HistoryWriter>,
    appender: Option<Appender>,
}

impl World {
    /// A world for the scenario numbered `index` (its namespace's), appending already; `None`
    /// (skipped) when the suite cannot run here.
    pub async fn start(index: u8) -> Option<Self> {
        let url = ready()?;
        let namespace = Namespace::create(index);
        let db = Db::create(&url).await;
        let dir = std::env::temp_dir().join(format!("eventsource-{}", db.schema));
        let history = Arc::new(HistoryWriter::create(&dir, "appender").unwrap());
        let appender = Some(Appender::start(db.store.clone(), Arc::clone(&history)));
        Some(Self {
            db,
            namespace,
            url,
            dir,
            history,
            appender,
        })
    }

    /// Starts child `name` in `role`: inside the namespace (clock skewed as `nemesis` says)
    /// or on the host.
    pub fn start_child(
        &self,
        role: &str,
        name: &'static str,
        inside: bool,
        nemesis: Nemesis,
    ) -> Process {
        self.start_child_with(role, name, inside, nemesis, &[])
    }

    /// [`start_child`](Self::start_child) with more of the environment: each value's
    /// `{host}` is the address the child reaches the host at.
    pub fn start_child_with(
        &self,
        role: &str,
        name: &'static str,
        inside: bool,
        nemesis: Nemesis,
        env: &[(&str, &str)],
    ) -> Process {
        let exe = std::env::current_exe().unwrap();
        let (mut command, url) = if inside {
            let url = self
                .url
                .replacen("127.0.0.1", &self.namespace.host_ip().to_string(), 1);
            (self.namespace.command(&exe), url)
        } else {
            (Command::new(&exe), self.url.clone())
        };
        let log = self.dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        command
            .args(["--exact", "child", "--nocapture", "--test-threads", "1"])
            .env(CHILD, role)
            .env(URL, url)
            .env(SCHEMA, &self.db.schema)
            .env(HISTORY, &self.dir)
            .env(NAME, name)
            .env(TIMEOUT_MS, TIMEOUT.as_millis().to_string())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        let host = if inside {
            self.namespace.host_ip().to_string()
        } else {
            "127.0.0.1".to_owned()
        };
        for (name, value) in env {
            command.env(name, value.replace("{host}", &host));
        }
        if let (true, Some(skew)) = (inside, nemesis.skew()) {
            command.env("LD_PRELOAD", LIBFAKETIME).env("FAKETIME", skew);
        }
        Process {
            name,
            child: command.spawn().unwrap(),
            log,
        }
    }

    /// Does `nemesis` to `a` (in the namespace) for `hold`, then heals it. A fault held at
    /// least [`TIMEOUT`] is the one the peer `b` must take over from: `taken_over` must come
    /// within `bound` of the fault's start (waited for through `b`, failing with its log);
    /// how long it took, `None` for a shorter fault.
    pub async fn cut_off(
        &self,
        nemesis: Nemesis,
        hold: Duration,
        a: &Process,
        b: &mut Process,
        bound: Duration,
        taken_over: impl AsyncFn() -> bool,
    ) -> Option<Duration> {
        let struck = self.strike(nemesis, a);
        let takeover = if hold >= TIMEOUT {
            b.wait_for("the peer takes over", bound, taken_over).await;
            Some(struck.at.elapsed())
        } else {
            None
        };
        tokio::time::sleep_until((struck.at + hold).into()).await;
        self.heal(struck, a);
        takeover
    }

    /// Begins `nemesis` on `a`, noted in the test's history.
    pub fn strike(&self, nemesis: Nemesis, a: &Process) -> Struck {
        let noted = self.history.note_nemesis(nemesis.name()).unwrap();
        let at = Instant::now();
        match nemesis {
            Nemesis::Net(fault) | Nemesis::Skewed(fault, _) => self.namespace.cut(fault),
            Nemesis::Server(fault, port) => self.namespace.cut_port(fault, port),
            Nemesis::Pause => a.signal("-STOP"),
        }
        Struck { nemesis, noted, at }
    }

    /// Ends what [`strike`](Self::strike) began.
    pub fn heal(&self, struck: Struck, a: &Process) {
        match struck.nemesis {
            Nemesis::Net(_) | Nemesis::Skewed(..) | Nemesis::Server(..) => self.namespace.heal(),
            Nemesis::Pause => a.signal("-CONT"),
        }
        self.history.note_nemesis_end(&struck.noted).unwrap();
    }

    /// The event store the test appends to.
    pub fn store(&self) -> &PostgresEventStore {
        &self.db.store
    }

    /// The checkpoint store on the scenario's schema.
    pub fn checkpoints(&self) -> PostgresCheckpointStore {
        self.db.store.checkpoint_store()
    }

    /// The folder the histories are in.
    pub fn history_dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Appends one more second (events after the heal too), then stops: how many appends
    /// were acknowledged.
    pub async fn stop_appending(&mut self) -> i64 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.appender.take().unwrap().stop().await
    }

    /// Stops appending, and waits (through `watch`, failing with its log) until every
    /// acknowledged append, the test's and the children's, is handled by someone, as the
    /// histories say: how many of the test's were acknowledged.
    pub async fn finish_appending_by_history(&mut self, watch: &mut Process) -> i64 {
        let acknowledged = self.stop_appending().await;
        let dir = &self.dir;
        let everything = async || waiting_since(dir, u64::MAX).is_empty();
        watch
            .wait_for(
                "every acknowledged event handled",
                Duration::from_secs(60),
                everything,
            )
            .await;
        acknowledged
    }

    /// Stops appending, and waits (through `watch`, failing with its log) until every
    /// acknowledged append was handled: how many were.
    pub async fn finish_appending(&mut self, watch: &mut Process) -> i64 {
        let acknowledged = self.stop_appending().await;
        let db = &self.db;
        let all = async || db.distinct_handled().await >= acknowledged;
        watch
            .wait_for(
                "every acknowledged event handled",
                Duration::from_secs(60),
                all,
            )
            .await;
        acknowledged
    }

    /// Every process's history, the times of `skewed` (by `nemesis`'s skew) put back on
    /// the others' clock (the test knows the clock it gave it), and `extra` ops.
    pub fn history(&self, skewed: &str, nemesis: Nemesis, extra: Vec<Op>) -> History {
        let mut ops = History::read_dir(&self.dir).unwrap().ops;
        if let Some(skew) = nemesis.skew() {
            let skew_ms: i64 = skew.trim_end_matches('s').parse::<i64>().unwrap() * 1000;
            for op in ops.iter_mut().filter(|op| op.process == skewed) {
                op.at_ms = op.at_ms.saturating_add_signed(-skew_ms);
            }
        }
        ops.extend(extra);
        History::from_ops(ops)
    }

    pub async fn end(self) {
        let dir = self.dir.clone();
        self.db.drop_schema().await;
        if std::env::var_os("EVENTSOURCE_PARTITION_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A task of the test's own (a relay, a consumer group) running until told to stop.
pub struct Running<T> {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<T>,
}

impl<T: Send + 'static> Running<T> {
    /// Runs what `run` makes of the future that completes when [`stop`](Self::stop) is
    /// called.
    pub fn spawn<F>(run: impl FnOnce(Pin<Box<dyn Future<Output = ()> + Send>>) -> F) -> Self
    where
        F: Future<Output = T> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(Box::pin(async move {
            let _ = stopped.await;
        })));
        Self { stop, task }
    }

    /// Tells it to stop, and waits for what it returns.
    pub async fn stop(self) -> T {
        let _ = self.stop.send(());
        self.task.await.unwrap()
    }
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

/// The scenario's schema on the suite's database, with `handled`: a row per event a child
/// handled (committed), by the server's clock.
pub struct Db {
    pool: PgPool,
    pub schema: String,
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
             segment int, epoch bigint, at timestamptz NOT NULL DEFAULT clock_timestamp())"
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

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        let asked = sqlx::query_scalar(&sql.replace("__schema__", &self.schema))
            .fetch_one(&self.pool)
            .await;
        match asked {
            Ok(value) => value,
            Err(error) => panic!("{sql}: {error}\n{}", self.activity().await),
        }
    }

    /// What every session of the server is doing, on a connection of its own: for the
    /// message of a query that failed.
    async fn activity(&self) -> String {
        let url = std::env::var(PG_URL).unwrap_or_default();
        let Ok(mut connection) = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await
        else {
            return "(no connection to say what the server is doing)".to_owned();
        };
        let rows: Vec<Activity> = sqlx::query_as(
            "SELECT pid, application_name, state, wait_event, left(query, 120) \
                   FROM pg_stat_activity WHERE datname = current_database()",
        )
        .fetch_all(&mut connection)
        .await
        .unwrap_or_default();
        rows.iter()
            .map(|row| format!("{row:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub async fn event_ids(&self, sql: &str) -> Vec<uuid::Uuid> {
        let asked = sqlx::query_scalar(&sql.replace("__schema__", &self.schema))
            .fetch_all(&self.pool)
            .await;
        match asked {
            Ok(ids) => ids,
            Err(error) => panic!("{sql}: {error}\n{}", self.activity().await),
        }
    }

    pub async fn handled_by(&self, runner: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM \"__schema__\".handled WHERE runner = '{runner}'");
        self.scalar(&sql).await
    }

    async fn distinct_handled(&self) -> i64 {
        self.scalar("SELECT count(DISTINCT event_id) FROM \"__schema__\".handled")
            .await
    }

    /// Whether a session named `name` is connected.
    pub async fn connected(&self, name: &str) -> bool {
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

/// A session of the server: pid, application, state, what it waits for, its query.
type Activity = (
    i32,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

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

/// A child process (`child.rs`), on the host or in the namespace.
pub struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Waits up to `within` for `done`, failing with this process's log when it does not
    /// come (or the process exits first).
    pub async fn wait_for(&mut self, what: &str, within: Duration, done: impl AsyncFn() -> bool) {
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

    /// Waits up to `within` for a line of this process's log to contain `text`, failing
    /// with its log when none does.
    pub async fn wait_to_say(&mut self, text: &str, within: Duration) {
        let log = self.log.clone();
        let said = async || std::fs::read_to_string(&log).is_ok_and(|log| log.contains(text));
        let what = format!("{} says `{text}`", self.name);
        self.wait_for(&what, within, said).await;
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
    pub fn stop(mut self) -> Duration {
        let sent = Instant::now();
        self.signal("-TERM");
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

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-CONT", &self.child.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The longest stall the checker found, as the scenarios print it: how long, and why.
pub fn stalled(report: &Report) -> String {
    report
        .longest_stall
        .as_ref()
        .map_or("none".to_owned(), |stall| {
            format!("{} ms, {}", stall.duration_ms, stall.cause())
        })
}

/// How long a takeover took after a fault began, as the scenarios print it.
pub fn took(takeover: Option<Duration>) -> String {
    takeover.map_or("only after the heal".to_owned(), |took| format!("{took:?}"))
}

/// The events whose append was acknowledged before `before_ms` and that nobody handled yet.
pub fn waiting_since(dir: &Path, before_ms: u64) -> HashSet<uuid::Uuid> {
    let Ok(history) = History::read_dir(dir) else {
        return HashSet::from([uuid::Uuid::nil()]);
    };
    let mut waiting = HashSet::new();
    for op in &history.ops {
        match &op.f {
            Call::Append { event_ids, .. } if op.kind == OpKind::Ok && op.at_ms < before_ms => {
                waiting.extend(event_ids.iter().copied());
            }
            _ => {}
        }
    }
    for op in &history.ops {
        if let (OpKind::Ok, Call::HandleCommit(handling)) = (op.kind, &op.f) {
            waiting.remove(&handling.event_id);
        }
    }
    waiting
}
