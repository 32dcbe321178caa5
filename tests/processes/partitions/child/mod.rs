//! The children: this test binary run again, told by the environment what to be: a
//! projection runner holding a lease (`runner`), a segment worker (`worker`), a member of a
//! consumer group (`consumer`), a relay to NATS holding its lease (`relay`) or an
//! application appending in transactions of its own (`appender`).

mod appender;
#[cfg(feature = "nats")]
pub mod consumer;
#[cfg(feature = "nats")]
pub mod relay;
mod runner;
mod worker;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use eventsource_runtime::postgres::PostgresEventStore;
use eventsource_test_support::history::HistoryWriter;

pub use runner::{BATCH, CHECKPOINT_EVERY, PROJECTION};

/// What the child is: `runner` or `worker`.
pub const CHILD: &str = "EVENTSOURCE_PARTITION_CHILD";
/// The database URL the child connects to (the host side of its namespace, or loopback).
pub const URL: &str = "EVENTSOURCE_PARTITION_CHILD_URL";
/// The schema its stores and `handled` are in.
pub const SCHEMA: &str = "EVENTSOURCE_PARTITION_CHILD_SCHEMA";
/// The folder its history goes to.
pub const HISTORY: &str = "EVENTSOURCE_PARTITION_CHILD_HISTORY";
/// Its name: its history's process, its `handled` rows' runner, its `application_name`.
pub const NAME: &str = "EVENTSOURCE_PARTITION_CHILD_NAME";
/// The lease or claim timeout, in milliseconds.
pub const TIMEOUT_MS: &str = "EVENTSOURCE_PARTITION_CHILD_TIMEOUT_MS";

/// What the environment told the child, its store opened.
pub struct Told {
    schema: String,
    name: String,
    timeout: Duration,
    history: Arc<HistoryWriter>,
    store: PostgresEventStore,
}

/// The child's side, when the environment says it is one.
pub async fn run() {
    let Ok(role) = std::env::var(CHILD) else {
        return;
    };
    use tracing_subscriber::layer::SubscriberExt as _;
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false);
    #[cfg(feature = "nats")]
    let membership = Some(consumer::Membership);
    #[cfg(not(feature = "nats"))]
    let membership: Option<tracing_subscriber::layer::Identity> = None;
    let logs = tracing_subscriber::registry().with(logs).with(membership);
    let _logs = tracing::subscriber::set_default(logs);
    let var = |name| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let (url, schema, name) = (var(URL), var(SCHEMA), var(NAME));
    let timeout = Duration::from_millis(var(TIMEOUT_MS).parse().unwrap());
    let history = Arc::new(HistoryWriter::create(PathBuf::from(var(HISTORY)), &name).unwrap());
    let store = PostgresEventStore::connect(&format!("{url}?application_name={name}"))
        .await
        .unwrap()
        .with_schema(&schema)
        .unwrap();
    let told = Told {
        schema,
        name,
        timeout,
        history,
        store,
    };
    // Each role boxed: unboxed, this future would hold (and a debug build's frames copy)
    // every role's state at once, on the 2 MiB test thread.
    let role: Pin<Box<dyn Future<Output = ()>>> = match role.as_str() {
        "runner" => Box::pin(runner::run(told)),
        "worker" => Box::pin(worker::run(told)),
        "appender" => Box::pin(appender::run(told)),
        #[cfg(feature = "nats")]
        "consumer" => Box::pin(consumer::run(told)),
        #[cfg(feature = "nats")]
        "relay" => Box::pin(relay::run(told)),
        other => panic!("no child role {other}"),
    };
    role.await;
}

/// SIGTERM, received.
async fn terminated() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    terminate.recv().await;
}
