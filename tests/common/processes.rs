//! Across processes, for every broker: the `distributed` example as a producer process and
//! a consumer process, each exporting its spans over OTLP to a collector in the test.
//!
//! - the producer's command and the consumer's handlers are one trace;
//! - a consumer killed (SIGKILL) in the middle of a handler: the message comes back to the
//!   next consumer (as a redelivery, a new root linked to the producer's span, where the
//!   broker can tell), and the idempotent handler completes once;
//! - a producer that dies between the save and the publish: its store is the outbox, the
//!   relay publishes everything after a restart.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use eventsource_runtime::telemetry::attributes as attr;
use serde_json::Value as Json;

use super::otlp::{
    AttrValue, KIND_CONSUMER, KIND_PRODUCER, Span, decode, example_binary, example_command, tree,
};
use super::otlp_collector::{self, collector};

/// A broker the example can use, and how a test finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    RabbitMq,
    Kafka,
    Nats,
}

impl BrokerKind {
    /// The `--broker` URL, or `None` (with a visible message) when there is none and none is
    /// required.
    fn url(self, test: &str) -> Option<String> {
        let url = self.server().address(test)?;
        Some(match self {
            Self::RabbitMq | Self::Nats => url,
            Self::Kafka => format!("kafka://{}", url.trim_start_matches("kafka://")),
        })
    }

    /// The server this kind of broker is.
    pub fn server(self) -> crate::servers::Server {
        match self {
            Self::RabbitMq => crate::servers::Server::RabbitMq,
            Self::Kafka => crate::servers::Server::Kafka,
            Self::Nats => crate::servers::Server::Nats,
        }
    }
}

/// One test's setup: the example, a collector, a broker, an exchange (or topic prefix) of
/// its own.
pub struct Setup {
    binary: PathBuf,
    endpoint: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<otlp_collector::Request>>>,
    pub kind: BrokerKind,
    pub broker: String,
    pub exchange: String,
}

impl Setup {
    pub fn new(test: &str, kind: BrokerKind) -> Option<Self> {
        let broker = kind.url(test)?;
        let (endpoint, requests) = collector();
        Some(Self {
            binary: example_binary("distributed", &["rabbitmq", "kafka", "nats"]),
            endpoint,
            requests,
            kind,
            broker,
            exchange: format!("es-test-{test}-{}", std::process::id()),
        })
    }

    pub fn command(&self, role: &str, service: &str, extra: &[&str]) -> Command {
        let mut command = example_command(&self.binary, &self.endpoint);
        command
            .env("OTEL_SERVICE_NAME", service)
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .args([
                "--role",
                role,
                "--broker",
                &self.broker,
                "--prefix",
                &self.exchange,
            ])
            .args(extra);
        command
    }

    /// Runs a producer to completion.
    pub fn produce(&self, extra: &[&str]) -> String {
        let output = self
            .command("producer", "orders-producer", extra)
            .output()
            .expect("the producer runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "the producer failed\nstdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// Starts a consumer and waits until it consumes.
    pub fn consumer(&self, service: &str, extra: &[&str]) -> Consumer {
        let mut child = self
            .command("consumer", service, extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the consumer starts");
        let (send, lines) = channel();
        let stdout = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        let mut consumer = Consumer {
            child,
            lines,
            seen: Vec::new(),
        };
        consumer.wait_for(|seen| seen.iter().any(|l| l == "consuming"), "consuming");
        consumer
    }

    /// The spans the collector received.
    pub fn spans(&self) -> Vec<Span> {
        let bodies: Vec<Json> = self
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.ends_with("/v1/traces"))
            .map(|r| serde_json::from_slice(&r.body).expect("OTLP JSON"))
            .collect();
        decode(&bodies)
    }

    /// Deletes the test's queues and exchange (RabbitMQ; Kafka topics stay, under a prefix
    /// of their own).
    pub fn clean(&self) {
        match self.kind {
            BrokerKind::RabbitMq => {}
            BrokerKind::Kafka => return,
            BrokerKind::Nats => return self.clean_nats(),
        }
        use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let properties = lapin::ConnectionProperties::default();
            let connection = lapin::Connection::connect(&self.broker, properties)
                .await
                .expect("the broker");
            let channel = connection.create_channel().await.expect("a channel");
            for group in ["confirmations", "shipping", "history"] {
                for suffix in [
                    "",
                    ".dead",
                    ".retry.1000ms",
                    ".retry.5000ms",
                    ".retry.30000ms",
                ] {
                    let queue = format!("{}.{group}{suffix}", self.exchange);
                    let _ = channel
                        .queue_delete(queue.into(), QueueDeleteOptions::default())
                        .await;
                }
            }
            let exchange = self.exchange.as_str().into();
            let _ = channel
                .exchange_delete(exchange, ExchangeDeleteOptions::default())
                .await;
            let _ = connection.close(200, "clean".into()).await;
        });
    }
}

impl Setup {
    /// The stream the example made for this test's prefix.
    pub fn nats_stream(&self) -> String {
        self.exchange.to_uppercase().replace(['.', '-', ' '], "_")
    }

    /// Deletes the test's streams (the example's, its retries and dead letters).
    fn clean_nats(&self) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let client = eventsource_runtime::nats::async_nats::connect(&self.broker)
                .await
                .expect("the server");
            let jetstream = eventsource_runtime::nats::async_nats::jetstream::new(client);
            let stream = self.nats_stream();
            for name in [
                stream.clone(),
                format!("{stream}_RETRY"),
                format!("{stream}_DEAD"),
            ] {
                let _ = jetstream.delete_stream(&name).await;
            }
        });
    }
}

/// A consumer process and what it printed.
pub struct Consumer {
    child: Child,
    pub lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Consumer {
    /// Waits (up to 60 s: a Kafka group hands a dead member's partitions on only after its
    /// session timed out) until the printed lines satisfy `done`.
    pub fn wait_for(&mut self, done: impl Fn(&[String]) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "the consumer never printed {what}; it printed {:?}",
                    self.seen
                ),
            }
        }
    }

    pub fn count(&self, prefix: &str) -> usize {
        self.seen.iter().filter(|l| l.starts_with(prefix)).count()
    }

    /// SIGTERM, then waits for a graceful exit.
    pub fn terminate(mut self) -> Vec<String> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().expect("the consumer exits");
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        assert!(
            status.success(),
            "a graceful exit: {status}, printed {:?}",
            self.seen
        );
        assert!(self.seen.iter().any(|l| l == "consumer stopped"));
        // The health report printed last: both groups, stopped as asked.
        for group in ["confirmations", "shipping"] {
            let row = self
                .seen
                .iter()
                .find(|l| l.starts_with("consumer_group ") && l.contains(group))
                .unwrap_or_else(|| panic!("no health row of {group} in {:?}", self.seen));
            let cells: Vec<&str> = row.split_whitespace().collect();
            assert_eq!(
                cells[..4],
                ["consumer_group", group, "stopped", "n/a"],
                "{row}"
            );
        }
        self.seen
    }

    /// SIGKILL: no goodbye.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (up to 10 s) until the collector holds spans for which `done` holds.
pub fn spans_until(setup: &Setup, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spans = setup.spans();
        if done(&spans) || Instant::now() > deadline {
            return spans;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn parent_of<'a>(spans: &'a [Span], span: &Span) -> Option<&'a Span> {
    spans
        .iter()
        .find(|p| p.span_id == span.parent_span_id && p.trace_id == span.trace_id)
}

/// A producer process and a consumer process: one trace per command.
pub fn a_producer_and_a_consumer_process_form_one_trace(kind: BrokerKind) {
    let Some(setup) = Setup::new("processes", kind) else {
        return;
    };
    let consumer = setup.consumer("orders-consumer", &[]);
    setup.produce(&["--orders", "2"]);
    let mut consumer = consumer;
    consumer.wait_for(
        |seen| {
            seen.iter()
                .filter(|l| l.starts_with("confirmation sent"))
                .count()
                == 2
                && seen.iter().any(|l| l.starts_with("shipping notified"))
        },
        "two confirmations and a shipping notice",
    );
    consumer.terminate();

    let spans = spans_until(&setup, |spans| {
        spans
            .iter()
            .filter(|s| s.name == attr::SPAN_BUS_HANDLE)
            .count()
            == 3
    });
    let dump = tree(&spans);
    let commands: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "command.PlaceOrder")
        .collect();
    assert_eq!(commands.len(), 2, "{dump}");
    for command in commands {
        assert_eq!(command.service, "orders-producer");
        let in_trace: Vec<&Span> = spans
            .iter()
            .filter(|s| s.trace_id == command.trace_id)
            .collect();
        let publish = in_trace
            .iter()
            .find(|s| s.name == attr::SPAN_BUS_PUBLISH)
            .unwrap_or_else(|| panic!("a publish span in the command's trace\n{dump}"));
        assert_eq!(publish.kind, KIND_PRODUCER);
        assert_eq!(publish.service, "orders-producer");
        let consume = in_trace
            .iter()
            .find(|s| s.name == attr::SPAN_BUS_CONSUME)
            .unwrap_or_else(|| panic!("a consume span in the command's trace\n{dump}"));
        assert_eq!(consume.kind, KIND_CONSUMER);
        assert_eq!(
            consume.service, "orders-consumer",
            "exported by the other process"
        );
        assert_eq!(consume.parent_span_id, publish.span_id, "{dump}");
        let handle = in_trace
            .iter()
            .find(|s| s.name == attr::SPAN_BUS_HANDLE)
            .expect("a handle span");
        assert_eq!(
            parent_of(&spans, handle).map(|p| &p.span_id),
            Some(&consume.span_id)
        );
        // The publish span hangs under the append that stored the event.
        let append = parent_of(&spans, publish).expect("the publish span's parent");
        assert_eq!(append.name, attr::SPAN_STORE_APPEND, "{dump}");
    }
    setup.clean();
}

/// A consumer killed mid-handler: the next one gets the message, as a linked redelivery,
/// and the idempotent handler runs once over both. The consumer is killed once `marked`
/// holds (at once on RabbitMQ and NATS, whose brokers count deliveries; on Kafka once the
/// record's `started` mark is committed, which takes up to the commit interval).
pub fn a_consumer_killed_mid_handler_hands_the_message_to_the_next_one_as_a_redelivery(
    kind: BrokerKind,
    marked: impl Fn(&Setup) -> bool,
) {
    let Some(setup) = Setup::new("sigkill", kind) else {
        return;
    };
    // The consumers record what their idempotent confirmation handler handled in one
    // database, as replicas of one service would.
    let dir = std::env::temp_dir().join(format!("es-sigkill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let processed = format!("sqlite:{}", dir.join("processed.db").display());
    let mut first = setup.consumer(
        "orders-consumer",
        &["--slow-ms", "60000", "--processed", &processed],
    );
    setup.produce(&["--orders", "1"]);
    // Killed after the confirmation, during the CRM update: the message is not acknowledged.
    first.wait_for(
        |seen| seen.iter().any(|l| l.starts_with("updating the crm")),
        "the CRM update",
    );
    assert_eq!(first.count("confirmation sent"), 1);
    assert_eq!(first.count("crm updated"), 0);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !marked(&setup) {
        assert!(
            Instant::now() < deadline,
            "the record in hand was never marked as started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    first.kill();

    let mut second = setup.consumer("orders-consumer-2", &["--processed", &processed]);
    second.wait_for(
        |seen| seen.iter().any(|l| l.starts_with("crm updated")),
        "the CRM update, again",
    );
    let seen = second.terminate();
    assert_eq!(
        seen.iter()
            .filter(|l| l.starts_with("confirmation sent"))
            .count(),
        0,
        "the idempotent handler ran once over both consumers: {seen:?}"
    );

    let spans = spans_until(&setup, |spans| {
        spans.iter().any(|s| {
            s.service == "orders-consumer-2"
                && s.name == attr::SPAN_BUS_HANDLE
                && s.str(attr::HANDLER_NAME) == "update-crm"
        })
    });
    let dump = tree(&spans);
    let publish = spans
        .iter()
        .find(|s| s.name == attr::SPAN_BUS_PUBLISH && s.str(attr::EVENT_TYPE) == "OrderPlaced")
        .unwrap_or_else(|| panic!("the publish span\n{dump}"));
    let redelivered = spans
        .iter()
        .find(|s| {
            s.service == "orders-consumer-2"
                && s.name == attr::SPAN_BUS_CONSUME
                && s.str(attr::EVENT_TYPE) == "OrderPlaced"
        })
        .unwrap_or_else(|| panic!("the second consumer's consume span\n{dump}"));
    assert!(redelivered.parent_span_id.is_empty(), "a new root\n{dump}");
    assert!(
        redelivered
            .links
            .iter()
            .any(|(trace, span)| *trace == publish.trace_id && *span == publish.span_id),
        "linked to the producer's span\n{dump}"
    );
    assert_eq!(
        redelivered.str(attr::DELIVERY_MODE),
        attr::DELIVERY_REDELIVERY
    );
    // Under it, the confirmation acknowledged as a duplicate, the CRM update run again.
    let handle = |name: &str| {
        spans
            .iter()
            .find(|s| {
                s.service == "orders-consumer-2"
                    && s.name == attr::SPAN_BUS_HANDLE
                    && s.str(attr::HANDLER_NAME) == name
            })
            .unwrap_or_else(|| panic!("the second consumer's {name} span\n{dump}"))
    };
    let confirmation = handle("send-confirmation");
    assert_eq!(confirmation.parent_span_id, redelivered.span_id, "{dump}");
    assert_eq!(
        confirmation.attributes.get(attr::HANDLER_DUPLICATE),
        Some(&AttrValue::Bool(true)),
        "{dump}"
    );
    let crm = handle("update-crm");
    assert_eq!(crm.parent_span_id, redelivered.span_id, "{dump}");
    assert_eq!(crm.attributes.get(attr::HANDLER_DUPLICATE), None, "{dump}");
    let _ = std::fs::remove_dir_all(&dir);
    setup.clean();
}

/// The store is the outbox: a producer that stored and never published loses nothing.
pub fn a_producer_that_dies_before_publishing_loses_nothing_the_relay_publishes_it_later(
    kind: BrokerKind,
) {
    let Some(setup) = Setup::new("outbox", kind) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("es-outbox-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = format!("sqlite:{}", dir.join("orders.db").display());
    let mut consumer = setup.consumer("orders-consumer", &[]);

    // Stored, never published: the process ended between the save and the publish.
    let stored = setup.produce(&["--orders", "3", "--store", &store, "--no-relay"]);
    assert!(stored.contains("stored 3 orders"), "{stored}");
    std::thread::sleep(Duration::from_millis(500));
    while let Ok(line) = consumer.lines.try_recv() {
        consumer.seen.push(line);
    }
    assert_eq!(
        consumer.count("confirmation sent"),
        0,
        "nothing published yet"
    );

    // The next start of the producer's relay publishes what the store holds.
    let relayed = setup.produce(&["--store", &store, "--relay-only"]);
    assert!(relayed.contains("up to position 5"), "{relayed}");
    // The relay's health report: caught up, nothing waiting, its lease released.
    let row = relayed
        .lines()
        .find(|l| l.starts_with("relay "))
        .unwrap_or_else(|| panic!("no relay health row in {relayed}"));
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        [
            "relay",
            "eventsource.relay",
            "caught_up",
            "not_held",
            "0",
            "0.000",
            "0"
        ],
        "{relayed}"
    );
    consumer.wait_for(
        |seen| {
            seen.iter()
                .filter(|l| l.starts_with("confirmation sent"))
                .count()
                == 3
                && seen
                    .iter()
                    .filter(|l| l.starts_with("shipping notified"))
                    .count()
                    == 2
        },
        "every stored event",
    );
    consumer.terminate();
    let _ = std::fs::remove_dir_all(&dir);
    setup.clean();
}
