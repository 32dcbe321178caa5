//! Each way a TLS or SASL_SSL connection to Kafka fails, against the real listeners: a wrong
//! password, a CA that did not sign the broker's certificate, a host name the certificate
//! is not for. Each ends every operation that connects (`declare`, a publish, a group's
//! `declare`, the dead-letter tools) within seconds, well before the delivery timeout, in
//! one line naming `host:port` and the cause; the password shows nowhere, and the bus's
//! `Debug` shows `***` for it.

use super::listeners::{KafkaTls, Listener, SECRET, sasl};
use crate::envelopes::order_placed;
use crate::errors;
use crate::pki;

use std::time::{Duration, Instant};

use eventsource_runtime::broker::{BrokerTls, TlsFailure};
use eventsource_runtime::bus::{BusError, EventBus as _, UnavailableReason};
use eventsource_runtime::kafka::KafkaBus;

/// The bound on a failure: the delivery timeout is 10 s, a failure that names its cause
/// must come long before it.
const AT_ONCE: Duration = Duration::from_secs(5);

/// What connects, in the order tried.
const OPERATIONS: [&str; 4] = ["declare", "publish", "a group's declare", "dead letters"];

/// Runs each of [`OPERATIONS`] on `bus` (default delivery timeout, 10 s); each error, after
/// checking that it came within [`AT_ONCE`], in one line naming `server`, and that none of
/// `secrets` shows in it (`Display` and `Debug`) or in the bus's `Debug`.
async fn each_operation_fails(
    bus: &KafkaBus,
    server: &str,
    secrets: &[&str],
) -> Vec<(&'static str, BusError)> {
    let group = bus.consumer_group("mailer").bind("Order.*");
    let mut failed = Vec::new();
    for operation in OPERATIONS {
        let started = Instant::now();
        let attempt = async {
            match operation {
                "declare" => bus.declare(["Order"]).await,
                "publish" => bus.publish(&[order_placed("o-1")]).await.map(|_| ()),
                "a group's declare" => group.declare().await,
                _ => group.dead_letters().count().await.map(|_| ()),
            }
        };
        let error = tokio::time::timeout(Duration::from_secs(30), attempt)
            .await
            .expect("a bounded wait")
            .expect_err("refused");
        let took = started.elapsed();
        let said = errors::chain(&error);
        eprintln!("{operation}: failed after {took:?}: {said}");
        assert!(took < AT_ONCE, "{operation}: took {took:?}: {said}");
        assert!(!said.contains('\n'), "{operation}: one line: {said}");
        assert!(
            said.contains(&format!(" at {server}: ")),
            "{operation}: {said}"
        );
        for shown in [said.clone(), format!("{error:?}"), format!("{bus:?}")] {
            for secret in secrets {
                assert!(!shown.contains(secret), "{operation}: {shown}");
            }
        }
        failed.push((operation, error));
    }
    failed
}

#[tokio::test]
async fn a_wrong_password_is_named_at_once_and_never_shown() {
    let Some(kafka) = KafkaTls::open("wrong_password") else {
        return;
    };
    let server = kafka.server(Listener::SaslSsl).to_owned();
    let bus = sasl(
        KafkaBus::new(&format!("kafka://{server}"))
            .unwrap()
            .with_topic_prefix("es-tls-wrong-password")
            .with_tls(BrokerTls::new().with_ca_file(&kafka.ca)),
        &kafka.user,
        SECRET,
    );
    let shown = format!("{bus:?}");
    assert!(shown.contains(r#""sasl.password": "***""#), "{shown}");
    assert!(
        shown.contains(r#""sasl.username": "eventsource""#),
        "{shown}"
    );
    for (operation, error) in each_operation_fails(&bus, &server, &[SECRET, &kafka.password]).await
    {
        let said = errors::chain(&error);
        assert_eq!(
            error.unavailable_reason(),
            Some(UnavailableReason::AuthenticationFailed),
            "{operation}: {said}"
        );
        assert!(
            said.starts_with(&format!(
                "event bus unavailable: authentication refused at {server}: "
            )),
            "{operation}: {said}"
        );
        assert!(said.contains("SCRAM-SHA-512"), "{operation}: {said}");
        assert!(said.contains("invalid credentials"), "{operation}: {said}");
    }
}

#[tokio::test]
async fn a_certificate_not_signed_by_the_ca_given_is_named_at_once() {
    let Some(kafka) = KafkaTls::open("unknown_ca") else {
        return;
    };
    let untrusting = BrokerTls::new().with_ca_file(&kafka.other_ca);
    let tls = KafkaBus::new(&format!("kafka://{}", kafka.server(Listener::Tls)))
        .unwrap()
        .with_topic_prefix("es-tls-unknown-ca")
        .with_tls(untrusting.clone());
    // Over SASL_SSL too: the handshake fails before the password is sent, and it never shows.
    let sasl_ssl = sasl(
        KafkaBus::new(&format!("kafka://{}", kafka.server(Listener::SaslSsl)))
            .unwrap()
            .with_topic_prefix("es-tls-unknown-ca")
            .with_tls(untrusting),
        &kafka.user,
        SECRET,
    );
    // No CA given: OpenSSL's default roots, which do not vouch for the test CA either.
    let system_roots = KafkaBus::new(&format!("kafka://{}", kafka.server(Listener::Tls)))
        .unwrap()
        .with_topic_prefix("es-tls-unknown-ca")
        .with_tls(BrokerTls::new());
    for (bus, listener) in [
        (tls, Listener::Tls),
        (sasl_ssl, Listener::SaslSsl),
        (system_roots, Listener::Tls),
    ] {
        let server = kafka.server(listener);
        for (operation, error) in each_operation_fails(&bus, server, &[SECRET]).await {
            let failure = pki::tls_failure_of(&error, server, Some(SECRET), &format!("{bus:?}"));
            assert!(
                matches!(failure, TlsFailure::UntrustedCertificate { .. }),
                "{operation}: {failure:?}"
            );
            assert!(failure.to_string().contains("not trusted"), "{failure}");
        }
    }
}

#[tokio::test]
async fn a_host_name_the_certificate_is_not_for_is_named_at_once() {
    let Some(kafka) = KafkaTls::open("host_name") else {
        return;
    };
    // The certificate is for `localhost`, not for the address.
    let port = kafka.server(Listener::Tls).rsplit_once(':').unwrap().1;
    let server = format!("127.0.0.1:{port}");
    let bus = KafkaBus::new(&format!("kafka://{server}"))
        .unwrap()
        .with_topic_prefix("es-tls-host-name")
        .with_tls(BrokerTls::new().with_ca_file(&kafka.ca));
    for (operation, error) in each_operation_fails(&bus, &server, &[]).await {
        let failure = pki::tls_failure_of(&error, &server, None, &format!("{bus:?}"));
        assert!(
            matches!(&failure, TlsFailure::HostNameMismatch { host, .. } if host == "127.0.0.1"),
            "{operation}: {failure:?}"
        );
        assert!(failure.to_string().contains("`127.0.0.1`"), "{failure}");
    }
}
