//! The Kafka bus over TLS (`KafkaBus::with_tls`): librdkafka's OpenSSL, the `kafka-ssl`
//! feature. Without it, TLS settings are refused in one line naming the feature; with it,
//! librdkafka takes them (`security.protocol=ssl`, `ssl.ca.location`,
//! `ssl.certificate.location`, `ssl.key.location`).
//!
//! No TLS Kafka broker runs here: tansu 0.6 takes `--cert`/`--key` but serves plain TCP
//! whatever they say (docs/brokers.md), so the handshake itself is not tested against a
//! server.

use crate::pki;

use std::time::Duration;

use eventsource_runtime::bus::BrokerTls;
use eventsource_runtime::kafka::KafkaBus;

/// A bus on a port nothing listens on, with the test PKI's CA and client certificate.
fn bus(pki: &pki::Pki) -> (KafkaBus, String) {
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
    use eventsource_runtime::bus::TlsFailure;
    let pki = pki::Pki::new("kafka-no-ssl");
    let (bus, server) = bus(&pki);
    let error = bus.declare(["Order"]).await.unwrap_err();
    let failure = pki::tls_failure_of(&error, &server, None, &format!("{bus:?}"));
    assert!(pki::chain(&error).contains("`kafka-ssl`"), "{failure}");
    assert!(matches!(failure, TlsFailure::Settings(_)), "{failure:?}");
}

#[cfg(feature = "kafka-ssl")]
#[tokio::test]
async fn with_kafka_ssl_librdkafka_takes_the_tls_settings() {
    use eventsource_runtime::bus::UnavailableReason;
    let pki = pki::Pki::new("kafka-ssl");
    let (bus, _) = bus(&pki);
    // Nothing listens: the clients are made (OpenSSL is there, the files are taken) and the
    // wait ends without a broker, not with a refusal of the settings.
    let error = bus.declare(["Order"]).await.unwrap_err();
    let said = pki::chain(&error);
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
    let said = pki::chain(&broken.declare(["Order"]).await.unwrap_err());
    assert!(
        said.contains("/nonexistent/key.pem") || said.contains("ssl.key"),
        "{said}"
    );
}

/// A TLS listener with the test PKI's server certificate (for `localhost`), accepting
/// handshakes until the test ends: its port.
#[cfg(feature = "kafka-ssl")]
fn tls_listener(pki: &pki::Pki) -> u16 {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::io::Read as _;
    use std::sync::Arc;

    let certificates: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(pki.path("server.pem"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_file(pki.path("server-key.pem")).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut socket in listener.incoming().flatten() {
            let config = Arc::clone(&config);
            std::thread::spawn(move || {
                let mut connection = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::Stream::new(&mut connection, &mut socket);
                let _ = tls.read(&mut [0; 64]);
            });
        }
    });
    port
}

/// A broker whose certificate is not signed by a CA trusted here: `declare` says so, in one
/// line with the server, instead of timing out without a word (librdkafka reports a failed
/// handshake only to its error callback).
#[cfg(feature = "kafka-ssl")]
#[tokio::test]
async fn an_untrusted_certificate_is_named() {
    use eventsource_runtime::bus::TlsFailure;
    let pki = pki::Pki::new("kafka-untrusted");
    let port = tls_listener(&pki);
    // The system's roots only: the test CA is not among them.
    let bus = KafkaBus::new(&format!("kafka://localhost:{port}"))
        .unwrap()
        .with_topic_prefix("es-test-tls")
        .with_delivery_timeout(Duration::from_secs(3))
        .with_tls(BrokerTls::new());
    let error = bus.declare(["Order"]).await.unwrap_err();
    let server = format!("localhost:{port}");
    let failure = pki::tls_failure_of(&error, &server, None, &format!("{bus:?}"));
    assert!(
        matches!(failure, TlsFailure::UntrustedCertificate { .. }),
        "{failure:?}"
    );
}
