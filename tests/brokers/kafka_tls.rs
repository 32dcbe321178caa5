//! The Kafka bus over TLS (`KafkaBus::with_tls`: librdkafka's OpenSSL, the `kafka-ssl`
//! feature) against a real Apache Kafka node: its TLS listener and its SASL_SSL
//! (SCRAM-SHA-512) listener. Over each, the relay publishes stored events, a consumer group
//! handles every one of them, and the dead-letter tools count, list, requeue and purge
//! (`round_trip`); the broker conformance suite's scenarios pass (`conformance`); and a wrong
//! password, an unknown CA and a host-name mismatch each fail `declare`, a publish, a
//! group's start and the dead-letter tools within seconds, in one line naming `host:port`
//! and the cause, never the password (`failures`).
//!
//! The broker is the Apache Kafka node `.ci/run` starts (`setup_kafka_tls`, or
//! `eval "$(.ci/run --kafka-tls-only)"`): `EVENTSOURCE_KAFKA_TLS_BROKERS`
//! (`localhost:9094`), `EVENTSOURCE_KAFKA_SASL_BROKERS` (`localhost:9095`),
//! `EVENTSOURCE_KAFKA_CA` (the CA of its certificate, which is for `localhost` only, so
//! `127.0.0.1` is a host-name mismatch), `EVENTSOURCE_KAFKA_OTHER_CA` (a CA that signed
//! nothing), `EVENTSOURCE_KAFKA_SASL_USER` and `EVENTSOURCE_KAFKA_SASL_PASSWORD`. Without
//! them each test prints `skipped: ...` and passes, unless `EVENTSOURCE_REQUIRE_TLS_SERVERS=1`
//! (CI sets it). Without `kafka-ssl`, TLS settings are refused in one line naming the
//! feature (tested here without a broker).

#[cfg(feature = "kafka-ssl")]
mod conformance;
#[cfg(feature = "kafka-ssl")]
mod failures;
#[cfg(feature = "kafka-ssl")]
mod listeners;
#[cfg(feature = "kafka-ssl")]
mod round_trip;

use crate::errors;
use crate::pki;

use std::time::Duration;

use eventsource_runtime::broker::BrokerTls;
use eventsource_runtime::kafka::KafkaBus;

/// A bus on a port nothing listens on, with the test PKI's CA and client certificate.
fn unanswered(pki: &pki::Pki) -> (KafkaBus, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bus = KafkaBus::new(&format!("kafka://localhost:{port}"))
        .unwrap()
        .with_topic_prefix("es-test-tls")
        .with_delivery_timeout(Duration::from_secs(2))
        .with_tls(
            BrokerTls::new()
                .with_ca_file(pki.path("ca.pem"))
                .with_client_certificate(pki.path("client.pem"), pki.path("client-key.pem")),
        );
    (bus, format!("localhost:{port}"))
}

#[cfg(not(feature = "kafka-ssl"))]
#[tokio::test]
async fn tls_settings_without_kafka_ssl_name_the_feature() {
    use eventsource_runtime::broker::TlsFailure;
    let pki = pki::Pki::new("kafka-no-ssl");
    let (bus, server) = unanswered(&pki);
    let error = bus.declare(["Order"]).await.unwrap_err();
    let failure = pki::tls_failure_of(&error, &server, None, &format!("{bus:?}"));
    assert!(errors::chain(&error).contains("`kafka-ssl`"), "{failure}");
    assert!(matches!(failure, TlsFailure::Settings(_)), "{failure:?}");
}

#[cfg(feature = "kafka-ssl")]
#[tokio::test]
async fn with_kafka_ssl_librdkafka_takes_the_tls_settings() {
    use eventsource_runtime::bus::UnavailableReason;
    let pki = pki::Pki::new("kafka-ssl");
    let (bus, _) = unanswered(&pki);
    // Nothing listens: the clients are made (OpenSSL is there, the files are taken) and the
    // wait ends without a broker, not with a refusal of the settings.
    let error = bus.declare(["Order"]).await.unwrap_err();
    let said = errors::chain(&error);
    assert!(!said.contains("kafka-ssl"), "{said}");
    assert_ne!(
        error.unavailable_reason(),
        Some(UnavailableReason::Tls),
        "{said}"
    );
    // A key file that is not there is librdkafka's refusal at creation, naming the path.
    let broken = KafkaBus::new("kafka://localhost:9").unwrap().with_tls(
        BrokerTls::new().with_client_certificate(pki.path("client.pem"), "/nonexistent/key.pem"),
    );
    let said = errors::chain(&broken.declare(["Order"]).await.unwrap_err());
    assert!(
        said.contains("/nonexistent/key.pem") || said.contains("ssl.key"),
        "{said}"
    );
}
