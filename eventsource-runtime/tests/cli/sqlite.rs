//! The command line on a SQLite file.

use std::path::PathBuf;

use eventsource_runtime::event::StreamId;
use eventsource_runtime::projection::checkpoint::CheckpointStore;
use eventsource_runtime::sqlite::SqliteEventStore;
use eventsource_runtime::store::{EventStore, ExpectedVersion};

use crate::{common_checks, eventsource, seed};

/// A fresh directory under the target's temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "eventsource-cli-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

/// A seeded SQLite store in a file of its own (`seed`): its directory (removed on drop),
/// the store, and the `--store` value naming it.
pub async fn seeded_file(name: &str) -> (TempDir, SqliteEventStore, String) {
    let dir = TempDir::new(name);
    let file = dir.0.join("events.db");
    let store = SqliteEventStore::connect(file.to_str().unwrap())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    seed(&store, &store.checkpoint_store()).await;
    let target = format!("sqlite:{}", file.display());
    (dir, store, target)
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_resets_a_sqlite_store() {
    let (dir, store, target) = seeded_file("sqlite").await;
    let checkpoints = store.checkpoint_store();

    common_checks(&["--store", &target], &checkpoints).await;

    // The store from the environment, as a service's own setting.
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_eventsource"))
        .args(["status", "--json"])
        .env("EVENTSOURCE_STORE", &target)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(status["store"], "sqlite");

    // Another service's store: its events of the same request join the tree, under the
    // event whose handler caused them.
    let other_file = dir.0.join("billing.db");
    let billing = SqliteEventStore::connect(other_file.to_str().unwrap())
        .await
        .unwrap();
    billing.migrate().await.unwrap();
    let ours = store.events_by_correlation("req-1").await.unwrap();
    let shipment = ours
        .iter()
        .find(|e| e.event_type == "ShipmentRequested")
        .unwrap();
    let invoiced = crate::event(
        "InvoiceIssued",
        Some("req-1"),
        Some(&shipment.event_id.to_string()),
        crate::TRACE_SHIPPING,
    );
    let invoice = StreamId::new("Invoice", "i-1");
    billing
        .append(&invoice, ExpectedVersion::NoStream, vec![invoiced])
        .await
        .unwrap();
    let other = format!("sqlite:{}", other_file.display());
    let args = [
        "--store",
        &target,
        "causation",
        "req-1",
        "--also-store",
        &other,
        "--json",
    ];
    let tree = eventsource(&args).expect(0).json();
    let shipment = &tree["roots"][0]["children"][0]["children"][0]["children"][0];
    assert_eq!(shipment["event_type"], "ShipmentRequested", "{tree:#}");
    assert_eq!(
        shipment["children"][0]["event_type"], "InvoiceIssued",
        "{tree:#}"
    );
    let alone = eventsource(&["--store", &target, "causation", "req-1", "--json"])
        .expect(0)
        .json();
    assert_eq!(
        alone["roots"][0]["children"][0]["children"][0]["children"][0]["children"],
        serde_json::json!([])
    );
    billing.pool().close().await;

    // A store named with `--also-store` that cannot be opened is named in the error.
    let typo = format!(
        "sqlite:{}",
        other_file.with_file_name("bilings.db").display()
    );
    let args = [
        "--store",
        &target,
        "causation",
        "req-1",
        "--also-store",
        &typo,
    ];
    let said = eventsource(&args).expect(3).stderr;
    assert!(
        said.contains(&format!("--also-store {typo}")),
        "which store failed is not said: {said}"
    );

    // A split projection's segments, from their checkpoints' names (SQLite keeps no claims
    // across processes), reset together.
    checkpoints.save("totals[0/2]", 3).await.unwrap();
    checkpoints.save("totals[1/2]", 6).await.unwrap();
    let status = eventsource(&["--store", &target, "status", "--json"])
        .expect(0)
        .json();
    let totals = crate::projection(&status, "totals");
    assert_eq!(
        (totals["kind"].as_str(), totals["checkpoint"].as_u64()),
        (Some("split"), Some(3))
    );
    assert_eq!(
        totals["segments"].as_array().unwrap().len(),
        2,
        "{totals:#}"
    );
    assert_eq!(totals["segments"][1]["checkpoint"], 6);
    let reset = eventsource(&[
        "--store",
        &target,
        "projection",
        "reset",
        "totals",
        "--to",
        "0",
    ])
    .expect(0);
    assert!(
        reset
            .stderr
            .contains("keeps leases and segment claims in the service's process"),
        "{}",
        reset.stderr
    );
    assert_eq!(checkpoints.load("totals[0/2]").await.unwrap(), 0);
    assert_eq!(checkpoints.load("totals[1/2]").await.unwrap(), 0);
    store.pool().close().await;
}

#[tokio::test]
async fn bad_stores_fail_in_one_line_and_create_nothing() {
    let dir = TempDir::new("missing");
    let missing = dir.0.join("typo.db");
    let target = format!("sqlite:{}", missing.display());
    let run = eventsource(&["--store", &target, "status"]).expect(3);
    assert!(
        run.stderr
            .starts_with("eventsource: error: no SQLite database at"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(!missing.exists(), "no empty database made");

    let run = eventsource(&["status"]).expect(2);
    assert!(run.stderr.contains("no store"), "{}", run.stderr);
    let run = eventsource(&["--store", "mysql://root:secret@db/x", "status"]).expect(2);
    assert!(
        run.stderr.contains("unknown store `mysql:`"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("secret"), "{}", run.stderr);

    // Nothing listens on port 1: the store cannot be reached, and the password is not told.
    let run = eventsource(&[
        "--store",
        "postgres://postgres:secret@127.0.0.1:1/x",
        "status",
    ])
    .expect(1);
    assert!(
        run.stderr
            .starts_with("eventsource: error: cannot open the PostgreSQL store"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(!run.stderr.contains("secret"), "{}", run.stderr);
}

/// A broker this build lacks: a usage error naming the feature, before anything connects.
#[test]
fn a_broker_not_built_in_is_a_usage_error_naming_its_feature() {
    let args = [
        "dead-letters",
        "list",
        "--broker",
        "nats://127.0.0.1:1",
        "--group",
        "g",
    ];
    let run = eventsource(&args);
    if cfg!(feature = "nats") {
        assert_eq!(run.code, 1, "nothing listens on port 1: {}", run.stderr);
    } else if cfg!(feature = "broker") {
        let said = run.expect(2).stderr;
        assert!(said.contains("`nats` feature"), "{said}");
    } else {
        let said = run.expect(2).stderr;
        assert!(said.contains("built without a broker"), "{said}");
    }
}

/// A file that holds no store yet: not found (exit 3), saying what makes one; then `migrate`
/// makes it one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmigrated_file_is_an_error_not_a_panic() {
    let dir = TempDir::new("empty");
    let file = dir.0.join("empty.db");
    std::fs::write(&file, b"").unwrap();
    let target = format!("sqlite:{}", file.display());
    let run = eventsource(&["--store", &target, "status"]).expect(3);
    assert!(
        run.stderr
            .contains("no eventsource store in this SQLite database"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    let run = eventsource(&["--store", &target, "migrate"]).expect(0);
    assert_eq!(run.stdout, "migrations applied: the schema is up to date\n");
    let status = eventsource(&["--store", &target, "status", "--json"])
        .expect(0)
        .json();
    assert_eq!(status["head"], 0);
    assert_eq!(status["projections"], serde_json::json!([]));
}

/// A projection that handles nothing, to have a runner to watch.
struct Orders;

#[eventsource_runtime::async_trait]
impl eventsource_runtime::projection::Projection for Orders {
    fn name(&self) -> &str {
        "orders"
    }

    async fn handle(
        &mut self,
        _: &eventsource_runtime::event::EventEnvelope,
    ) -> Result<(), eventsource_runtime::projection::ProjectionError> {
        Ok(())
    }
}

/// Answers `answers` requests on a loopback port with `body` as a readiness endpoint does
/// (503 while not ready); returns the port.
fn serve_health(body: String, answers: usize) -> u16 {
    use std::io::{Read as _, Write as _};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut client in listener.incoming().take(answers).flatten() {
            let _ = client.read(&mut [0; 4096]);
            let _ = write!(
                client,
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// `status --health-url`: the service's own report beside the store's view, as served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_a_running_services_own_report() {
    use std::sync::Arc;

    use eventsource_runtime::health::HealthRegistry;
    use eventsource_runtime::projection::runner::ProjectionRunner;

    let (_dir, store, target) = seeded_file("health").await;
    let checkpoints = store.checkpoint_store();
    let runner = ProjectionRunner::new(Arc::new(store.clone()), Arc::new(checkpoints), Orders);
    let registry = HealthRegistry::new();
    registry.watch(&runner);
    let report = serde_json::to_value(registry.report().await).unwrap();
    assert_eq!(report["components"][0]["name"], "orders", "{report:#}");
    let port = serve_health(report.to_string(), 2);
    let url = format!("http://127.0.0.1:{port}/ready");

    let status = ["--store", &target, "status", "--health-url", &url];
    let served = eventsource(&[&status[..], &["--json"]].concat())
        .expect(0)
        .json();
    assert_eq!(served["service"], report);
    assert_eq!(crate::projection(&served, "orders")["checkpoint"], 2);
    let text = eventsource(&status).expect(0).stdout;
    assert!(
        text.contains(&format!("service {url}: not ready")),
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.starts_with("projection "))
        .unwrap_or_else(|| panic!("{text}"));
    let state = report["components"][0]["state"].as_str().unwrap();
    assert!(row.contains(" orders ") && row.contains(state), "{text}");

    // Nothing listens there any more: exit 1, one line.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}/ready", gone.local_addr().unwrap());
    drop(gone);
    let run = eventsource(&["--store", &target, "status", "--health-url", &closed]).expect(1);
    assert!(
        run.stderr.starts_with(&format!(
            "eventsource: error: cannot reach the service at {closed}"
        )),
        "{}",
        run.stderr
    );
    let run = eventsource(&[
        "--store",
        &target,
        "status",
        "--health-url",
        "https://x/ready",
    ])
    .expect(2);
    assert!(
        run.stderr.contains("give http://host:port/path"),
        "{}",
        run.stderr
    );
    store.pool().close().await;
}
