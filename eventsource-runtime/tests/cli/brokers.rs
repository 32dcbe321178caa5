//! `eventsource dead-letters` as users run it: the built binary against RabbitMQ, Kafka and
//! NATS. Each test runs a real consumer group whose handler fails, so that an event becomes
//! a dead letter through the bus itself; then `list` shows it by id, `requeue` moves it back
//! and the mended handler handles it (by id), and `purge` deletes another one, read back
//! through the library.
//!
//! The servers come from `EVENTSOURCE_AMQP_URL`, `EVENTSOURCE_KAFKA_BROKERS` and
//! `EVENTSOURCE_NATS_URL`; without one its test prints `skipped: ...` and passes, unless
//! `EVENTSOURCE_REQUIRE_<BROKER>=1`. Each test works under names of its own (an exchange,
//! a topic prefix, a stream); the NATS test deletes its streams, the others leave their
//! (empty) queues and topics behind.

use std::io::Write as _;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventsource_runtime::bus::{BusError, DeadLetterQueue, EventBus, HandlerError, Subscribe};
use eventsource_runtime::event::{EventEnvelope, NewEvent, StreamId};
use eventsource_runtime::store::{EventStore, ExpectedVersion, InMemoryEventStore};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use uuid::Uuid;

/// The handler's name on every group.
const HANDLER: &str = "mailer";

/// What one run of the binary gave.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

/// Runs `eventsource` with `args`, none of the broker variables of the test's environment.
fn eventsource<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_eventsource"))
        .args(args)
        .env_remove("EVENTSOURCE_BROKER")
        .env_remove("EVENTSOURCE_BUS_PREFIX")
        .env_remove("EVENTSOURCE_NATS_STREAM")
        .output()
        .expect("the eventsource binary runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `eventsource args`, which must end by itself within `bound` (a console that started
/// serving is killed, and the test fails).
fn exits_within(args: &[String], bound: Duration) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eventsource"))
        .args(args)
        .env_remove("EVENTSOURCE_BROKER")
        .env_remove("EVENTSOURCE_BUS_PREFIX")
        .env_remove("EVENTSOURCE_NATS_STREAM")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the eventsource binary runs");
    let deadline = std::time::Instant::now() + bound;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`eventsource {}` still ran after {bound:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The server in `variable`, or `None` after a `skipped:` line (a failure when `required`
/// is `1`).
fn server(test: &str, variable: &str, required: &str) -> Option<String> {
    if let Ok(address) = std::env::var(variable)
        && !address.trim().is_empty()
    {
        return Some(address);
    }
    assert!(
        std::env::var(required).as_deref() != Ok("1"),
        "{test}: {required}=1 but {variable} is not set; the test must run"
    );
    let line = format!("{test}: skipped: {variable} not set\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    None
}

/// The group's handler: fails while `broken`, and keeps the ids it handled.
#[derive(Default)]
struct Mailer {
    broken: AtomicBool,
    handled: Mutex<Vec<Uuid>>,
}

impl Mailer {
    fn handle(
        self: &Arc<Self>,
    ) -> impl Fn(EventEnvelope) -> std::future::Ready<Result<(), HandlerError>> + Send + Sync + 'static
    {
        let mailer = Arc::clone(self);
        move |event| {
            std::future::ready(if mailer.broken.load(Ordering::SeqCst) {
                Err(HandlerError::new("the mail server is down"))
            } else {
                mailer.handled.lock().unwrap().push(event.event_id);
                Ok(())
            })
        }
    }

    fn handled(&self, id: Uuid) -> bool {
        self.handled.lock().unwrap().contains(&id)
    }
}

/// One broker's running group, as the test drives it.
struct Fixture {
    /// `--broker URL --group NAME` and the bus's names.
    cli: Vec<String>,
    bus: Arc<dyn EventBus>,
    /// The same dead letters, through the library, to read back what the binary did.
    dead: Box<dyn DeadLetterQueue>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), BusError>>,
}

impl Fixture {
    /// The fixture of a group: `run` is the group's `run` given its stop signal, spawned
    /// here; `cli` the arguments naming the group after `--broker URL --group mail`.
    fn start<F>(
        url: &str,
        cli: &[&str],
        bus: Arc<dyn EventBus>,
        dead: Box<dyn DeadLetterQueue>,
        run: impl FnOnce(oneshot::Receiver<()>) -> F,
    ) -> Self
    where
        F: std::future::Future<Output = Result<(), BusError>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(stopped));
        let named = ["--broker", url, "--group", "mail"]
            .into_iter()
            .chain(cli.iter().copied());
        Self {
            cli: named.map(str::to_owned).collect(),
            bus,
            dead,
            stop,
            task,
        }
    }

    fn with(&self, args: &[&str]) -> Vec<String> {
        args.iter()
            .map(|arg| (*arg).to_owned())
            .chain(self.cli.iter().cloned())
            .collect()
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("joined").expect("stopped cleanly");
    }
}

/// One stored event of a new order stream.
async fn stored_event() -> EventEnvelope {
    let store = InMemoryEventStore::new();
    let stream = StreamId::new("Order", format!("o-{}", Uuid::now_v7().simple()));
    let event = NewEvent::new("OrderPlaced".to_owned(), 1, json!({ "total": 42 }));
    let appended = store
        .append(&stream, ExpectedVersion::NoStream, vec![event])
        .await
        .unwrap();
    appended.events.into_iter().next().unwrap()
}

/// Polls `done` every 100 ms for up to a minute (a Kafka group's first join takes seconds).
async fn until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..600 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn dead_count(fixture: &Fixture) -> u64 {
    fixture.dead.count().await.unwrap()
}

/// The scenario every broker passes.
async fn list_requeue_purge(fixture: Fixture, mailer: Arc<Mailer>) {
    // A dead letter, made by the bus: the handler fails on both deliveries.
    mailer.broken.store(true, Ordering::SeqCst);
    let first = stored_event().await;
    fixture
        .bus
        .publish(std::slice::from_ref(&first))
        .await
        .unwrap();
    until("the event is dead-lettered", || async {
        dead_count(&fixture).await == 1
    })
    .await;

    let listed = eventsource(&fixture.with(&["dead-letters", "list", "--json"]))
        .expect(0)
        .json();
    let letters = listed.as_array().expect("a list");
    assert_eq!(letters.len(), 1, "{listed:#}");
    let letter = &letters[0];
    assert_eq!(
        letter["message_id"],
        first.event_id.to_string(),
        "{listed:#}"
    );
    assert_eq!(letter["kind"], "failed");
    assert_eq!(letter["event_type"], "OrderPlaced");
    assert_eq!(letter["stream"], format!("Order/{}", first.aggregate_id()));
    assert_eq!(letter["handler"], HANDLER);
    assert!(letter["attempts"].as_u64().unwrap() >= 2, "{listed:#}");
    assert!(
        letter["error"]
            .as_str()
            .unwrap()
            .contains("the mail server is down"),
        "{listed:#}"
    );
    let text = eventsource(&fixture.with(&["dead-letters", "list"]))
        .expect(0)
        .stdout;
    assert!(text.starts_with("ID "), "{text}");
    assert!(text.contains(&first.event_id.to_string()), "{text}");
    // Listing left it in place.
    assert_eq!(dead_count(&fixture).await, 1);

    // Mended, moved back: the handler handles that very event.
    mailer.broken.store(false, Ordering::SeqCst);
    let requeued = eventsource(&fixture.with(&["dead-letters", "requeue", "--json"]))
        .expect(0)
        .json();
    assert_eq!(requeued["requeued"], 1, "{requeued:#}");
    until("the requeued event is handled", || async {
        mailer.handled(first.event_id)
    })
    .await;
    assert_eq!(dead_count(&fixture).await, 0);

    // Another one, purged: gone, and never handled.
    mailer.broken.store(true, Ordering::SeqCst);
    let second = stored_event().await;
    fixture
        .bus
        .publish(std::slice::from_ref(&second))
        .await
        .unwrap();
    until("the second event is dead-lettered", || async {
        dead_count(&fixture).await == 1
    })
    .await;
    let purged = eventsource(&fixture.with(&["dead-letters", "purge"]))
        .expect(0)
        .stdout;
    assert!(purged.contains("1 dead letter(s) deleted"), "{purged}");
    assert_eq!(dead_count(&fixture).await, 0);
    let listed = eventsource(&fixture.with(&["dead-letters", "list", "--json"]))
        .expect(0)
        .json();
    assert_eq!(listed, json!([]));
    assert!(!mailer.handled(second.event_id));

    // A group the broker does not know: not found, and not created.
    let mut unknown = fixture.with(&["dead-letters", "list"]);
    let group = unknown.iter().position(|arg| arg == "--group").unwrap() + 1;
    unknown[group] = format!("nosuch-{}", Uuid::now_v7().simple());
    let said = eventsource(&unknown).expect(3).stderr;
    assert!(said.contains("no consumer group"), "{said}");
    let missing = eventsource(&unknown).expect(3);
    assert!(missing.stdout.is_empty());

    // The console refuses the same typo when it starts, as the command does (it declared
    // the typo's dead-letter queue on RabbitMQ and showed "0 dead letters"), and creates
    // nothing: the command still finds no such group afterwards.
    let file = std::env::temp_dir().join(format!("es-cli-console-{}.db", Uuid::now_v7().simple()));
    // An empty file is an empty SQLite database (the command makes none of a typo).
    std::fs::File::create(&file).unwrap();
    let store = format!("sqlite:{}", file.display());
    eventsource(&["--store", &store, "migrate"]).expect(0);
    let mut console = ["--store", &store, "console", "--listen", "127.0.0.1:0"]
        .map(str::to_owned)
        .to_vec();
    console.extend(unknown[2..].iter().cloned());
    let said = exits_within(&console, Duration::from_secs(30))
        .expect(3)
        .stderr;
    assert!(said.contains("no consumer group"), "{said}");
    eventsource(&unknown).expect(3);
    for leftover in ["", "-wal", "-shm"] {
        let mut path = file.clone().into_os_string();
        path.push(leftover);
        let _ = std::fs::remove_file(path);
    }

    fixture.stop().await;
}

#[cfg(test)]
mod rabbitmq {
    use super::*;
    use eventsource_runtime::rabbitmq::RabbitMqBus;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dead_letters_are_listed_requeued_and_purged_on_rabbitmq() {
        let test = "dead_letters_are_listed_requeued_and_purged_on_rabbitmq";
        let Some(url) = server(test, "EVENTSOURCE_AMQP_URL", "EVENTSOURCE_REQUIRE_RABBITMQ") else {
            return;
        };
        let exchange = format!("es-cli-{}", Uuid::now_v7().simple());
        let bus = RabbitMqBus::new(&url).unwrap().with_exchange(&exchange);
        let group = bus
            .consumer_group("mail")
            .retry_delays([Duration::from_millis(50)]);
        let mailer = Arc::new(Mailer::default());
        group.subscribe_fn(HANDLER, mailer.handle());
        group.declare().await.unwrap();
        let running = group.clone();
        let fixture = Fixture::start(
            &url,
            &["--prefix", &exchange],
            Arc::new(bus),
            Box::new(group.dead_letters()),
            move |stopped| async move {
                running
                    .run(async move {
                        let _ = stopped.await;
                    })
                    .await
            },
        );
        list_requeue_purge(fixture, mailer).await;
    }
}

#[cfg(test)]
mod kafka {
    use super::*;
    use eventsource_runtime::kafka::KafkaBus;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dead_letters_are_listed_requeued_and_purged_on_kafka() {
        let test = "dead_letters_are_listed_requeued_and_purged_on_kafka";
        let Some(brokers) = server(
            test,
            "EVENTSOURCE_KAFKA_BROKERS",
            "EVENTSOURCE_REQUIRE_KAFKA",
        ) else {
            return;
        };
        let url = if brokers.starts_with("kafka://") {
            brokers
        } else {
            format!("kafka://{brokers}")
        };
        let prefix = format!("es-cli-{}", Uuid::now_v7().simple());
        let bus = KafkaBus::new(&url).unwrap().with_topic_prefix(&prefix);
        let group = bus
            .consumer_group("mail")
            .bind("Order.*")
            .retry_delays([Duration::from_millis(50)]);
        let mailer = Arc::new(Mailer::default());
        group.subscribe_fn(HANDLER, mailer.handle());
        bus.declare(["Order"]).await.unwrap();
        group.declare().await.unwrap();
        let running = group.clone();
        let fixture = Fixture::start(
            &url,
            &["--prefix", &prefix],
            Arc::new(bus),
            Box::new(group.dead_letters()),
            move |stopped| async move {
                running
                    .run(async move {
                        let _ = stopped.await;
                    })
                    .await
            },
        );
        list_requeue_purge(fixture, mailer).await;
    }
}

#[cfg(test)]
mod nats {
    use super::*;
    use eventsource_runtime::nats::NatsBus;
    use eventsource_runtime::nats::async_nats::jetstream;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dead_letters_are_listed_requeued_and_purged_on_nats() {
        let test = "dead_letters_are_listed_requeued_and_purged_on_nats";
        let Some(url) = server(test, "EVENTSOURCE_NATS_URL", "EVENTSOURCE_REQUIRE_NATS") else {
            return;
        };
        let id = Uuid::now_v7().simple().to_string();
        let (stream, prefix) = (format!("ES_CLI_{id}"), format!("es-cli-{id}"));
        let bus = NatsBus::new(&url)
            .unwrap()
            .with_stream(&stream)
            .with_subject_prefix(&prefix);
        let group = bus
            .consumer_group("mail")
            .retry_delays([Duration::from_millis(50)]);
        let mailer = Arc::new(Mailer::default());
        group.subscribe_fn(HANDLER, mailer.handle());
        group.declare().await.unwrap();
        let running = group.clone();
        let fixture = Fixture::start(
            &url,
            &["--prefix", &prefix, "--stream", &stream],
            Arc::new(bus),
            Box::new(group.dead_letters()),
            move |stopped| async move {
                running
                    .run(async move {
                        let _ = stopped.await;
                    })
                    .await
            },
        );
        list_requeue_purge(fixture, mailer).await;

        let client = eventsource_runtime::nats::async_nats::connect(&url)
            .await
            .unwrap();
        let js = jetstream::new(client);
        for suffix in ["", "_RETRY", "_DEAD"] {
            let _ = js.delete_stream(format!("{stream}{suffix}")).await;
        }
    }
}

/// Bad input needs no server: an unknown scheme is usage (2), an unreachable broker a
/// failure (1), and neither says the password.
#[test]
fn bad_broker_urls_are_told_apart_without_showing_the_password() {
    let unknown = eventsource(&[
        "dead-letters",
        "list",
        "--broker",
        "redis://ops:hunter2hunter@127.0.0.1:6379",
        "--group",
        "mail",
    ])
    .expect(2);
    assert!(
        unknown.stderr.contains("unknown broker URL `redis:`"),
        "{}",
        unknown.stderr
    );
    assert!(!unknown.stderr.contains("hunter2hunter"));

    // Port 1: nothing listens there.
    let unreachable = eventsource(&[
        "dead-letters",
        "purge",
        "--broker",
        "amqp://ops:hunter2hunter@127.0.0.1:1/%2f",
        "--group",
        "mail",
    ])
    .expect(1);
    assert!(
        unreachable
            .stderr
            .contains("amqp://ops:***@127.0.0.1:1/%2f"),
        "{}",
        unreachable.stderr
    );
    assert!(!unreachable.stderr.contains("hunter2hunter"));

    // A broker that is down is said at once, naming where, on each broker (Kafka took 10 s
    // and said "BrokerTransportFailure", naming nothing).
    for url in [
        "amqp://guest:guest@127.0.0.1:1/%2f",
        "kafka://127.0.0.1:1",
        "nats://127.0.0.1:1",
    ] {
        let started = std::time::Instant::now();
        let down =
            eventsource(&["dead-letters", "list", "--broker", url, "--group", "mail"]).expect(1);
        let took = started.elapsed();
        assert!(
            down.stderr.contains("127.0.0.1:1") && down.stderr.contains("refused"),
            "{url}: {}",
            down.stderr
        );
        assert!(took < Duration::from_secs(5), "{url}: {took:?}");
    }

    let kafka_secret = eventsource(&[
        "dead-letters",
        "list",
        "--broker",
        "kafka://?sasl.password=hunter2hunter",
        "--group",
        "mail",
    ])
    .expect(2);
    assert!(
        !kafka_secret.stderr.contains("hunter2hunter"),
        "{}",
        kafka_secret.stderr
    );

    let no_group = eventsource(&["dead-letters", "list", "--broker", "nats://127.0.0.1:1"]);
    assert_eq!(no_group.code, 2, "clap's usage error: {}", no_group.stderr);
}
