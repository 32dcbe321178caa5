//! The RabbitMQ bus over `amqps://` against a real broker that takes TLS only, verifies its
//! peers and turns away clients without a certificate (`ssl_options.verify = verify_peer`,
//! `fail_if_no_peer_cert = true`): publish -> consume through a consumer group, and each
//! way a TLS connection fails, told apart in one line naming `host:port`, never the password.
//!
//! The broker is the private node `.ci/run` starts (`setup_rabbitmq_tls`, or
//! `.ci/run --rabbitmq-tls-only`): `EVENTSOURCE_AMQPS_URL`
//! (`amqps://guest:guest@localhost:5671/%2f`, its certificate is for `localhost`) and
//! `EVENTSOURCE_AMQPS_PKI` (the directory of its `ca.pem`, `client.pem`, `client-key.pem`).
//! A RabbitMQ node takes seconds to start and a configuration file of its own, so CI starts
//! it once rather than each test. Without them each test prints `skipped: ...` and passes,
//! unless `EVENTSOURCE_REQUIRE_TLS_SERVERS=1`.

use crate::domain;
use crate::pki;
use eventsource_test_support::groups::Running;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use domain::{Order, sample_order};
use eventsource_runtime::broker::{BrokerTls, TlsFailure};
use eventsource_runtime::prelude::*;
use eventsource_runtime::rabbitmq::RabbitMqBus;
use pki::{Pki, skip};

const SECRET: &str = "s3cret-planted-4711";

/// The TLS broker CI started.
struct TlsBroker {
    /// `amqps://guest:guest@localhost:PORT/%2f`.
    url: String,
    port: u16,
    /// CI's PKI: the broker's CA and a client certificate it signed.
    ci: PathBuf,
    /// Certificates the broker does not trust.
    others: Pki,
}

impl TlsBroker {
    fn open(test: &str) -> Option<Self> {
        let (Ok(url), Ok(ci)) = (
            std::env::var("EVENTSOURCE_AMQPS_URL"),
            std::env::var("EVENTSOURCE_AMQPS_PKI"),
        ) else {
            skip(
                test,
                "EVENTSOURCE_AMQPS_URL or EVENTSOURCE_AMQPS_PKI not set",
            );
            return None;
        };
        let port = url
            .rsplit_once(':')
            .and_then(|(_, rest)| rest.split('/').next()?.parse().ok())
            .expect("EVENTSOURCE_AMQPS_URL names a port");
        Some(Self {
            url,
            port,
            ci: PathBuf::from(ci),
            others: Pki::new(&format!("rabbitmq-{test}")),
        })
    }

    /// The CA and the client certificate the broker trusts.
    fn trusted(&self) -> BrokerTls {
        BrokerTls::new()
            .with_ca_file(self.ci.join("ca.pem"))
            .with_client_certificate(self.ci.join("client.pem"), self.ci.join("client-key.pem"))
    }

    /// The URL with the password replaced by the planted secret (refused before the
    /// credentials are sent, so it must never show), and the host by `host`.
    fn url_with(&self, scheme: &str, host: &str) -> String {
        format!("{scheme}://guest:{SECRET}@{host}:{}/%2f", self.port)
    }
}

/// Connects `bus`; its error, checked as every TLS failure is
/// ([`pki::tls_failure_of`]); the [`TlsFailure`] it carries.
async fn tls_failure(bus: &RabbitMqBus, server: &str) -> TlsFailure {
    let error = tokio::time::timeout(Duration::from_secs(20), bus.declare())
        .await
        .expect("a bounded wait")
        .expect_err("refused");
    pki::tls_failure_of(&error, server, Some(SECRET), &format!("{bus:?}"))
}

#[tokio::test]
async fn events_reach_a_consumer_group_over_amqps_with_a_client_certificate() {
    let Some(broker) = TlsBroker::open("amqps_round_trip") else {
        return;
    };
    let exchange = format!("es-test-tls-{}", uuid::Uuid::now_v7().simple());
    let bus = RabbitMqBus::new(&broker.url)
        .unwrap()
        .with_exchange(&exchange)
        .with_confirm_timeout(Duration::from_secs(5))
        .with_tls(broker.trusted());
    let group = bus.consumer_group("mailer");
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    group.subscribe_fn("count", move |_event| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok::<(), eventsource_runtime::bus::HandlerError>(()) }
    });
    let running = Running::start(&group).await;
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus);
    let outcome = orders.execute(sample_order("o-1", "ada")).await.unwrap();
    let report = outcome.publish.expect("published").expect("confirmed");
    assert_eq!(report.message_ids.len(), outcome.events.len());
    for _ in 0..1000 {
        if seen.load(Ordering::SeqCst) >= outcome.events.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen.load(Ordering::SeqCst), outcome.events.len());
    running.stop().await;
    assert_eq!(group.dead_letters().count().await.unwrap(), 0);
}

#[tokio::test]
async fn a_certificate_not_signed_by_a_trusted_ca_is_named() {
    let Some(broker) = TlsBroker::open("untrusted") else {
        return;
    };
    let server = format!("localhost:{}", broker.port);
    // Another CA given: the broker's certificate is not signed by it.
    let bus = RabbitMqBus::new(&broker.url_with("amqps", "localhost"))
        .unwrap()
        .with_tls(
            BrokerTls::new()
                .with_ca_file(broker.others.path("other-ca.pem"))
                .with_client_certificate(
                    broker.ci.join("client.pem"),
                    broker.ci.join("client-key.pem"),
                ),
        );
    let failure = tls_failure(&bus, &server).await;
    assert!(
        matches!(failure, TlsFailure::UntrustedCertificate { .. }),
        "{failure}"
    );
    assert!(failure.to_string().contains("not trusted"), "{failure}");
    // No TLS settings: the system's roots do not vouch for a test CA either.
    let bus = RabbitMqBus::new(&broker.url_with("amqps", "localhost")).unwrap();
    let failure = tls_failure(&bus, &server).await;
    assert!(
        matches!(failure, TlsFailure::UntrustedCertificate { .. }),
        "{failure}"
    );
}

#[tokio::test]
async fn a_host_name_the_certificate_is_not_for_is_named() {
    let Some(broker) = TlsBroker::open("host_name") else {
        return;
    };
    // The certificate is for `localhost`, not for the address.
    let bus = RabbitMqBus::new(&broker.url_with("amqps", "127.0.0.1"))
        .unwrap()
        .with_tls(broker.trusted());
    let failure = tls_failure(&bus, &format!("127.0.0.1:{}", broker.port)).await;
    assert!(
        matches!(&failure, TlsFailure::HostNameMismatch { host, .. } if host == "127.0.0.1"),
        "{failure}"
    );
    assert!(failure.to_string().contains("`127.0.0.1`"), "{failure}");
}

#[tokio::test]
async fn a_broker_that_wants_a_client_certificate_says_so() {
    let Some(broker) = TlsBroker::open("client_certificate") else {
        return;
    };
    let server = format!("localhost:{}", broker.port);
    let url = broker.url_with("amqps", "localhost");
    // None presented.
    let bus = RabbitMqBus::new(&url)
        .unwrap()
        .with_tls(BrokerTls::new().with_ca_file(broker.ci.join("ca.pem")));
    let failure = tls_failure(&bus, &server).await;
    assert!(
        matches!(failure, TlsFailure::ClientCertificateWanted { .. }),
        "{failure}"
    );
    assert!(
        failure.to_string().contains("client certificate"),
        "{failure}"
    );
    // One the broker does not trust.
    let bus = RabbitMqBus::new(&url).unwrap().with_tls(
        BrokerTls::new()
            .with_ca_file(broker.ci.join("ca.pem"))
            .with_client_certificate(
                broker.others.path("other-client.pem"),
                broker.others.path("other-client-key.pem"),
            ),
    );
    let failure = tls_failure(&bus, &server).await;
    assert!(
        matches!(failure, TlsFailure::ClientCertificateRefused { .. }),
        "{failure}"
    );
}

#[tokio::test]
async fn a_plain_connection_to_the_tls_listener_says_to_use_amqps() {
    let Some(broker) = TlsBroker::open("plain_refused") else {
        return;
    };
    let bus = RabbitMqBus::new(&broker.url_with("amqp", "localhost")).unwrap();
    let failure = tls_failure(&bus, &format!("localhost:{}", broker.port)).await;
    assert!(
        matches!(
            failure,
            TlsFailure::PlainRefused {
                scheme: "amqps",
                ..
            }
        ),
        "{failure}"
    );
}

#[tokio::test]
async fn tls_settings_for_a_plain_url_are_refused_not_ignored() {
    // No server needed: nothing is sent.
    let bus = RabbitMqBus::new(&format!("amqp://guest:{SECRET}@localhost:1/%2f"))
        .unwrap()
        .with_tls(BrokerTls::new());
    let failure = tls_failure(&bus, "localhost:1").await;
    assert!(matches!(failure, TlsFailure::Settings(_)), "{failure}");
    assert!(failure.to_string().contains("amqps://"), "{failure}");
    // A CA file that is not there is named.
    let bus = RabbitMqBus::new(&format!("amqps://guest:{SECRET}@localhost:1/%2f"))
        .unwrap()
        .with_tls(BrokerTls::new().with_ca_file("/nonexistent/ca.pem"));
    let failure = tls_failure(&bus, "localhost:1").await;
    assert!(
        failure.to_string().contains("/nonexistent/ca.pem"),
        "{failure}"
    );
}
