//! OTLP over HTTPS: `telemetry::init()` in child processes (this same binary, run with
//! `--exact child` and `TLS_CHILD` set) exporting to an HTTPS collector run here, with a
//! throwaway CA, server and client certificates made for the test.

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

const CHILD: &str = "TLS_CHILD";

// ---- the child side -----------------------------------------------------------------------

#[test]
fn child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let guard = eventsource_runtime::telemetry::init();
    tracing::info_span!("over_tls").in_scope(|| tracing::info_span!("inner").in_scope(|| {}));
    // A metric export at shutdown, when the parent turns metrics on.
    opentelemetry::global::meter("child")
        .u64_counter("child.work")
        .build()
        .add(1, &[]);
    drop(guard);
}

// ---- the certificates ---------------------------------------------------------------------

/// A CA, a server certificate for `localhost` and a client certificate it signed, written as
/// PEM files in a directory of their own.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("eventsource-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf = |names: Vec<String>, file: &str| {
            let key = KeyPair::generate().unwrap();
            let certificate = CertificateParams::new(names)
                .unwrap()
                .signed_by(&key, &ca)
                .unwrap();
            std::fs::write(dir.join(format!("{file}.pem")), certificate.pem()).unwrap();
            std::fs::write(dir.join(format!("{file}-key.pem")), key.serialize_pem()).unwrap();
        };
        leaf(vec!["localhost".to_owned()], "server");
        leaf(vec!["client".to_owned()], "client");
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        // Another CA, which signed nothing here.
        let other = CertifiedIssuer::self_signed(
            {
                let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
                params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                params
            },
            KeyPair::generate().unwrap(),
        )
        .unwrap();
        std::fs::write(dir.join("other-ca.pem"), other.pem()).unwrap();
        Self { dir }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---- the collector ------------------------------------------------------------------------

/// What the HTTPS collector saw: the paths of the requests it answered, and the handshakes
/// that failed.
#[derive(Debug, Default)]
struct Seen {
    paths: Vec<String>,
    failed_handshakes: usize,
}

/// An OTLP/HTTP collector over TLS on a free loopback port, with the server certificate of
/// `pki`; with `require_client_certificate`, only clients with a certificate of its CA are
/// let in. Returns its endpoint (`https://localhost:PORT`).
fn https_collector(pki: &Pki, require_client_certificate: bool) -> (String, Arc<Mutex<Seen>>) {
    tls_collector(pki, require_client_certificate, false)
}

/// [`https_collector`], or with `grpc` a server that offers HTTP/2 and records `PREFACE` when
/// the client's HTTP/2 preface arrives through the TLS connection (gRPC's first bytes).
fn tls_collector(
    pki: &Pki,
    require_client_certificate: bool,
    grpc: bool,
) -> (String, Arc<Mutex<Seen>>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let read_pem = |file: &str| std::fs::read(pki.dir.join(file)).unwrap();
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read_pem("server.pem"))
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(&read_pem("server-key.pem")).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if require_client_certificate {
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(&read_pem("ca.pem")) {
            roots.add(ca.unwrap()).unwrap();
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_single_cert(chain, key).unwrap();
    if grpc {
        config.alpn_protocols = vec![b"h2".to_vec()];
    }
    let config = Arc::new(config);

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!(
        "https://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    let seen = Arc::new(Mutex::new(Seen::default()));
    let recorded = Arc::clone(&seen);
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = Arc::clone(&config);
            let recorded = Arc::clone(&recorded);
            std::thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                let connection = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(connection, tcp);
                while tls.conn.is_handshaking() {
                    if tls.conn.complete_io(&mut tls.sock).is_err() {
                        recorded.lock().unwrap().failed_handshakes += 1;
                        return;
                    }
                }
                if grpc {
                    let mut preface = [0_u8; 24];
                    if tls.read_exact(&mut preface).is_ok()
                        && &preface == b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                    {
                        recorded.lock().unwrap().paths.push("PREFACE".to_owned());
                    }
                    return;
                }
                serve(tls, &recorded);
            });
        }
    });
    (endpoint, seen)
}

/// HTTP/1.1 with keep-alive: records each request's path, answers 200 with an empty message.
fn serve(stream: impl std::io::Read + std::io::Write, seen: &Mutex<Seen>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or_default();
        seen.lock().unwrap().paths.push(path.to_owned());
        let writer = reader.get_mut();
        let _ = writer.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
        );
        let _ = writer.flush();
    }
}

// ---- the parent side ----------------------------------------------------------------------

/// Runs the child exporting spans (metrics off) to `endpoint` over http/protobuf with `env`.
fn run_child(endpoint: &str, env: &[(&str, String)]) -> Output {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(["--exact", "child", "--nocapture", "--test-threads=1"]);
    for (key, _) in std::env::vars() {
        if key.starts_with("OTEL_")
            || key.starts_with("EVENTSOURCE_")
            || key == "RUST_LOG"
            || key.to_ascii_uppercase().ends_with("_PROXY")
        {
            command.env_remove(key);
        }
    }
    command
        .env(CHILD, "1")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env("OTEL_METRICS_EXPORTER", "none")
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "5000");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "the child failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn warnings(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.contains("WARN")).collect()
}

#[test]
fn spans_reach_an_https_collector_trusted_through_a_custom_ca() {
    let pki = Pki::new("ca");
    let (endpoint, seen) = https_collector(&pki, false);
    // The per-signal variable, for spans.
    let output = run_child(
        &endpoint,
        &[("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", pki.path("ca.pem"))],
    );
    let text = stderr(&output);
    assert!(warnings(&text).is_empty(), "{text}");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.paths, ["/v1/traces"], "{text}");
    assert_eq!(seen.failed_handshakes, 0);
}

#[test]
fn a_collector_whose_certificate_is_not_trusted_is_a_tls_warning_and_nothing_sent() {
    let pki = Pki::new("untrusted");
    let (endpoint, seen) = https_collector(&pki, false);
    // The generic variable, naming a CA that did not sign the collector's certificate.
    let output = run_child(
        &endpoint,
        &[("OTEL_EXPORTER_OTLP_CERTIFICATE", pki.path("other-ca.pem"))],
    );
    let text = stderr(&output);
    let failed: Vec<_> = warnings(&text)
        .into_iter()
        .filter(|l| l.contains("OTLP export of spans"))
        .collect();
    assert_eq!(failed.len(), 1, "{text}");
    assert!(
        failed[0].contains(&format!("{endpoint}/v1/traces (http/protobuf) failed"))
            && failed[0].to_ascii_lowercase().contains("certificate"),
        "{text}"
    );
    assert!(text.contains("2 of 2 span(s) not sent"), "{text}");
    let seen = seen.lock().unwrap();
    assert!(seen.paths.is_empty());
    assert!(seen.failed_handshakes >= 1);
}

#[test]
fn mutual_tls_sends_the_client_certificate() {
    let pki = Pki::new("mtls");
    let (endpoint, seen) = https_collector(&pki, true);
    let output = run_child(
        &endpoint,
        &[
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", pki.path("ca.pem")),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                pki.path("client.pem"),
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
                pki.path("client-key.pem"),
            ),
        ],
    );
    let text = stderr(&output);
    assert!(warnings(&text).is_empty(), "{text}");
    assert_eq!(seen.lock().unwrap().paths, ["/v1/traces"], "{text}");

    // The same collector turns a client without a certificate away.
    let output = run_child(
        &endpoint,
        &[("OTEL_EXPORTER_OTLP_CERTIFICATE", pki.path("ca.pem"))],
    );
    let text = stderr(&output);
    assert!(text.contains("OTLP export of spans"), "{text}");
    assert!(text.contains("2 of 2 span(s) not sent"), "{text}");
    assert_eq!(seen.lock().unwrap().paths.len(), 1, "{text}");
}

/// What a child that a collector requiring client certificates turned away printed: exactly
/// one WARN line about the refused handshake, naming the collector's endpoint and the client
/// certificate variables, with the transport's own words (a broken pipe, an alert) at most
/// once and never as the only explanation. Returns the warning lines.
fn assert_one_named_refusal<'a>(text: &'a str, endpoint: &str) -> Vec<&'a str> {
    let lines = warnings(text);
    let refusals: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("TLS handshake"))
        .collect();
    assert_eq!(refusals.len(), 1, "{text}");
    let refusal = refusals[0];
    assert!(refusal.contains(endpoint), "{text}");
    assert!(
        refusal.contains("wants a client certificate")
            && refusal.contains("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE")
            && refusal.contains("OTEL_EXPORTER_OTLP_CLIENT_KEY"),
        "{text}"
    );
    // The raw chain is shown once (in the refusal line), not repeated by every line.
    for noise in [
        "Broken pipe",
        "broken pipe",
        "os error",
        "CertificateRequired",
    ] {
        assert!(
            text.matches(noise).count() <= 1,
            "{noise} repeated:\n{text}"
        );
    }
    // Spans, metrics and the shutdown line: the refusal and one shutdown line, which refers
    // to the same cause.
    assert_eq!(lines.len(), 2, "{text}");
    let shutdown = lines
        .iter()
        .find(|l| l.contains("telemetry shut down"))
        .unwrap_or_else(|| panic!("no shutdown line:\n{text}"));
    assert!(
        shutdown.contains("client certificate") && !shutdown.contains("os error"),
        "{text}"
    );
    lines
}

#[test]
fn a_collector_that_wants_a_client_certificate_is_one_warning_naming_the_variables() {
    let pki = Pki::new("mtls-refused");
    let (endpoint, seen) = https_collector(&pki, true);
    let output = run_child(
        &endpoint,
        &[
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", pki.path("ca.pem")),
            ("OTEL_METRICS_EXPORTER", "otlp".to_owned()),
        ],
    );
    let text = stderr(&output);
    eprintln!("child stderr:\n{text}");
    assert_one_named_refusal(&text, &endpoint);
    let seen = seen.lock().unwrap();
    assert!(seen.paths.is_empty(), "{text}");
    assert!(seen.failed_handshakes >= 1, "{text}");
}

#[test]
fn a_client_certificate_without_its_key_disables_telemetry_in_one_line() {
    let pki = Pki::new("nokey");
    let (endpoint, _) = https_collector(&pki, true);
    let output = run_child(
        &endpoint,
        &[(
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            pki.path("client.pem"),
        )],
    );
    let text = stderr(&output);
    let lines = warnings(&text);
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].contains(
            "telemetry disabled: OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: mutual TLS needs both"
        ) && lines[0].contains("OTEL_EXPORTER_OTLP_CLIENT_KEY"),
        "{text}"
    );
}

#[test]
fn an_unreadable_ca_file_names_its_variable_and_path() {
    let pki = Pki::new("missing");
    let (endpoint, _) = https_collector(&pki, false);
    let missing = Path::new(&pki.path("nowhere.pem")).display().to_string();
    let output = run_child(
        &endpoint,
        &[("OTEL_EXPORTER_OTLP_CERTIFICATE", missing.clone())],
    );
    let text = stderr(&output);
    assert!(
        text.contains(&format!(
            "telemetry disabled: OTEL_EXPORTER_OTLP_CERTIFICATE: cannot read {missing}"
        )),
        "{text}"
    );
}

/// gRPC over TLS: the `otlp-grpc` feature.
#[cfg(feature = "otlp-grpc")]
mod grpc {
    use super::{Pki, assert_one_named_refusal, run_child, stderr, tls_collector};

    #[test]
    fn grpc_connects_over_tls_with_a_custom_ca_and_a_client_certificate() {
        let pki = Pki::new("grpc");
        let (endpoint, seen) = tls_collector(&pki, true, true);
        let output = run_child(
            &endpoint,
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000".to_owned()),
                ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", pki.path("ca.pem")),
                (
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                    pki.path("client.pem"),
                ),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", pki.path("client-key.pem")),
            ],
        );
        let text = String::from_utf8_lossy(&output.stderr);
        let seen = seen.lock().unwrap();
        assert!(
            seen.paths.contains(&"PREFACE".to_owned()),
            "{seen:?}\n{text}"
        );
        assert_eq!(seen.failed_handshakes, 0, "{text}");
    }

    #[test]
    fn a_grpc_collector_that_wants_a_client_certificate_is_one_warning_naming_the_variables() {
        let pki = Pki::new("grpc-mtls-refused");
        let (endpoint, seen) = tls_collector(&pki, true, true);
        let output = run_child(
            &endpoint,
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000".to_owned()),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", pki.path("ca.pem")),
                ("OTEL_METRICS_EXPORTER", "otlp".to_owned()),
            ],
        );
        let text = stderr(&output);
        eprintln!("child stderr:\n{text}");
        assert_one_named_refusal(&text, &endpoint);
        let seen = seen.lock().unwrap();
        assert!(seen.paths.is_empty(), "{text}");
        assert!(seen.failed_handshakes >= 1, "{text}");
    }
}
