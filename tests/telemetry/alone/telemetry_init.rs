//! `telemetry::init()`: the global setup, in this test binary of its own (it sets the
//! process's global subscriber) and in child processes, one per environment.
//!
//! The child is this same binary, run with `--exact child` and `TELEMETRY_CHILD` naming the
//! scenario; the parent sets the child's environment (never its own) and reads what the child
//! printed, or what it sent to a tiny HTTP collector the parent runs.

use eventsource_test_support::otlp_collector;

use std::io::Write;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use otlp_collector::{Request, collector};

use eventsource_runtime::telemetry::{InitError, Telemetry};
use opentelemetry::trace::TraceContextExt as _;

const CHILD: &str = "TELEMETRY_CHILD";

#[test]
fn try_init_twice_returns_the_typed_error() {
    let first = Telemetry::builder().writer(std::io::sink()).try_init();
    let guard = first.expect("the first setup succeeds");
    assert!(guard.is_active());

    let second = Telemetry::builder().writer(std::io::sink()).try_init();
    assert!(
        matches!(second, Err(InitError::SubscriberAlreadySet(_))),
        "{second:?}"
    );
    // `init` reports the same failure as one line and returns a guard that does nothing.
    let out = SharedBuf::default();
    let fallback = Telemetry::builder().writer(out.clone()).init();
    assert!(!fallback.is_active());
    let text = out.text();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("WARN") && text.contains("already set"),
        "{text}"
    );
    drop(fallback);
    drop(guard);
}

// ---- the child side -----------------------------------------------------------------------

/// Runs a scenario when started by a parent test; does nothing otherwise.
#[test]
fn child() {
    let Ok(scenario) = std::env::var(CHILD) else {
        return;
    };
    match scenario.as_str() {
        "plain" => work_with_guard(),
        "current_thread" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async { work_with_guard() }),
        "multi_thread" => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(async { work_with_guard() }),
        "query" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(a_query_then_a_pause()),
        other => panic!("unknown scenario {other}"),
    }
}

fn work_with_guard() {
    let guard = Telemetry::builder().service_name("child-svc").init();
    println!("active={}", guard.is_active());
    tracing::info!(outside = 1_i64, "before any span");
    let span = tracing::info_span!("outer", order.id = "o-1");
    span.in_scope(|| {
        let cx = opentelemetry::Context::current();
        println!("trace_id={}", cx.span().span_context().trace_id());
        tracing::info!("inside the span");
        tracing::info_span!("inner").in_scope(|| {});
    });
    drop(span);
    let counter = opentelemetry::global::meter("child")
        .u64_counter("child.work")
        .build();
    counter.add(1, &[]);
    drop(guard);
}

/// One query (a `cqrs.query.duration` histogram), then 400 ms for periodic exports.
async fn a_query_then_a_pause() {
    let guard = Telemetry::builder().service_name("child-svc").init();
    eventsource_runtime::query::run("ChildQuery", async { Ok::<_, std::io::Error>(()) })
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    drop(guard);
}

// ---- the parent side ----------------------------------------------------------------------

fn run_child(scenario: &str, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(["--exact", "child", "--nocapture", "--test-threads=1"]);
    for (key, _) in std::env::vars() {
        if key.starts_with("OTEL_") || key == "RUST_LOG" || key == "NO_COLOR" {
            command.env_remove(key);
        }
    }
    command.env(CHILD, scenario).envs(env.iter().copied());
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "child {scenario} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout_value(output: &Output, key: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The harness prints `test child ... ` on the same line as the child's first output.
    stdout
        .split_whitespace()
        .find_map(|token| token.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in\n{stdout}"))
        .to_owned()
}

#[test]
fn by_default_traces_print_as_trees_and_log_lines_carry_the_ids() {
    for scenario in ["plain", "current_thread", "multi_thread"] {
        let output = run_child(scenario, &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let trace_id = stdout_value(&output, "trace_id");
        assert_eq!(stdout_value(&output, "active"), "true");

        // Compact by default: one line per span, no kind.
        let tree = format!("trace {trace_id}\nouter  ");
        assert!(stderr.contains(&tree), "{scenario}: no tree in\n{stderr}");
        let outer = stderr.lines().find(|l| l.starts_with("outer  ")).unwrap();
        assert!(outer.ends_with("  order.id=o-1"), "{outer}");
        assert!(stderr.contains("\n└─ inner  "), "{stderr}");
        assert!(!stderr.contains("internal"), "{stderr}");

        let inside = stderr
            .lines()
            .find(|l| l.contains("inside the span"))
            .unwrap_or_else(|| panic!("no log line in\n{stderr}"));
        assert!(
            inside.contains(" INFO ") && inside.contains(&format!("trace_id={trace_id} span_id=")),
            "{inside}"
        );
        let before = stderr
            .lines()
            .find(|l| l.contains("before any span"))
            .unwrap();
        assert!(!before.contains("trace_id="), "{before}");
        assert!(before.contains("outside=1"), "{before}");
    }
}

#[test]
fn eventsource_console_full_prints_every_attribute_and_the_kind() {
    let output = run_child("plain", &[("EVENTSOURCE_CONSOLE", "full")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("\nouter  internal  ") && stderr.contains("\n└─ inner  internal  "),
        "{stderr}"
    );
    assert!(!stderr.contains("WARN"), "{stderr}");
}

#[test]
fn traces_exporter_none_prints_no_tree_but_keeps_log_lines() {
    let output = run_child("plain", &[("OTEL_TRACES_EXPORTER", "none")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("\nouter  "), "{stderr}");
    let trace_id = stdout_value(&output, "trace_id");
    assert!(
        stderr.contains(&format!("trace_id={trace_id}")),
        "spans still have ids: {stderr}"
    );
}

#[test]
fn rust_log_filters_log_lines() {
    let output = run_child("plain", &[("RUST_LOG", "warn")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("inside the span"), "{stderr}");
}

#[test]
fn bad_values_warn_and_fall_back() {
    let output = run_child(
        "plain",
        &[
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_TRACES_EXPORTER", "zipkin"),
            ("RUST_LOG", "eventsource=loud"),
            ("OTEL_SDK_DISABLED", "maybe"),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("WARN eventsource::telemetry"))
        .collect();
    assert_eq!(warnings.len(), 4, "{stderr}");
    assert_eq!(stdout_value(&output, "active"), "true");
    // The defaults: console on, `info` lines.
    assert!(stderr.contains("\nouter  "), "{stderr}");
    assert!(stderr.contains("inside the span"), "{stderr}");
}

#[test]
fn a_malformed_endpoint_disables_telemetry_with_one_warning() {
    let output = run_child("plain", &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://[::1")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stdout_value(&output, "active"), "false");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("OTLP span exporter"), "{stderr}");
}

// ---- OTLP over HTTP, against a collector that records the requests ----------------------

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn otlp_http_protobuf_sends_spans_and_metrics() {
    let (endpoint, requests) = collector();
    for scenario in ["plain", "current_thread"] {
        requests.lock().unwrap().clear();
        let output = run_child(
            scenario,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ],
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stderr.contains("\nouter  internal"),
            "no console: {stderr}"
        );

        let requests = requests.lock().unwrap().clone();
        let traces: Vec<&Request> = requests.iter().filter(|r| r.path == "/v1/traces").collect();
        assert!(!traces.is_empty(), "{scenario}: {requests:?}\n{stderr}");
        assert!(
            traces
                .iter()
                .all(|r| r.content_type == "application/x-protobuf")
        );
        let body: Vec<u8> = traces.iter().flat_map(|r| r.body.clone()).collect();
        assert!(contains(&body, b"outer") && contains(&body, b"inner"));
        assert!(contains(&body, b"child-svc"), "the service name");
        let trace_id = stdout_value(&output, "trace_id");
        let raw: Vec<u8> = (0..16)
            .map(|i| u8::from_str_radix(&trace_id[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        assert!(contains(&body, &raw), "the trace id");

        let metrics: Vec<&Request> = requests
            .iter()
            .filter(|r| r.path == "/v1/metrics")
            .collect();
        assert!(!metrics.is_empty(), "{scenario}: {requests:?}");
        let body: Vec<u8> = metrics.iter().flat_map(|r| r.body.clone()).collect();
        assert!(contains(&body, b"child.work"), "the global meter provider");
    }
}

#[test]
#[cfg(feature = "otlp-json")]
fn otlp_http_json_and_signal_settings() {
    let (endpoint, requests) = collector();
    run_child(
        "multi_thread",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_SERVICE_NAME", "from-env"), // code (`child-svc`) wins
            ("OTEL_TRACES_EXPORTER", "otlp,console"),
        ],
    );
    let requests = requests.lock().unwrap().clone();
    assert!(
        requests.iter().all(|r| r.path == "/v1/traces"),
        "{requests:?}"
    );
    let body: String = requests
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).replace([' ', '\n'], ""))
        .collect();
    assert!(
        requests
            .iter()
            .all(|r| r.content_type == "application/json")
    );
    assert!(body.contains(r#""name":"outer""#), "{body}");
    assert!(
        body.contains("child-svc") && !body.contains("from-env"),
        "{body}"
    );
}

#[test]
fn traces_sampler_from_the_environment() {
    let (endpoint, requests) = collector();
    let output = run_child(
        "plain",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_TRACES_SAMPLER", "always_off"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ],
    );
    let requests = requests.lock().unwrap().clone();
    assert!(
        requests.iter().all(|r| !contains(&r.body, b"outer")),
        "nothing sampled: {requests:?}"
    );
    // Unsampled spans still have ids, for propagation and log lines.
    assert_ne!(stdout_value(&output, "trace_id"), "0".repeat(32));
}

// ---- OTLP over gRPC: the exporter connects (HTTP/2) from its own runtime ------------------

/// OTLP over gRPC: the `otlp-grpc` feature.
#[cfg(feature = "otlp-grpc")]
mod grpc {
    use std::io::Read as _;
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::{run_child, stdout_value};

    #[test]
    fn otlp_grpc_connects_from_any_thread() {
        for scenario in ["plain", "current_thread"] {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let endpoint = format!("http://{}", listener.local_addr().unwrap());
            let preface = Arc::new(Mutex::new(Vec::new()));
            let seen = Arc::clone(&preface);
            std::thread::spawn(move || {
                if let Ok((mut stream, _)) = listener.accept() {
                    stream
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .unwrap();
                    let mut buf = [0_u8; 24];
                    if stream.read_exact(&mut buf).is_ok() {
                        seen.lock().unwrap().extend_from_slice(&buf);
                    }
                }
            });
            let output = run_child(
                scenario,
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                    ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"),
                    ("OTEL_METRICS_EXPORTER", "none"),
                ],
            );
            assert_eq!(stdout_value(&output, "active"), "true");
            assert_eq!(
                preface.lock().unwrap().as_slice(),
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                "{scenario}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

/// A `Write` the test reads back.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedBuf {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// The metric exports of the `query` scenario under `env`, as OTLP/JSON bodies.
#[cfg(feature = "otlp-json")]
fn metric_exports(env: &[(&str, &str)]) -> Vec<String> {
    let (endpoint, requests) = collector();
    let mut all = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_TRACES_EXPORTER", "none"),
    ];
    all.extend_from_slice(env);
    let output = run_child("query", &all);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("WARN"), "{stderr}");
    let requests = requests.lock().unwrap().clone();
    requests
        .iter()
        .filter(|r| r.path == "/v1/metrics")
        .map(|r| String::from_utf8_lossy(&r.body).replace([' ', '\n'], ""))
        .collect()
}

/// The OpenTelemetry variables an operator sets for metrics: the contract's buckets and
/// cumulative temporality by default; exponential histograms, delta temporality and the
/// export interval when asked.
#[test]
#[cfg(feature = "otlp-json")]
fn the_metrics_variables_are_honoured() {
    let defaults = metric_exports(&[]);
    assert_eq!(defaults.len(), 1, "one export, at shutdown: {defaults:?}");
    let body = &defaults[0];
    assert!(
        body.contains(r#""explicitBounds":[0.00001,0.000025,0.00005,0.0001,0.00025"#)
            && body.contains(r#""aggregationTemporality":2"#),
        "the contract's buckets, cumulative: {body}"
    );

    let exponential = metric_exports(&[(
        "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
        "base2_exponential_bucket_histogram",
    )]);
    assert!(
        exponential[0].contains(r#""exponentialHistogram""#)
            && !exponential[0].contains(r#""explicitBounds""#),
        "{exponential:?}"
    );

    let delta = metric_exports(&[("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")]);
    assert!(
        delta[0].contains(r#""aggregationTemporality":1"#),
        "{delta:?}"
    );

    let often = metric_exports(&[("OTEL_METRIC_EXPORT_INTERVAL", "100")]);
    assert!(often.len() >= 3, "an export every 100 ms: {}", often.len());
}
