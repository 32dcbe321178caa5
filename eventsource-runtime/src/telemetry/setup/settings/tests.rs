//! The settings resolved from the environment and the builder's options.

use std::collections::HashMap;

use super::*;

fn resolve(vars: &[(&str, &str)], options: Options) -> Settings {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Settings::resolve(&options, &|k| map.get(k).cloned(), Some("orders"))
}

fn env(vars: &[(&str, &str)]) -> Settings {
    resolve(vars, Options::default())
}

#[test]
fn no_endpoint_means_console_only() {
    let s = env(&[]);
    assert!(s.console);
    assert_eq!(s.traces_otlp, None);
    assert_eq!(s.metrics_otlp, None);
    assert_eq!(s.service_name.as_deref(), Some("orders"));
    assert_eq!(s.log_directives, "info");
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn endpoint_means_otlp_http_protobuf_without_console() {
    let s = env(&[(OTEL_EXPORTER_OTLP_ENDPOINT, "http://collector:4318")]);
    assert!(!s.console);
    assert_eq!(s.traces_otlp, Some(OtlpProtocol::HttpProtobuf));
    assert_eq!(s.metrics_otlp, Some(OtlpProtocol::HttpProtobuf));
    assert_eq!(s.batch, BatchSettings::default());
}

#[test]
fn signal_endpoints_enable_their_signal_only() {
    let s = env(&[(
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
        "http://c:4318/v1/traces",
    )]);
    assert!(s.traces_otlp.is_some() && s.metrics_otlp.is_none() && !s.console);
    let s = env(&[(
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
        "http://c:4318/v1/metrics",
    )]);
    assert!(s.traces_otlp.is_none() && s.metrics_otlp.is_some() && s.console);
}

#[test]
fn empty_values_count_as_unset() {
    let s = env(&[(OTEL_EXPORTER_OTLP_ENDPOINT, " "), (RUST_LOG, "")]);
    assert!(s.console && s.traces_otlp.is_none());
    assert_eq!(s.log_directives, "info");
}

#[test]
#[cfg(all(feature = "otlp-grpc", feature = "otlp-json"))]
fn protocols_signal_specific_first() {
    let endpoint = (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4317");
    let s = env(&[endpoint, (OTEL_EXPORTER_OTLP_PROTOCOL, "grpc")]);
    assert_eq!(s.traces_otlp, Some(OtlpProtocol::Grpc));
    assert_eq!(s.metrics_otlp, Some(OtlpProtocol::Grpc));
    let s = env(&[
        endpoint,
        (OTEL_EXPORTER_OTLP_PROTOCOL, "grpc"),
        (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, "HTTP/JSON"),
    ]);
    assert_eq!(s.traces_otlp, Some(OtlpProtocol::HttpJson));
    assert_eq!(s.metrics_otlp, Some(OtlpProtocol::Grpc));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

/// Without the `otlp-grpc` feature, asking for gRPC is one warning naming the feature, and
/// that signal is not exported; the other keeps its protocol.
#[test]
#[cfg(all(feature = "otlp", not(feature = "otlp-grpc")))]
fn grpc_without_its_feature_warns_naming_it() {
    let s = env(&[
        (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4317"),
        (OTEL_EXPORTER_OTLP_PROTOCOL, "grpc"),
        (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, "http/protobuf"),
    ]);
    assert_eq!(s.traces_otlp, Some(OtlpProtocol::HttpProtobuf));
    assert_eq!(s.metrics_otlp, None);
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    assert!(
        s.warnings[0].contains("`otlp-grpc` feature"),
        "{}",
        s.warnings[0]
    );
}

/// Without the `otlp-json` feature, asking for http/json is one warning naming the feature,
/// and that signal is exported over http/protobuf to the same endpoint.
#[test]
#[cfg(all(feature = "otlp", not(feature = "otlp-json")))]
fn json_without_its_feature_falls_back_to_protobuf_naming_it() {
    let s = env(&[
        (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
        (OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, "http/json"),
    ]);
    assert_eq!(s.traces_otlp, Some(OtlpProtocol::HttpProtobuf));
    assert_eq!(s.metrics_otlp, Some(OtlpProtocol::HttpProtobuf));
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    assert!(
        s.warnings[0].contains("`otlp-json` feature") && s.warnings[0].contains("metrics"),
        "{}",
        s.warnings[0]
    );
}

#[test]
fn shutdown_timeout_from_code_then_environment_then_two_seconds() {
    use std::time::Duration;
    assert_eq!(env(&[]).shutdown_timeout, Duration::from_secs(2));
    let var = "EVENTSOURCE_TELEMETRY_SHUTDOWN_TIMEOUT";
    assert_eq!(
        env(&[(var, "250")]).shutdown_timeout,
        Duration::from_millis(250)
    );
    let s = env(&[(var, "soon")]);
    assert_eq!(s.shutdown_timeout, Duration::from_secs(2));
    assert!(s.warnings[0].contains("soon"), "{:?}", s.warnings);
    let s = resolve(
        &[(var, "250")],
        Options {
            shutdown_timeout: Some(Duration::from_secs(7)),
            ..Options::default()
        },
    );
    assert_eq!(s.shutdown_timeout, Duration::from_secs(7));
}

#[test]
fn bad_protocol_warns_and_uses_http_protobuf() {
    let s = env(&[
        (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
        (OTEL_EXPORTER_OTLP_PROTOCOL, "carrier-pigeon"),
    ]);
    assert_eq!(s.traces_otlp, Some(OtlpProtocol::HttpProtobuf));
    assert!(s.warnings.iter().any(|w| w.contains("carrier-pigeon")));
}

#[test]
fn traces_exporter_none_disables_spans_and_console() {
    let s = env(&[(OTEL_TRACES_EXPORTER, "none")]);
    assert!(!s.console && s.traces_otlp.is_none());
    let s = env(&[
        (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
        (OTEL_TRACES_EXPORTER, "none"),
    ]);
    assert!(!s.console && s.traces_otlp.is_none());
    assert!(s.metrics_otlp.is_some(), "metrics are not traces");
}

#[test]
fn traces_exporter_lists() {
    let s = env(&[(OTEL_TRACES_EXPORTER, "otlp, console")]);
    assert!(s.console);
    assert_eq!(s.traces_otlp, Some(OtlpProtocol::HttpProtobuf));
    let s = env(&[
        (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
        (OTEL_TRACES_EXPORTER, "console"),
    ]);
    assert!(s.console && s.traces_otlp.is_none());
}

#[test]
fn unknown_traces_exporter_warns_and_keeps_the_default() {
    let s = env(&[(OTEL_TRACES_EXPORTER, "zipkin")]);
    assert!(s.console && s.traces_otlp.is_none());
    assert!(s.warnings.iter().any(|w| w.contains("zipkin")));
}

#[test]
fn metrics_exporter() {
    let endpoint = (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318");
    assert!(
        env(&[endpoint, (OTEL_METRICS_EXPORTER, "none")])
            .metrics_otlp
            .is_none()
    );
    assert!(
        env(&[(OTEL_METRICS_EXPORTER, "otlp")])
            .metrics_otlp
            .is_some()
    );
    let s = env(&[endpoint, (OTEL_METRICS_EXPORTER, "prometheus")]);
    assert!(s.metrics_otlp.is_some());
    assert!(s.warnings.iter().any(|w| w.contains("prometheus")));
}

#[test]
fn sdk_disabled() {
    let s = env(&[
        (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
        (OTEL_SDK_DISABLED, "TRUE"),
    ]);
    assert!(!s.console && s.traces_otlp.is_none() && s.metrics_otlp.is_none());
    let s = env(&[(OTEL_SDK_DISABLED, "yes please")]);
    assert!(s.console);
    assert!(s.warnings.iter().any(|w| w.contains(OTEL_SDK_DISABLED)));
}

#[test]
fn code_wins_over_environment() {
    let options = Options {
        service_name: Some("billing".into()),
        console: Some(true),
        console_detail: Some(ConsoleDetail::Full),
        shutdown_timeout: None,
    };
    let s = resolve(
        &[
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
            (OTEL_SERVICE_NAME, "from-env"),
            (EVENTSOURCE_CONSOLE, "compact"),
        ],
        options,
    );
    assert!(s.console && s.traces_otlp.is_some());
    assert_eq!(s.service_name.as_deref(), Some("billing"));
    assert_eq!(s.console_detail, ConsoleDetail::Full);
    let s = resolve(
        &[],
        Options {
            console: Some(false),
            ..Options::default()
        },
    );
    assert!(!s.console);
}

#[test]
fn the_console_is_compact_unless_asked_for_full_detail() {
    assert_eq!(
        resolve(&[], Options::default()).console_detail,
        ConsoleDetail::Compact
    );
    let s = resolve(&[(EVENTSOURCE_CONSOLE, " Full ")], Options::default());
    assert_eq!(s.console_detail, ConsoleDetail::Full);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    let s = resolve(&[(EVENTSOURCE_CONSOLE, "verbose")], Options::default());
    assert_eq!(s.console_detail, ConsoleDetail::Compact);
    assert_eq!(
        s.warnings,
        ["EVENTSOURCE_CONSOLE=\"verbose\" is neither `compact` nor `full`; using `compact`"]
    );
}

#[test]
fn service_name_precedence() {
    assert_eq!(
        service_name(Some("a"), Some("b"), None, Some("exe")).as_deref(),
        Some("a")
    );
    assert_eq!(service_name(None, Some("b"), None, Some("exe")), None);
    assert_eq!(
        service_name(None, None, Some("team=x, service.name = c"), Some("exe")),
        None
    );
    assert_eq!(
        service_name(None, None, Some("team=x,service.name="), Some("exe")).as_deref(),
        Some("exe")
    );
    assert_eq!(service_name(None, None, None, None), None);
}

#[test]
fn batch_settings_from_env() {
    let s = env(&[
        (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
        ("OTEL_BSP_SCHEDULE_DELAY", "250"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "500"),
    ]);
    assert_eq!(
        s.batch,
        BatchSettings {
            scheduled_delay: Duration::from_millis(250),
            max_queue_size: 100,
            max_export_batch_size: 100, // never above the queue
        }
    );
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn bad_batch_settings_warn_and_use_defaults() {
    let s = env(&[
        (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
        ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "-3"),
    ]);
    assert_eq!(s.batch, BatchSettings::default());
    assert_eq!(s.warnings.len(), 3, "{:?}", s.warnings);
}

#[test]
fn sampler_checks() {
    assert!(check_sampler(None, Some("0.5")).is_empty());
    assert!(check_sampler(Some("always_off"), None).is_empty());
    assert!(check_sampler(Some("parentbased_traceidratio"), Some("0.25")).is_empty());
    assert_eq!(check_sampler(Some("traceidratio"), None).len(), 1);
    assert_eq!(check_sampler(Some("traceidratio"), Some("half")).len(), 1);
    assert_eq!(check_sampler(Some("traceidratio"), Some("1.5")).len(), 1);
    assert_eq!(check_sampler(Some("AlwaysOn"), None).len(), 1);
    assert_eq!(check_sampler(Some("xray"), None).len(), 1);
    let s = env(&[(OTEL_TRACES_SAMPLER, "sometimes")]);
    assert!(s.warnings.iter().any(|w| w.contains("sometimes")));
}

#[test]
fn rust_log() {
    assert_eq!(log_directives(None), ("info".to_owned(), None));
    assert_eq!(
        log_directives(Some("warn,eventsource=debug")),
        ("warn,eventsource=debug".to_owned(), None)
    );
    let (directives, warning) = log_directives(Some("eventsource=loud"));
    assert_eq!(directives, "info");
    assert!(warning.is_some_and(|w| w.contains("eventsource=loud")));
}

#[test]
fn exporter_lists() {
    let mut w = Vec::new();
    let all = ["otlp", "console"];
    assert_eq!(parse_exporters("X", None, &all, &mut w), None);
    assert_eq!(
        parse_exporters("X", Some("none"), &all, &mut w),
        Some(vec![])
    );
    assert_eq!(
        parse_exporters("X", Some("Console,otlp,console"), &all, &mut w),
        Some(vec!["console", "otlp"])
    );
    assert_eq!(
        parse_exporters("X", Some("logging"), &all, &mut w),
        Some(vec!["console"])
    );
    assert!(w.is_empty());
    assert_eq!(parse_exporters("X", Some("jaeger"), &all, &mut w), None);
    assert_eq!(w.len(), 1);
}

#[test]
fn tls_files_per_signal_first_then_generic() {
    let s = env(&[
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.pem"),
        ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", " /traces-ca.pem "),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/client.pem"),
        ("OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY", "/metrics-key.pem"),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", ""),
    ]);
    let file = |variable: &str, path: &str| {
        Some(TlsFile {
            variable: variable.to_owned(),
            path: PathBuf::from(path),
        })
    };
    assert_eq!(
        s.traces_tls,
        TlsFiles {
            ca: file("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/traces-ca.pem"),
            client_certificate: file("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/client.pem"),
            // Empty counts as unset.
            client_key: None,
        }
    );
    assert_eq!(
        s.metrics_tls,
        TlsFiles {
            ca: file("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.pem"),
            client_certificate: file("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/client.pem"),
            client_key: file("OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY", "/metrics-key.pem"),
        }
    );
    assert_eq!(env(&[]).traces_tls, TlsFiles::default());
}
