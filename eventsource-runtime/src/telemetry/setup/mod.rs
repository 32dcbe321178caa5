//! Application setup: `telemetry::init()`, one call that sets up spans, metrics and log
//! lines for an application, configured from the standard OpenTelemetry environment
//! variables (the table is on [`init`]), and the pieces it installs.
//!
//! This module holds the public API (the builder, the guard, the error) and the
//! installation of the global subscriber and providers. The work is split by job:
//!
//! - `settings`: what to set up, decided from the builder's options and the environment;
//! - `logs`: the log lines (their filter and format) and the spans' filter;
//! - `layer`: eventsource's `tracing` layer ([`OtelLayer`]), also for custom subscribers;
//! - `console`: finished traces printed as trees ([`ConsoleExporter`]);
//! - `guard`: the guard [`init`] returns, and the bounded shutdown it runs when dropped;
//! - `dropped_guard`: the warning for a guard dropped right after `init` while spans go on;
//! - `export` (with the `otlp` feature): the OTLP exporters and the runtime they run on.

use std::fmt;
use std::io::{IsTerminal as _, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::InstrumentationScope;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use tracing_subscriber::Layer as _;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime as _;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use console::SharedWriter;
use dropped_guard::{DropWatch, WatchedTracer};
use export_failures::ExportHealth;
use guard::Installed;
use logs::{LineFormat, log_filter, span_filter};
use pipelines::Exporting;
use settings::{Options, Settings};

pub use console::{ConsoleDetail, ConsoleExporter};
pub use guard::TelemetryGuard;
pub use layer::{OtelLayer, layer};

mod console;
mod dropped_guard;
#[cfg(feature = "otlp")]
mod export;
mod export_failures;
mod guard;
mod layer;
mod logs;
mod pipelines;
mod settings;
#[cfg(feature = "otlp")]
mod tls;

/// The instrumentation scope of the runtime's own spans: its components' and `#[traced]`'s,
/// named `eventsource`, with the crate's version. `telemetry::init()` gives it to them; with
/// a provider of your own, give it to [`OtelLayer::with_library_tracer`].
///
/// ```
/// use opentelemetry::trace::TracerProvider as _;
///
/// let scope = eventsource_runtime::telemetry::instrumentation_scope();
/// assert_eq!(scope.name(), "eventsource");
/// assert_eq!(scope.version(), Some(env!("CARGO_PKG_VERSION")));
/// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
/// let _library = provider.tracer_with_scope(scope);
/// ```
#[must_use]
pub fn instrumentation_scope() -> InstrumentationScope {
    InstrumentationScope::builder("eventsource")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

/// Sets up telemetry for the whole process and returns the guard that flushes it.
///
/// The same as `Telemetry::builder().init()` (see [`Telemetry::builder`] for the options,
/// which win over the environment). Without `OTEL_EXPORTER_OTLP_ENDPOINT`, each finished
/// trace is printed as a tree on stderr ([`ConsoleExporter`]); with it, spans and metrics go
/// to the collector. Log lines go to stderr, with the `trace_id`/`span_id` of the span they
/// are in. The global tracer provider, meter provider (when metrics are exported) and W3C
/// propagator (`traceparent`, `baggage`) are set too.
///
/// | variable | effect |
/// |---|---|
/// | (none) | each finished trace printed as a tree on stderr |
/// | `OTEL_EXPORTER_OTLP_ENDPOINT` (or `_TRACES_` / `_METRICS_ENDPOINT`) | OTLP export of spans and metrics instead (for HTTP, `/v1/traces` and `/v1/metrics` are appended to the generic endpoint only) |
/// | `OTEL_EXPORTER_OTLP_PROTOCOL` (or `_TRACES_` / `_METRICS_PROTOCOL`) | `http/protobuf` (default), `http/json` (with the `otlp-json` feature; without it, one warning line and `http/protobuf` to the same endpoint), or `grpc` (with the `otlp-grpc` feature; without it, one warning line and that signal is not exported) |
/// | `OTEL_TRACES_EXPORTER` | `otlp`, `console`, both (`otlp,console`) or `none` (no span export, no console) |
/// | `OTEL_METRICS_EXPORTER` | `otlp` or `none` |
/// | `OTEL_SDK_DISABLED=true` | no span or metric export (log lines stay) |
/// | `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` | the resource; the service name defaults to the executable's name |
/// | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | the sampler (read by the SDK; default `parentbased_always_on`) |
/// | `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` | the OTLP batch span processor (which ignores `OTEL_BSP_EXPORT_TIMEOUT`: the export timeout is `OTEL_EXPORTER_OTLP_TIMEOUT`) |
/// | `OTEL_EXPORTER_OTLP_CERTIFICATE` (or `_TRACES_` / `_METRICS_CERTIFICATE`) | for an `https` endpoint: a PEM file of the CA certificates the collector's certificate must chain to, *instead of* the system's roots (the default) |
/// | `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`, `OTEL_EXPORTER_OTLP_CLIENT_KEY` (or their `_TRACES_` / `_METRICS_` variants) | mutual TLS: the client's PEM certificate (chain) and private key, both or neither |
/// | `OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION` | `explicit_bucket_histogram` (default: the contract's bucket boundaries, `docs/telemetry.md`) or `base2_exponential_bucket_histogram` (exponential buckets, for backends with native histograms) |
/// | `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` | `cumulative` (default), `delta` or `lowmemory` (read by the exporter) |
/// | `OTEL_METRIC_EXPORT_INTERVAL` | milliseconds between metric exports (default 60000; read by the SDK's reader) |
/// | `OTEL_EXPORTER_OTLP_HEADERS`, `_TIMEOUT`, `_COMPRESSION`, … | read by the exporters themselves |
/// | `EVENTSOURCE_CONSOLE` | how much of each span the console shows: `compact` (the default: one line per span, at most three attributes) or `full` (every attribute, the kind, links and errors on lines of their own); [`TelemetryBuilder::console_detail`] in code |
/// | `EVENTSOURCE_TELEMETRY_SHUTDOWN_TIMEOUT` | milliseconds dropping the guard waits, at most, for the last export (default 2000; [`TelemetryBuilder::shutdown_timeout`] in code) |
/// | `RUST_LOG` | the log lines, default `info`: `level`, `target` and `target=level` directives, comma-separated (span and field filters are not read; an invalid value is one warning and `info`). The log lines of OpenTelemetry's own targets and of the AMQP client (`lapin`, `amq_protocol`: the RabbitMQ adapter reports its failures itself) are off unless named. Passwords the process was given are written as `***` ([`secrets`](super::secrets)). Spans are recorded at `info` and above whatever its default level says (more when it is more verbose), and spans made for OpenTelemetry on purpose (target `otel::tracing`, as `axum-tracing-opentelemetry`'s server spans, made at `TRACE`) at every level unless a directive names an `otel` target; its per-target directives apply to spans too. Never recorded: the spans of the exporters' own stack and of the AMQP client's connection loop, by crate (`ureq`, `tonic`, `h2`, `hyper`, `tower`, `lapin`, `amq_protocol`, and OpenTelemetry's own crates; `tower_http`, `hyper_util` and other crates named alike are recorded) |
///
/// HTTPS needs the `tls` feature (on by default) for `http/protobuf` and `http/json`: rustls
/// with *ring*; gRPC's TLS comes with the `otlp-grpc` feature. A TLS file that cannot be read
/// or used, or a client certificate without its key, is [`InitError::Tls`] (with `init`: one
/// warning line, no telemetry). HTTP exports follow no redirects and go through the proxy
/// named by `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` unless `NO_PROXY` lists the host.
///
/// A bad value never panics: it is reported as one warning line and the default is used.
///
/// Never panics: if telemetry cannot be set up (another global `tracing` subscriber, an
/// exporter that fails to build), it prints one warning line and returns a guard that
/// does nothing. Use [`TelemetryBuilder::try_init`] to handle the error.
///
/// Keep the guard alive for the life of the program: dropping it flushes the spans still
/// buffered and shuts the exporters down, waiting at most the shutdown timeout (2 s by
/// default). A guard dropped right after `init`, before any span ended (`let _ =
/// telemetry::init();`), prints a warning saying so when spans start afterwards, which
/// nothing exports (a program that simply ends, on an error at its start, gets none).
///
/// Export failures are never silent: the first failure of each cause is one WARN line on the
/// writer naming the collector's endpoint and the cause (a collector that refuses the TLS
/// handshake for want of a client certificate says so, and names
/// `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` / `_CLIENT_KEY`), with the transport's own error
/// text once; a cause of the collector's (refused, unreachable, TLS) is one line for spans and
/// metrics together. Further failures are summarised at most once a minute, and at shutdown
/// one line says how many spans and metric exports were not sent (or that the flush ran out
/// of time) and names the last cause. The OpenTelemetry crates' own log lines show
/// when `RUST_LOG` names their targets (`RUST_LOG=info,opentelemetry_sdk=debug`).
///
/// ```no_run
/// #[tokio::main]
/// async fn main() {
///     let _telemetry = eventsource_runtime::telemetry::init();
///     tracing::info!("ready");
///     // ... the application ...
/// } // spans flushed here
/// ```
#[must_use = "telemetry is shut down when the guard is dropped"]
pub fn init() -> TelemetryGuard {
    Telemetry::builder().init()
}

/// The entry point of the telemetry setup: [`Telemetry::builder`].
///
/// ```
/// let guard = eventsource_runtime::telemetry::Telemetry::builder()
///     .service_name("orders")
///     .writer(std::io::sink())
///     .init();
/// # drop(guard);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Telemetry;

impl Telemetry {
    /// Options for [`init`]: service name, console on or off, where the console output
    /// goes. Options given in code win over the environment.
    ///
    /// ```
    /// use eventsource_runtime::telemetry::Telemetry;
    ///
    /// let guard = Telemetry::builder()
    ///     .service_name("orders")
    ///     .console(true)
    ///     .writer(std::io::sink())
    ///     .try_init();
    /// # drop(guard);
    /// ```
    pub fn builder() -> TelemetryBuilder {
        TelemetryBuilder::default()
    }
}

/// Options of the telemetry setup, from [`Telemetry::builder`].
///
/// ```
/// let builder = eventsource_runtime::telemetry::Telemetry::builder().service_name("orders");
/// # drop(builder);
/// ```
#[derive(Default)]
#[must_use = "nothing is set up until `init` or `try_init` is called"]
pub struct TelemetryBuilder {
    options: Options,
    writer: Option<SharedWriter>,
}

impl fmt::Debug for TelemetryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryBuilder")
            .field("service_name", &self.options.service_name)
            .field("console", &self.options.console)
            .field("console_detail", &self.options.console_detail)
            .field("writer", &self.writer.as_ref().map(|_| "custom"))
            .finish()
    }
}

impl TelemetryBuilder {
    /// The `service.name` resource attribute. Without it: `OTEL_SERVICE_NAME`, then
    /// `service.name` in `OTEL_RESOURCE_ATTRIBUTES`, then the executable's name.
    ///
    /// ```
    /// let builder = eventsource_runtime::telemetry::Telemetry::builder().service_name("orders");
    /// # drop(builder);
    /// ```
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.options.service_name = Some(name.into());
        self
    }

    /// Prints finished traces as trees (`true`) or not (`false`), whatever
    /// `OTEL_TRACES_EXPORTER` and the OTLP endpoint say. By default the console is on when
    /// no OTLP endpoint is configured.
    ///
    /// ```
    /// // Traces to the collector *and* on the console.
    /// let builder = eventsource_runtime::telemetry::Telemetry::builder().console(true);
    /// # drop(builder);
    /// ```
    pub fn console(mut self, on: bool) -> Self {
        self.options.console = Some(on);
        self
    }

    /// How much of each span the console shows, whatever `EVENTSOURCE_CONSOLE` says:
    /// [`ConsoleDetail::Compact`] (the default, one line per span) or [`ConsoleDetail::Full`]
    /// (every attribute).
    ///
    /// ```
    /// use eventsource_runtime::telemetry::{ConsoleDetail, Telemetry};
    /// let builder = Telemetry::builder().console_detail(ConsoleDetail::Full);
    /// # drop(builder);
    /// ```
    pub fn console_detail(mut self, detail: ConsoleDetail) -> Self {
        self.options.console_detail = Some(detail);
        self
    }

    /// How long dropping the [guard](TelemetryGuard) waits, at most, for the last spans and
    /// metrics to be exported (default 2 s; also `EVENTSOURCE_TELEMETRY_SHUTDOWN_TIMEOUT`, in
    /// milliseconds). When it runs out, one line says how many spans were not confirmed
    /// sent, and the program goes on exiting.
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = eventsource_runtime::telemetry::Telemetry::builder()
    ///     .shutdown_timeout(Duration::from_millis(500));
    /// # drop(builder);
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.options.shutdown_timeout = Some(timeout);
        self
    }

    /// Where the console traces, the log lines and the setup warnings go (default: stderr).
    ///
    /// ```
    /// let builder = eventsource_runtime::telemetry::Telemetry::builder().writer(std::io::stdout());
    /// # drop(builder);
    /// ```
    pub fn writer(mut self, writer: impl Write + Send + 'static) -> Self {
        self.writer = Some(SharedWriter::new(writer));
        self
    }

    /// Sets telemetry up; on failure prints one warning line and returns a guard that does
    /// nothing. Never panics.
    ///
    /// ```
    /// let _telemetry = eventsource_runtime::telemetry::Telemetry::builder()
    ///     .service_name("orders")
    ///     .writer(std::io::sink())
    ///     .init();
    /// tracing::info_span!("work").in_scope(|| tracing::info!("done"));
    /// ```
    #[must_use = "telemetry is shut down when the guard is dropped"]
    pub fn init(self) -> TelemetryGuard {
        let mut out = self.writer.clone().unwrap_or_else(SharedWriter::stderr);
        match self.try_init() {
            Ok(guard) => guard,
            Err(error) => {
                let mut line = format!("telemetry disabled: {error}");
                let mut source = std::error::Error::source(&error);
                while let Some(cause) = source {
                    line.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                warn(&mut out, &line);
                TelemetryGuard { inner: None }
            }
        }
    }

    /// Sets telemetry up: the global `tracing` subscriber (OpenTelemetry layer and log
    /// lines), the global tracer and meter providers and the W3C propagator.
    ///
    /// # Errors
    /// [`InitError::SubscriberAlreadySet`] when a global `tracing` subscriber is already
    /// set (by an earlier call, or by the application); an exporter or runtime error when
    /// OTLP export cannot be set up. Nothing global is changed then.
    ///
    /// ```
    /// use eventsource_runtime::telemetry::{InitError, Telemetry};
    ///
    /// let first = Telemetry::builder().writer(std::io::sink()).try_init();
    /// assert!(first.is_ok());
    /// let second = Telemetry::builder().writer(std::io::sink()).try_init();
    /// assert!(matches!(second, Err(InitError::SubscriberAlreadySet(_))));
    /// ```
    pub fn try_init(self) -> Result<TelemetryGuard, InitError> {
        let env = |key: &str| std::env::var(key).ok();
        crate::telemetry::secrets::hide_otlp_secrets(&env);
        let settings = Settings::resolve(&self.options, &env, executable_name().as_deref());
        let (out, ansi) = match self.writer {
            Some(writer) => (writer, false),
            None => (
                SharedWriter::stderr(),
                std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            ),
        };
        install(settings, out, ansi)
    }
}

/// What [`TelemetryBuilder::try_init`] can fail with.
///
/// ```
/// use eventsource_runtime::telemetry::{InitError, Telemetry};
///
/// match Telemetry::builder().writer(std::io::sink()).try_init() {
///     Ok(_guard) => {}
///     Err(InitError::SubscriberAlreadySet(_)) => { /* the application set its own */ }
///     Err(other) => eprintln!("no telemetry: {other}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// A global `tracing` subscriber is already set.
    #[error("a global tracing subscriber is already set")]
    SubscriberAlreadySet(#[source] tracing_subscriber::util::TryInitError),
    /// The OTLP span exporter could not be built (a malformed endpoint, for instance).
    #[cfg(feature = "otlp")]
    #[error("the OTLP span exporter cannot be built")]
    SpanExporter(#[source] opentelemetry_otlp::ExporterBuildError),
    /// The OTLP metric exporter could not be built.
    #[cfg(feature = "otlp")]
    #[error("the OTLP metric exporter cannot be built")]
    MetricExporter(#[source] opentelemetry_otlp::ExporterBuildError),
    /// A TLS file named by `variable` (`OTEL_EXPORTER_OTLP_CERTIFICATE`,
    /// `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`, `OTEL_EXPORTER_OTLP_CLIENT_KEY` or a per-signal
    /// variant) cannot be read or used, or a client certificate comes without its key.
    #[cfg(feature = "otlp")]
    #[error("{variable}: {problem}")]
    Tls {
        /// The variable that named the file.
        variable: String,
        /// What is wrong, and with which file.
        problem: String,
    },
    /// The Tokio runtime that runs the gRPC exporters could not be started.
    #[cfg(feature = "otlp")]
    #[error("the runtime of the gRPC exporters cannot be started")]
    Runtime(#[source] std::io::Error),
}

// ---- installation ---------------------------------------------------------------------------

fn install(
    settings: Settings,
    mut out: SharedWriter,
    ansi: bool,
) -> Result<TelemetryGuard, InitError> {
    for warning in &settings.warnings {
        warn(&mut out, warning);
    }

    let mut resource = Resource::builder();
    if let Some(name) = &settings.service_name {
        resource = resource.with_service_name(name.clone());
    }
    let resource = resource.build();
    // The runtime's spans under its own scope; the others (the application's, its HTTP
    // server's) under one named after the service.
    let service = resource
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .map_or_else(|| "unknown_service".to_owned(), |name| name.to_string());

    #[cfg(feature = "otlp")]
    let runtime = if settings.traces_otlp == Some(settings::OtlpProtocol::Grpc)
        || settings.metrics_otlp == Some(settings::OtlpProtocol::Grpc)
    {
        Some(export::ExportRuntime::start().map_err(InitError::Runtime)?)
    } else {
        None
    };

    let health = ExportHealth::new(out.clone(), settings.traces_otlp.is_some());
    let console = settings
        .console
        .then(|| ConsoleExporter::with_shared(out.clone()).detail(settings.console_detail));
    let mut exporting = Exporting {
        #[cfg(feature = "otlp")]
        runtime: runtime.as_ref(),
        health: &health,
        #[cfg(feature = "otlp")]
        out: out.clone(),
    };
    let tracer_provider =
        exporting.tracer_provider(&settings, resource.clone(), console.as_ref())?;
    let meter_provider = match exporting.meter_provider(&settings, resource) {
        Ok(meters) => meters,
        Err(error) => {
            let _ = tracer_provider.shutdown();
            return Err(error);
        }
    };

    let application = InstrumentationScope::builder(service).build();
    let drop_watch = DropWatch::new(Arc::clone(&health));
    let watched = |scope| WatchedTracer::new(tracer_provider.tracer_with_scope(scope), &drop_watch);
    let otel_layer = layer(watched(application))
        .with_library_tracer(watched(instrumentation_scope()))
        .with_filter(span_filter(&settings.log_directives));
    let fmt_layer = tracing_subscriber::fmt::layer()
        .event_format(LineFormat)
        .with_writer(BoxMakeWriter::new(out))
        .with_ansi(ansi)
        .with_filter(log_filter(&settings.log_directives));
    let installed = tracing_subscriber::registry()
        .with(otel_layer)
        .with(fmt_layer)
        .try_init();
    if let Err(error) = installed {
        let _ = tracer_provider.shutdown();
        if let Some(meters) = meter_provider {
            let _ = meters.shutdown();
        }
        return Err(InitError::SubscriberAlreadySet(error));
    }

    opentelemetry::global::set_tracer_provider(tracer_provider.clone());
    opentelemetry::global::set_text_map_propagator(crate::telemetry::propagation::propagator());
    if let Some(meters) = &meter_provider {
        opentelemetry::global::set_meter_provider(meters.clone());
    }
    crate::telemetry::otel::metrics::rebind();

    Ok(TelemetryGuard {
        inner: Some(Installed {
            tracer_provider,
            meter_provider,
            console,
            health,
            drop_watch,
            shutdown_timeout: settings.shutdown_timeout,
            installed_at: Instant::now(),
            #[cfg(feature = "otlp")]
            _runtime: runtime,
        }),
    })
}

/// A warning line shaped like the log lines, written directly (whatever `RUST_LOG` says).
fn warn(out: &mut SharedWriter, message: &str) {
    let mut now = String::new();
    let _ = tracing_subscriber::fmt::time::SystemTime.format_time(&mut Writer::new(&mut now));
    let _ = out.write_all(format!("{now}  WARN eventsource::telemetry: {message}\n").as_bytes());
    let _ = out.flush();
}

fn executable_name() -> Option<String> {
    let path = std::env::current_exe()
        .ok()
        .or_else(|| std::env::args_os().next().map(Into::into))?;
    Some(path.file_stem()?.to_string_lossy().into_owned())
}
