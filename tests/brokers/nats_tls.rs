//! The NATS bus over TLS against a real server that requires it and verifies its clients
//! (`nats-server --tls --tlsverify`, started here on a free port with certificates made for
//! the test): publish -> consume through a consumer group, and each way a TLS connection
//! fails, told apart in one line naming `host:port`, never the password.
//!
//! Needs a `nats-server` binary: the one `EVENTSOURCE_NATS_SERVER` names, else one on the
//! `PATH` or in `/usr/sbin`; without one each test prints `skipped: ...` and passes, unless
//! `EVENTSOURCE_REQUIRE_TLS_SERVERS=1`.

use crate::domain;
use crate::pki;
use eventsource_test_support::groups::Running;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use domain::{Order, sample_order};
use eventsource_runtime::broker::{BrokerTls, TlsFailure};
use eventsource_runtime::bus::HandlerError;
use eventsource_runtime::nats::NatsBus;
use eventsource_runtime::prelude::*;
use pki::{Pki, skip};

const SECRET: &str = "s3cret-planted-4711";

/// A `nats-server` of the test's own: TLS required, client certificates verified, a user
/// with a password, JetStream on; killed (and its store removed) on drop.
struct TlsServer {
    child: std::process::Child,
    port: u16,
    store: std::path::PathBuf,
    pki: Pki,
}

impl TlsServer {
    fn start(test: &str) -> Option<Self> {
        let runs = |binary: &str| {
            std::process::Command::new(binary)
                .arg("--version")
                .output()
                .is_ok_and(|out| out.status.success())
        };
        // The binary `EVENTSOURCE_NATS_SERVER` names (`.ci/run`'s version matrix: the
        // version under test, not the one on the PATH), else the first one found.
        let binary = match std::env::var("EVENTSOURCE_NATS_SERVER") {
            Ok(named) if !named.trim().is_empty() => {
                assert!(
                    runs(&named),
                    "{test}: EVENTSOURCE_NATS_SERVER={named} does not run (`--version` failed)"
                );
                named
            }
            _ => {
                let Some(found) = [
                    "nats-server",
                    "/usr/sbin/nats-server",
                    "/usr/bin/nats-server",
                ]
                .into_iter()
                .find(|binary| runs(binary)) else {
                    skip(test, "no nats-server binary to start a TLS server with");
                    return None;
                };
                found.to_owned()
            }
        };
        let pki = Pki::new(&format!("nats-{test}"));
        // A port found free may be taken again before the server binds it (tests here
        // start servers in parallel): then this server exits and another one answers on
        // the port. So wait for this server's own "ready" line, on a new port if it exits.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let store = std::env::temp_dir().join(format!("es-nats-tls-{port}"));
            let mut child = std::process::Command::new(&binary)
                .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
                .arg(&store)
                .args(["--user", "es", "--pass", SECRET])
                .args(["--tls", "--tlsverify", "--tlscert"])
                .arg(pki.path("server.pem"))
                .arg("--tlskey")
                .arg(pki.path("server-key.pem"))
                .arg("--tlscacert")
                .arg(pki.path("ca.pem"))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .ok()?;
            let log = child.stderr.take()?;
            match ready_line(log).recv_timeout(Duration::from_secs(10)) {
                Ok(()) => {
                    return Some(Self {
                        child,
                        port,
                        store,
                        pki,
                    });
                }
                // It exited before it was ready (its port was taken): another port.
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = child.wait();
                    let _ = std::fs::remove_dir_all(&store);
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let _ = std::fs::remove_dir_all(&store);
                    break;
                }
            }
        }
        skip(test, "the TLS nats-server did not start");
        None
    }

    fn url(&self, scheme: &str, host: &str) -> String {
        format!("{scheme}://es:{SECRET}@{host}:{}", self.port)
    }

    /// The CA and the client certificate the server trusts.
    fn trusted(&self) -> BrokerTls {
        BrokerTls::new()
            .with_ca_file(self.pki.path("ca.pem"))
            .with_client_certificate(self.pki.path("client.pem"), self.pki.path("client-key.pem"))
    }
}

/// Reads a `nats-server`'s log on a thread of its own (to its end, so the server never
/// blocks on a full pipe); the receiver gets `()` at its "Server is ready" line, and is
/// disconnected without it when the log ends first (the server exited).
fn ready_line(log: std::process::ChildStderr) -> std::sync::mpsc::Receiver<()> {
    use std::io::BufRead as _;
    let (ready, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut ready = Some(ready);
        for line in std::io::BufReader::new(log).lines() {
            let Ok(line) = line else { break };
            if line.contains("Server is ready")
                && let Some(ready) = ready.take()
            {
                let _ = ready.send(());
            }
        }
    });
    receiver
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// Connects `bus`; its error, checked as every TLS failure is
/// ([`pki::tls_failure_of`]); the [`TlsFailure`] it carries.
async fn tls_failure(bus: &NatsBus, server: &str) -> TlsFailure {
    let error = tokio::time::timeout(Duration::from_secs(20), bus.declare())
        .await
        .expect("a bounded wait")
        .expect_err("refused");
    pki::tls_failure_of(&error, server, Some(SECRET), &format!("{bus:?}"))
}

#[tokio::test]
async fn events_reach_a_consumer_group_over_tls_with_a_client_certificate() {
    let Some(server) = TlsServer::start("tls_round_trip") else {
        return;
    };
    let bus = NatsBus::new(&server.url("tls", "localhost"))
        .unwrap()
        .with_stream("ES_TEST_TLS")
        .with_subject_prefix("es-test-tls")
        .with_tls(server.trusted());
    bus.declare().await.expect("declared over TLS");
    let group = bus.consumer_group("mailer");
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    group.subscribe_fn("count", move |_event| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok::<(), HandlerError>(()) }
    });
    let running = Running::start(&group).await;
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus);
    let outcome = orders.execute(sample_order("o-1", "ada")).await.unwrap();
    outcome.publish.expect("published").expect("acknowledged");
    for _ in 0..1000 {
        if seen.load(Ordering::SeqCst) >= outcome.events.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen.load(Ordering::SeqCst), outcome.events.len());
    running.stop().await;
}

#[tokio::test]
async fn a_certificate_not_signed_by_a_trusted_ca_is_named() {
    let Some(server) = TlsServer::start("untrusted") else {
        return;
    };
    let bus = NatsBus::new(&server.url("tls", "localhost"))
        .unwrap()
        .with_tls(
            BrokerTls::new()
                .with_ca_file(server.pki.path("other-ca.pem"))
                .with_client_certificate(
                    server.pki.path("client.pem"),
                    server.pki.path("client-key.pem"),
                ),
        );
    let failure = tls_failure(&bus, &format!("localhost:{}", server.port)).await;
    assert!(
        matches!(failure, TlsFailure::UntrustedCertificate { .. }),
        "{failure}"
    );
}

#[tokio::test]
async fn a_host_name_the_certificate_is_not_for_is_named() {
    let Some(server) = TlsServer::start("host_name") else {
        return;
    };
    let bus = NatsBus::new(&server.url("tls", "127.0.0.1"))
        .unwrap()
        .with_tls(server.trusted());
    let failure = tls_failure(&bus, &format!("127.0.0.1:{}", server.port)).await;
    assert!(
        matches!(&failure, TlsFailure::HostNameMismatch { host, .. } if host == "127.0.0.1"),
        "{failure}"
    );
}

#[tokio::test]
async fn a_server_that_wants_a_client_certificate_says_so() {
    let Some(server) = TlsServer::start("client_certificate") else {
        return;
    };
    let url = server.url("tls", "localhost");
    let bus = NatsBus::new(&url)
        .unwrap()
        .with_tls(BrokerTls::new().with_ca_file(server.pki.path("ca.pem")));
    let failure = tls_failure(&bus, &format!("localhost:{}", server.port)).await;
    assert!(
        matches!(failure, TlsFailure::ClientCertificateWanted { .. }),
        "{failure}"
    );
    let bus = NatsBus::new(&url).unwrap().with_tls(
        BrokerTls::new()
            .with_ca_file(server.pki.path("ca.pem"))
            .with_client_certificate(
                server.pki.path("other-client.pem"),
                server.pki.path("other-client-key.pem"),
            ),
    );
    let failure = tls_failure(&bus, &format!("localhost:{}", server.port)).await;
    assert!(
        matches!(failure, TlsFailure::ClientCertificateRefused { .. }),
        "{failure}"
    );
}

#[tokio::test]
async fn a_plain_url_to_a_server_that_requires_tls_is_upgraded_or_refused_clearly() {
    let Some(server) = TlsServer::start("plain") else {
        return;
    };
    // NATS announces TLS in its first line and the client upgrades: `nats://` with the
    // bus's TLS settings works as `tls://` does.
    let bus = NatsBus::new(&server.url("nats", "localhost"))
        .unwrap()
        .with_stream("ES_TEST_TLS_PLAIN")
        .with_subject_prefix("es-test-tls-plain")
        .with_tls(server.trusted());
    bus.declare().await.expect("upgraded to TLS");
    // Without them: the system's roots, which do not vouch for the test CA.
    let bus = NatsBus::new(&server.url("nats", "localhost")).unwrap();
    let failure = tls_failure(&bus, &format!("localhost:{}", server.port)).await;
    assert!(
        matches!(failure, TlsFailure::UntrustedCertificate { .. }),
        "{failure}"
    );
}
