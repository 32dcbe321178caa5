//! Export failures you can see, a shutdown that cannot hold the exit, and a guard that
//! cannot be lost silently: `telemetry::init()` in child processes (this same binary, run
//! with `--exact child` and `TELEMETRY_CHILD` naming the scenario), whose stderr and
//! running time the parent reads.

use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use eventsource_runtime::telemetry;

const CHILD: &str = "TELEMETRY_CHILD";

// ---- the child side -----------------------------------------------------------------------

#[test]
fn child() {
    let Ok(scenario) = std::env::var(CHILD) else {
        return;
    };
    match scenario.as_str() {
        "work" => {
            let guard = telemetry::init();
            work();
            // Let the batch processor export once before the shutdown exports the rest.
            std::thread::sleep(Duration::from_millis(300));
            work();
            drop(guard);
        }
        "dropped_at_once" => {
            #[allow(let_underscore_drop, clippy::let_underscore_must_use)]
            let _ = telemetry::init();
            work();
        }
        "dropped_at_once_runtime_spans" => {
            #[allow(let_underscore_drop, clippy::let_underscore_must_use)]
            let _ = telemetry::init();
            traced_work();
            traced_work();
        }
        "kept_until_an_early_error" => {
            // A program that holds its guard and stops on an error at once (its database
            // cannot be reached), the guard dropped as `main` returns.
            let _telemetry = telemetry::init();
            tracing::error!("cannot reach the database");
        }
        other => panic!("unknown scenario {other}"),
    }
}

/// A runtime span (`#[traced]` starts its spans on the SDK directly, not as `tracing` spans).
#[eventsource_runtime::traced]
fn traced_work() {}

fn work() {
    tracing::info_span!("outer").in_scope(|| tracing::info_span!("inner").in_scope(|| {}));
    opentelemetry::global::meter("child")
        .u64_counter("child.work")
        .build()
        .add(1, &[]);
}

// ---- the parent side ----------------------------------------------------------------------

/// Runs `scenario` in a child with `env`, returning its output and how long it ran.
fn run_child(scenario: &str, env: &[(&str, &str)]) -> (Output, Duration) {
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
    command.env(CHILD, scenario).envs(env.iter().copied());
    let started = Instant::now();
    let output = command.output().unwrap();
    let took = started.elapsed();
    assert!(
        output.status.success(),
        "child {scenario} failed\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (output, took)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn lines_with<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(needle)).collect()
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_collector_that_is_down_is_one_warning_for_both_signals_and_a_line_at_shutdown() {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let (output, _) = run_child(
        "work",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
        ],
    );
    let text = stderr(&output);
    // Two failed span exports (the scheduled one and the shutdown's) and a failed metric
    // export, all refused by the same collector: one line. The span exporter fails first
    // (50 ms in; the metric export is the shutdown's).
    let failed = lines_with(&text, "OTLP export of");
    assert_eq!(failed.len(), 1, "{text}");
    assert!(
        failed[0].contains("WARN")
            && failed[0].contains(&format!(
                "OTLP export of spans to {endpoint}/v1/traces (http/protobuf) failed"
            ))
            && failed[0].contains("of spans or metrics"),
        "{text}"
    );
    // The cause, named, not only the exporter's "network error".
    assert!(
        failed[0].contains("failed, 2 span(s) dropped: connection refused ["),
        "{text}"
    );
    let shutdown = lines_with(&text, "telemetry shut down:");
    assert_eq!(shutdown.len(), 1, "{text}");
    assert!(
        shutdown[0].contains("4 of 4 span(s) not sent")
            && shutdown[0].contains("1 metric export(s) failed")
            && shutdown[0].contains("(last cause: connection refused; see the warning above)"),
        "{text}"
    );
    assert_eq!(lines_with(&text, "WARN").len(), 2, "{text}");
}

#[test]
fn a_collector_that_never_answers_holds_the_exit_at_most_the_shutdown_timeout() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming() {
            open.push(stream);
        }
    });
    for (setting, limit) in [(None, 2_000_u64), (Some("500"), 500)] {
        let mut env = vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_METRICS_EXPORTER", "none"),
            // The exporter's own timeout would keep it waiting 30 s.
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "30000"),
            ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
        ];
        if let Some(ms) = setting {
            env.push(("EVENTSOURCE_TELEMETRY_SHUTDOWN_TIMEOUT", ms));
        }
        let (output, took) = run_child("work", &env);
        let text = stderr(&output);
        let gave_up = lines_with(&text, "telemetry shutdown gave up");
        assert_eq!(gave_up.len(), 1, "{text}");
        assert!(
            gave_up[0].contains(&format!(
                "after {limit} ms: 4 of 4 span(s) not confirmed sent"
            )),
            "{text}"
        );
        // The child's whole run: the 300 ms pause, the limit, and the process's start.
        assert!(
            took < Duration::from_millis(limit + 1_800),
            "the child ran {took:?} with a shutdown limit of {limit} ms\n{text}"
        );
    }
}

#[test]
fn a_guard_dropped_at_once_says_so() {
    let (output, _) = run_child("dropped_at_once", &[("OTEL_TRACES_EXPORTER", "none")]);
    let text = stderr(&output);
    let lines = lines_with(&text, "dropped right after init");
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].contains("let _telemetry = telemetry::init();"),
        "{text}"
    );
}

#[test]
fn a_guard_dropped_at_once_says_so_for_the_runtime_s_own_spans_too() {
    let (output, _) = run_child(
        "dropped_at_once_runtime_spans",
        &[("OTEL_TRACES_EXPORTER", "none")],
    );
    let text = stderr(&output);
    let lines = lines_with(&text, "dropped right after init");
    assert_eq!(lines.len(), 1, "{text}");
}

#[test]
fn a_guard_kept_until_an_error_at_the_start_says_nothing_of_a_drop() {
    let (output, _) = run_child(
        "kept_until_an_early_error",
        &[("OTEL_TRACES_EXPORTER", "none")],
    );
    let text = stderr(&output);
    assert!(
        lines_with(&text, "dropped right after init").is_empty(),
        "{text}"
    );
    assert_eq!(
        lines_with(&text, "cannot reach the database").len(),
        1,
        "{text}"
    );
}

#[test]
fn a_kept_guard_with_a_working_console_says_nothing_at_shutdown() {
    let (output, _) = run_child("work", &[]);
    let text = stderr(&output);
    assert!(lines_with(&text, "WARN").is_empty(), "{text}");
    assert!(
        text.contains("outer"),
        "the console printed the trace: {text}"
    );
}

#[test]
fn opentelemetry_s_own_log_lines_show_when_rust_log_names_them() {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ("OTEL_METRICS_EXPORTER", "none"),
    ];
    let (quiet, _) = run_child("work", &env);
    let text = stderr(&quiet);
    assert!(lines_with(&text, " opentelemetry").is_empty(), "{text}");

    let mut named = env.to_vec();
    named.push(("RUST_LOG", "info,opentelemetry_sdk=debug"));
    let (output, _) = run_child("work", &named);
    let text = stderr(&output);
    assert!(
        !lines_with(&text, " opentelemetry_sdk:").is_empty(),
        "no line of opentelemetry_sdk's own: {text}"
    );
}
