//! What `init()` sets up, decided from the builder's options and the environment
//! (`OTEL_*`, `RUST_LOG`): every variable is parsed and validated here, and a bad value becomes
//! a warning and the default.

use std::path::PathBuf;
use std::time::Duration;

use super::console::ConsoleDetail;

/// The directives used when `RUST_LOG` is unset, empty or invalid.
const DEFAULT_LOG_FILTER: &str = "info";

/// What the builder was told in code.
#[derive(Debug, Clone, Default)]
pub(super) struct Options {
    pub(super) service_name: Option<String>,
    pub(super) console: Option<bool>,
    pub(super) console_detail: Option<ConsoleDetail>,
    pub(super) shutdown_timeout: Option<Duration>,
}

/// How long dropping the guard waits for the last export, by default.
pub(super) const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// An OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "otlp"), allow(dead_code))]
pub(super) enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

/// How histograms are aggregated for export
/// (`OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(not(feature = "otlp"), allow(dead_code))]
pub(super) enum HistogramAggregation {
    /// Buckets with the contract's boundaries (`explicit_bucket_histogram`, the default).
    #[default]
    ExplicitBuckets,
    /// Exponential buckets (`base2_exponential_bucket_histogram`), for backends with native
    /// histograms.
    Base2Exponential,
}

/// The batch span processor's settings, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BatchSettings {
    scheduled_delay: Duration,
    max_queue_size: usize,
    max_export_batch_size: usize,
}

impl Default for BatchSettings {
    fn default() -> Self {
        use opentelemetry_sdk::trace as sdk;
        Self {
            scheduled_delay: sdk::OTEL_BSP_SCHEDULE_DELAY_DEFAULT,
            max_queue_size: sdk::OTEL_BSP_MAX_QUEUE_SIZE_DEFAULT,
            max_export_batch_size: sdk::OTEL_BSP_MAX_EXPORT_BATCH_SIZE_DEFAULT,
        }
    }
}

impl BatchSettings {
    /// The SDK reads the same variables but accepts a `0` queue (every span dropped) or
    /// delay (a busy loop): the validated values are set explicitly.
    #[cfg(feature = "otlp")]
    pub(super) fn config(&self) -> opentelemetry_sdk::trace::BatchConfig {
        opentelemetry_sdk::trace::BatchConfigBuilder::default()
            .with_scheduled_delay(self.scheduled_delay)
            .with_max_queue_size(self.max_queue_size)
            .with_max_export_batch_size(self.max_export_batch_size)
            .build()
    }
}

/// The TLS files of one signal's OTLP export (`OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]CERTIFICATE`,
/// `_CLIENT_CERTIFICATE`, `_CLIENT_KEY`: the per-signal variable wins), each with the variable
/// that named it. Read when the exporter is built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(not(feature = "otlp"), allow(dead_code))]
pub(super) struct TlsFiles {
    /// The CA certificates the collector's certificate is checked against, instead of the
    /// system's roots.
    pub(super) ca: Option<TlsFile>,
    /// The client certificate (chain) for mutual TLS.
    pub(super) client_certificate: Option<TlsFile>,
    /// Its private key.
    pub(super) client_key: Option<TlsFile>,
}

/// A file named by a variable.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "otlp"), allow(dead_code))]
pub(super) struct TlsFile {
    pub(super) variable: String,
    pub(super) path: PathBuf,
}

/// Everything `init` does, decided from the options and the environment.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Settings {
    pub(super) console: bool,
    pub(super) console_detail: ConsoleDetail,
    pub(super) traces_otlp: Option<OtlpProtocol>,
    pub(super) metrics_otlp: Option<OtlpProtocol>,
    pub(super) histogram_aggregation: HistogramAggregation,
    pub(super) traces_tls: TlsFiles,
    pub(super) metrics_tls: TlsFiles,
    /// Set explicitly on the resource; `None` leaves it to the SDK's detectors.
    pub(super) service_name: Option<String>,
    pub(super) log_directives: String,
    pub(super) batch: BatchSettings,
    /// How long dropping the guard waits for the last export.
    pub(super) shutdown_timeout: Duration,
    pub(super) warnings: Vec<String>,
}

/// Which span exporters `OTEL_TRACES_EXPORTER` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exporters {
    otlp: bool,
    console: bool,
}

const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
const OTEL_EXPORTER_OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
const OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL";
const OTEL_TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";
const OTEL_METRICS_EXPORTER: &str = "OTEL_METRICS_EXPORTER";
const OTEL_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
const OTEL_RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
const OTEL_TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
const OTEL_TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
const RUST_LOG: &str = "RUST_LOG";
const EVENTSOURCE_TELEMETRY_SHUTDOWN_TIMEOUT: &str = "EVENTSOURCE_TELEMETRY_SHUTDOWN_TIMEOUT";
const EVENTSOURCE_CONSOLE: &str = "EVENTSOURCE_CONSOLE";
const OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION: &str =
    "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION";

/// `OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION`, or a warning and the default.
fn histogram_aggregation(value: Option<&str>, warnings: &mut Vec<String>) -> HistogramAggregation {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("explicit_bucket_histogram") => HistogramAggregation::ExplicitBuckets,
        Some("base2_exponential_bucket_histogram") => HistogramAggregation::Base2Exponential,
        Some(other) => {
            warnings.push(format!(
                "{OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION}={other:?} is neither \
                 `explicit_bucket_histogram` nor `base2_exponential_bucket_histogram`; using \
                 `explicit_bucket_histogram`"
            ));
            HistogramAggregation::ExplicitBuckets
        }
    }
}

impl Settings {
    /// `env` looks a variable up (empty counts as unset); `exe` is the executable's name.
    pub(super) fn resolve(
        options: &Options,
        env: &dyn Fn(&str) -> Option<String>,
        exe: Option<&str>,
    ) -> Self {
        let env = |key: &str| env(key).filter(|v| !v.trim().is_empty());
        let mut warnings = Vec::new();
        let disabled = parse_bool(
            OTEL_SDK_DISABLED,
            env(OTEL_SDK_DISABLED).as_deref(),
            &mut warnings,
        );

        // Spans.
        let endpoint = env(OTEL_EXPORTER_OTLP_ENDPOINT).is_some()
            || env(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).is_some();
        let default = Exporters {
            otlp: endpoint,
            console: !endpoint,
        };
        let mut exporters = if disabled {
            Exporters {
                otlp: false,
                console: false,
            }
        } else {
            parse_exporters(
                OTEL_TRACES_EXPORTER,
                env(OTEL_TRACES_EXPORTER).as_deref(),
                &["otlp", "console"],
                &mut warnings,
            )
            .map_or(default, |set| Exporters {
                otlp: set.contains(&"otlp"),
                console: set.contains(&"console"),
            })
        };
        if exporters.otlp && !cfg!(feature = "otlp") {
            warnings.push(
                "OTLP export needs the `otlp` feature of eventsource-runtime; \
                 printing traces to the console instead"
                    .to_owned(),
            );
            exporters = Exporters {
                otlp: false,
                console: true,
            };
        }
        let console = options.console.unwrap_or(exporters.console);
        let traces_otlp = exporters
            .otlp
            .then(|| {
                protocol(
                    &[
                        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
                        OTEL_EXPORTER_OTLP_PROTOCOL,
                    ],
                    &env,
                    &mut warnings,
                )
            })
            .and_then(|protocol| built(protocol, "spans", &mut warnings));
        let batch = if traces_otlp.is_some() {
            batch_settings(&env, &mut warnings)
        } else {
            BatchSettings::default()
        };
        if traces_otlp.is_some() || console {
            warnings.extend(check_sampler(
                env(OTEL_TRACES_SAMPLER).as_deref(),
                env(OTEL_TRACES_SAMPLER_ARG).as_deref(),
            ));
        }

        // Metrics.
        let metrics_endpoint = env(OTEL_EXPORTER_OTLP_ENDPOINT).is_some()
            || env(OTEL_EXPORTER_OTLP_METRICS_ENDPOINT).is_some();
        let metrics = !disabled
            && parse_exporters(
                OTEL_METRICS_EXPORTER,
                env(OTEL_METRICS_EXPORTER).as_deref(),
                &["otlp"],
                &mut warnings,
            )
            .map_or(metrics_endpoint, |set| set.contains(&"otlp"))
            && cfg!(feature = "otlp");
        let metrics_otlp = metrics
            .then(|| {
                protocol(
                    &[
                        OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
                        OTEL_EXPORTER_OTLP_PROTOCOL,
                    ],
                    &env,
                    &mut warnings,
                )
            })
            .and_then(|protocol| built(protocol, "metrics", &mut warnings));

        let histogram_aggregation = if metrics_otlp.is_some() {
            histogram_aggregation(
                env(OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION).as_deref(),
                &mut warnings,
            )
        } else {
            HistogramAggregation::default()
        };

        let shutdown_timeout = options.shutdown_timeout.unwrap_or_else(|| {
            match env(EVENTSOURCE_TELEMETRY_SHUTDOWN_TIMEOUT) {
                None => DEFAULT_SHUTDOWN_TIMEOUT,
                Some(value) => value.trim().parse::<u64>().map_or_else(
                    |_| {
                        warnings.push(format!(
                            "{EVENTSOURCE_TELEMETRY_SHUTDOWN_TIMEOUT}={value:?} is not a number \
                             of milliseconds; using {}",
                            DEFAULT_SHUTDOWN_TIMEOUT.as_millis()
                        ));
                        DEFAULT_SHUTDOWN_TIMEOUT
                    },
                    Duration::from_millis,
                ),
            }
        });
        let console_detail = options.console_detail.unwrap_or_else(|| {
            match env(EVENTSOURCE_CONSOLE).map(|v| v.trim().to_ascii_lowercase()) {
                None => ConsoleDetail::default(),
                Some(v) if v == "compact" => ConsoleDetail::Compact,
                Some(v) if v == "full" => ConsoleDetail::Full,
                Some(v) => {
                    warnings.push(format!(
                        "{EVENTSOURCE_CONSOLE}={v:?} is neither `compact` nor `full`; using \
                         `compact`"
                    ));
                    ConsoleDetail::Compact
                }
            }
        });
        let (log_directives, log_warning) = log_directives(env(RUST_LOG).as_deref());
        warnings.extend(log_warning);

        Settings {
            console,
            console_detail,
            traces_otlp,
            metrics_otlp,
            histogram_aggregation,
            traces_tls: tls_files("TRACES", &env),
            metrics_tls: tls_files("METRICS", &env),
            service_name: service_name(
                options.service_name.as_deref(),
                env(OTEL_SERVICE_NAME).as_deref(),
                env(OTEL_RESOURCE_ATTRIBUTES).as_deref(),
                exe,
            ),
            log_directives,
            batch,
            shutdown_timeout,
            warnings,
        }
    }
}

/// The TLS files for `signal` (`TRACES` or `METRICS`): each per-signal variable, else the
/// generic one.
fn tls_files(signal: &str, env: &dyn Fn(&str) -> Option<String>) -> TlsFiles {
    let file = |suffix: &str| {
        [
            format!("OTEL_EXPORTER_OTLP_{signal}_{suffix}"),
            format!("OTEL_EXPORTER_OTLP_{suffix}"),
        ]
        .into_iter()
        .find_map(|variable| {
            env(&variable).map(|path| TlsFile {
                path: PathBuf::from(path.trim()),
                variable,
            })
        })
    };
    TlsFiles {
        ca: file("CERTIFICATE"),
        client_certificate: file("CLIENT_CERTIFICATE"),
        client_key: file("CLIENT_KEY"),
    }
}

/// `true`/`false` (any case); anything else warns and counts as `false`.
fn parse_bool(var: &str, value: Option<&str>, warnings: &mut Vec<String>) -> bool {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            warnings.push(format!("{var}={other:?} is not true or false; using false"));
            false
        }
    }
}

/// A comma-separated exporter list: `None` when unset (the default applies), the supported
/// names it holds otherwise (empty for `none`). Unsupported names warn and are skipped; a
/// list of nothing but unsupported names falls back to the default.
fn parse_exporters(
    var: &str,
    value: Option<&str>,
    supported: &[&'static str],
    warnings: &mut Vec<String>,
) -> Option<Vec<&'static str>> {
    let value = value?;
    let mut chosen = Vec::new();
    let mut none = false;
    for name in value.split(',').map(|n| n.trim().to_ascii_lowercase()) {
        let name = if name == "logging" {
            "console".to_owned()
        } else {
            name
        };
        if name == "none" {
            none = true;
        } else if let Some(known) = supported.iter().find(|s| **s == name) {
            if !chosen.contains(known) {
                chosen.push(*known);
            }
        } else if !name.is_empty() {
            warnings.push(format!(
                "{var}: exporter {name:?} is not supported (supported: {}, none); ignored",
                supported.join(", ")
            ));
        }
    }
    if none {
        Some(Vec::new())
    } else if chosen.is_empty() {
        None
    } else {
        Some(chosen)
    }
}

/// The first of `vars` that is set decides; default `http/protobuf`.
fn protocol(
    vars: &[&str],
    env: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> OtlpProtocol {
    for var in vars {
        if let Some(value) = env(var) {
            match parse_protocol(&value) {
                Some(protocol) => return protocol,
                None => {
                    warnings.push(format!(
                        "{var}={value:?} is not grpc, http/protobuf or http/json; using http/protobuf"
                    ));
                    return OtlpProtocol::HttpProtobuf;
                }
            }
        }
    }
    OtlpProtocol::HttpProtobuf
}

/// The protocol, when this build can export over it: gRPC needs the `otlp-grpc` feature (one
/// warning line per signal otherwise, and nothing exported over OTLP, since gRPC's port does
/// not take HTTP); `http/json` needs `otlp-json` (one warning line per signal otherwise, and
/// `http/protobuf` to the same endpoint, which every OTLP/HTTP receiver takes too).
fn built(protocol: OtlpProtocol, signal: &str, warnings: &mut Vec<String>) -> Option<OtlpProtocol> {
    if protocol == OtlpProtocol::HttpJson && !cfg!(feature = "otlp-json") {
        warnings.push(format!(
            "OTLP over http/json needs the `otlp-json` feature of eventsource-runtime, which \
             this build lacks; {signal} are exported over http/protobuf to the same endpoint"
        ));
        return Some(OtlpProtocol::HttpProtobuf);
    }
    if protocol == OtlpProtocol::Grpc && !cfg!(feature = "otlp-grpc") {
        warnings.push(format!(
            "OTLP over grpc needs the `otlp-grpc` feature of eventsource-runtime, which this \
             build lacks; {signal} are not exported (enable the feature, or set \
             OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf and the collector's HTTP port, 4318)"
        ));
        return None;
    }
    Some(protocol)
}

fn parse_protocol(value: &str) -> Option<OtlpProtocol> {
    match value.trim().to_ascii_lowercase().as_str() {
        "grpc" => Some(OtlpProtocol::Grpc),
        "http/protobuf" => Some(OtlpProtocol::HttpProtobuf),
        "http/json" => Some(OtlpProtocol::HttpJson),
        _ => None,
    }
}

fn batch_settings(
    env: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> BatchSettings {
    use opentelemetry_sdk::trace as sdk;
    let defaults = BatchSettings::default();
    let mut positive = |var: &str, default: u64| -> u64 {
        let Some(value) = env(var) else {
            return default;
        };
        match value.trim().parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => {
                warnings.push(format!(
                    "{var}={value:?} is not a positive integer; using {default}"
                ));
                default
            }
        }
    };
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let scheduled_delay = Duration::from_millis(positive(
        sdk::OTEL_BSP_SCHEDULE_DELAY,
        millis(defaults.scheduled_delay),
    ));
    let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    let max_queue_size = size(positive(
        sdk::OTEL_BSP_MAX_QUEUE_SIZE,
        defaults.max_queue_size as u64,
    ));
    let max_export_batch_size = size(positive(
        sdk::OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
        defaults.max_export_batch_size as u64,
    ))
    // As the SDK does: a batch is never larger than the queue.
    .min(max_queue_size);
    if env(sdk::OTEL_BSP_EXPORT_TIMEOUT).is_some() {
        warnings.push(format!(
            "{} is not used by the batch span processor; the export timeout is \
             OTEL_EXPORTER_OTLP_TIMEOUT (or OTEL_EXPORTER_OTLP_TRACES_TIMEOUT)",
            sdk::OTEL_BSP_EXPORT_TIMEOUT
        ));
    }
    BatchSettings {
        scheduled_delay,
        max_queue_size,
        max_export_batch_size,
    }
}

/// Warnings about `OTEL_TRACES_SAMPLER`/`_ARG`, which the SDK reads itself and, on a bad
/// value, silently replaces (with `parentbased_always_on`, or a ratio of 1.0).
fn check_sampler(sampler: Option<&str>, arg: Option<&str>) -> Vec<String> {
    let Some(sampler) = sampler else {
        return Vec::new();
    };
    match sampler {
        "always_on" | "always_off" | "parentbased_always_on" | "parentbased_always_off" => {
            Vec::new()
        }
        "traceidratio" | "parentbased_traceidratio" => match arg.map(|a| (a, a.parse::<f64>())) {
            Some((_, Ok(ratio))) if (0.0..=1.0).contains(&ratio) => Vec::new(),
            Some((a, Ok(_))) => vec![format!(
                "{OTEL_TRACES_SAMPLER_ARG}={a:?} is outside 0..=1; the sampler treats it as 0 or 1"
            )],
            Some((a, Err(_))) => vec![format!(
                "{OTEL_TRACES_SAMPLER_ARG}={a:?} is not a number; sampling ratio 1.0"
            )],
            None => vec![format!(
                "{OTEL_TRACES_SAMPLER}={sampler} needs {OTEL_TRACES_SAMPLER_ARG}; sampling ratio 1.0"
            )],
        },
        "jaeger_remote" | "parentbased_jaeger_remote" | "xray" => vec![format!(
            "{OTEL_TRACES_SAMPLER}={sampler} is not supported; using parentbased_always_on"
        )],
        other => vec![format!(
            "{OTEL_TRACES_SAMPLER}={other:?} is not a known sampler (always_on, always_off, \
             traceidratio, parentbased_always_on, parentbased_always_off, \
             parentbased_traceidratio); using parentbased_always_on"
        )],
    }
}

/// `RUST_LOG` if it parses, `info` otherwise (with a warning).
fn log_directives(value: Option<&str>) -> (String, Option<String>) {
    match value.map(str::trim) {
        None | Some("") => (DEFAULT_LOG_FILTER.to_owned(), None),
        Some(directives) => match super::logs::parse_directives(directives) {
            Ok(_) => (directives.to_owned(), None),
            Err(error) => (
                DEFAULT_LOG_FILTER.to_owned(),
                Some(format!(
                    "{RUST_LOG}={directives:?} is not a valid filter ({error}); using {DEFAULT_LOG_FILTER}"
                )),
            ),
        },
    }
}

/// The name to set on the resource: the code's, else none when the environment names the
/// service (the SDK reads it), else the executable's.
fn service_name(
    code: Option<&str>,
    otel_service_name: Option<&str>,
    resource_attributes: Option<&str>,
    exe: Option<&str>,
) -> Option<String> {
    if let Some(name) = code {
        return Some(name.to_owned());
    }
    let in_attributes = resource_attributes.is_some_and(|attrs| {
        attrs.split(',').any(|pair| {
            pair.split_once('=')
                .is_some_and(|(k, v)| k.trim() == "service.name" && !v.trim().is_empty())
        })
    });
    if otel_service_name.is_some() || in_attributes {
        return None;
    }
    exe.map(str::to_owned)
}

#[cfg(test)]
mod tests;
