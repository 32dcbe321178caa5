//! `telemetry::init()`: one call that sets up spans, metrics and log lines for an
//! application, configured from the standard OpenTelemetry environment variables (the table
//! is on [`init`]).

use std::fmt;
use std::io::{IsTerminal as _, Write};
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::{SdkTracerProvider, SimpleSpanProcessor};
use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime as _;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

use super::console::{ConsoleExporter, SharedWriter};

/// The instrumentation scope of the spans recorded through the `tracing` layer.
const SCOPE: &str = "eventsource";
/// The directives used when `RUST_LOG` is unset, empty or invalid.
const DEFAULT_LOG_FILTER: &str = "info";
/// Targets whose spans are never exported: the exporters' own HTTP/gRPC stack (exporting
/// them would feed the exporter with its own work) and OpenTelemetry's internal logs.
const UNTRACED_TARGETS: [&str; 6] = ["opentelemetry", "h2", "hyper", "tonic", "tower", "reqwest"];

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
/// | `OTEL_EXPORTER_OTLP_PROTOCOL` (or `_TRACES_` / `_METRICS_PROTOCOL`) | `grpc`, `http/protobuf` (default) or `http/json` |
/// | `OTEL_TRACES_EXPORTER` | `otlp`, `console`, both (`otlp,console`) or `none` (no span export, no console) |
/// | `OTEL_METRICS_EXPORTER` | `otlp` or `none` |
/// | `OTEL_SDK_DISABLED=true` | no span or metric export (log lines stay) |
/// | `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` | the resource; the service name defaults to the executable's name |
/// | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | the sampler (read by the SDK; default `parentbased_always_on`) |
/// | `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` | the OTLP batch span processor (which ignores `OTEL_BSP_EXPORT_TIMEOUT`: the export timeout is `OTEL_EXPORTER_OTLP_TIMEOUT`) |
/// | `OTEL_EXPORTER_OTLP_HEADERS`, `_TIMEOUT`, `_COMPRESSION`, `OTEL_METRIC_EXPORT_INTERVAL`, … | read by the exporters themselves |
/// | `RUST_LOG` | the log lines, default `info` (OpenTelemetry's own targets are off unless named). Spans are recorded at `info` and above whatever its default level says (more when it is more verbose); its per-target directives apply to spans too |
///
/// A bad value never panics: it is reported as one warning line and the default is used.
///
/// Never panics: if telemetry cannot be set up (another global `tracing` subscriber, an
/// exporter that fails to build), it prints one warning line and returns a guard that
/// does nothing. Use [`TelemetryBuilder::try_init`] to handle the error.
///
/// Keep the guard alive for the life of the program: dropping it flushes the spans still
/// buffered and shuts the exporters down.
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
    /// The Tokio runtime that runs the gRPC exporters could not be started.
    #[cfg(feature = "otlp")]
    #[error("the runtime of the gRPC exporters cannot be started")]
    Runtime(#[source] std::io::Error),
}

/// Keeps telemetry running; dropping it flushes what is buffered (console traces, OTLP
/// batches, metrics) and shuts the providers down.
///
/// ```
/// let guard = eventsource_runtime::telemetry::Telemetry::builder()
///     .writer(std::io::sink())
///     .init();
/// tracing::info_span!("work").in_scope(|| {});
/// guard.force_flush();
/// drop(guard); // shut down
/// ```
#[must_use = "telemetry is shut down when the guard is dropped"]
pub struct TelemetryGuard {
    inner: Option<Installed>,
}

struct Installed {
    tracer_provider: SdkTracerProvider,
    meter_provider: Option<SdkMeterProvider>,
    console: Option<ConsoleExporter>,
    #[cfg(feature = "otlp")]
    _runtime: Option<ExportRuntime>,
}

impl fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("TelemetryGuard");
        s.field("active", &self.inner.is_some());
        if let Some(inner) = &self.inner {
            s.field("console", &inner.console.is_some())
                .field("metrics", &inner.meter_provider.is_some());
        }
        s.finish()
    }
}

impl TelemetryGuard {
    /// Whether telemetry was set up (`false` for the guard [`init`] returns after a
    /// failure).
    ///
    /// ```
    /// let guard = eventsource_runtime::telemetry::Telemetry::builder()
    ///     .writer(std::io::sink())
    ///     .init();
    /// println!("telemetry on: {}", guard.is_active());
    /// ```
    #[must_use]
    pub fn is_active(&self) -> bool {
        self.inner.is_some()
    }

    /// Exports what is buffered now: OTLP batches, metrics, and the console traces whose
    /// root has not ended yet (printed as incomplete).
    ///
    /// ```
    /// let guard = eventsource_runtime::telemetry::Telemetry::builder()
    ///     .writer(std::io::sink())
    ///     .init();
    /// guard.force_flush();
    /// ```
    pub fn force_flush(&self) {
        let Some(inner) = &self.inner else { return };
        let _ = inner.tracer_provider.force_flush();
        if let Some(console) = &inner.console {
            let _ = opentelemetry_sdk::trace::SpanExporter::force_flush(console);
        }
        if let Some(meters) = &inner.meter_provider {
            let _ = meters.force_flush();
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            inner.shutdown();
        }
    }
}

impl Installed {
    fn shutdown(self) {
        // The batch processor and the periodic reader export from their own threads and
        // the gRPC transport runs on its own runtime, so this is safe on any thread,
        // async or not. The runtime goes last (`shutdown_background`, never a blocking drop).
        let _ = self.tracer_provider.shutdown();
        if let Some(meters) = self.meter_provider {
            let _ = meters.shutdown();
        }
    }
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

    #[cfg(feature = "otlp")]
    let runtime = if settings.traces_otlp == Some(OtlpProtocol::Grpc)
        || settings.metrics_otlp == Some(OtlpProtocol::Grpc)
    {
        Some(ExportRuntime::start().map_err(InitError::Runtime)?)
    } else {
        None
    };

    // The sampler (OTEL_TRACES_SAMPLER) and span limits are read by the builder itself.
    let mut tracer_provider = SdkTracerProvider::builder().with_resource(resource.clone());
    let console = settings
        .console
        .then(|| ConsoleExporter::with_shared(out.clone()));
    if let Some(console) = &console {
        tracer_provider =
            tracer_provider.with_span_processor(SimpleSpanProcessor::new(console.clone()));
    }
    #[cfg(feature = "otlp")]
    if let Some(protocol) = settings.traces_otlp {
        let exporter =
            otlp::span_exporter(protocol, runtime.as_ref()).map_err(InitError::SpanExporter)?;
        let processor = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
            .with_batch_config(settings.batch.config())
            .build();
        tracer_provider = tracer_provider.with_span_processor(processor);
    }
    let tracer_provider = tracer_provider.build();

    #[cfg(feature = "otlp")]
    let meter_provider = match settings.metrics_otlp {
        Some(protocol) => match otlp::metric_exporter(protocol, runtime.as_ref()) {
            Ok(exporter) => Some(
                SdkMeterProvider::builder()
                    .with_resource(resource)
                    .with_periodic_exporter(exporter)
                    .build(),
            ),
            Err(error) => {
                let _ = tracer_provider.shutdown();
                return Err(InitError::MetricExporter(error));
            }
        },
        None => None,
    };
    #[cfg(not(feature = "otlp"))]
    let meter_provider: Option<SdkMeterProvider> = {
        drop(resource);
        None
    };

    let scope = InstrumentationScope::builder(SCOPE)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    let otel_layer = super::layer(tracer_provider.tracer_with_scope(scope))
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
    opentelemetry::global::set_text_map_propagator(
        opentelemetry::propagation::TextMapCompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(BaggagePropagator::new()),
        ]),
    );
    if let Some(meters) = &meter_provider {
        opentelemetry::global::set_meter_provider(meters.clone());
    }
    super::metrics::rebind();

    Ok(TelemetryGuard {
        inner: Some(Installed {
            tracer_provider,
            meter_provider,
            console,
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

/// The log lines' filter: `RUST_LOG`, without OpenTelemetry's internal logs unless asked.
fn log_filter(directives: &str) -> EnvFilter {
    let filter = EnvFilter::builder().parse_lossy(directives);
    if directives.contains("opentelemetry") {
        return filter;
    }
    match "opentelemetry=off".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

/// The spans' filter: [`span_directives`], never the exporters' own stack.
fn span_filter(log_directives: &str) -> EnvFilter {
    UNTRACED_TARGETS
        .iter()
        .filter_map(|target| format!("{target}=off").parse().ok())
        .fold(
            EnvFilter::builder().parse_lossy(span_directives(log_directives)),
            |filter, d| filter.add_directive(d),
        )
}

/// The spans' directives: `RUST_LOG`'s, with the default level at least `info`, so that
/// `RUST_LOG=warn` quiets the log lines without dropping the (info-level) spans. Directives
/// naming a target are kept as they are.
fn span_directives(log_directives: &str) -> String {
    use std::str::FromStr as _;
    use tracing::level_filters::LevelFilter;

    let mut default = LevelFilter::INFO;
    let mut targeted = Vec::new();
    for directive in log_directives
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        match LevelFilter::from_str(directive) {
            Ok(level) => default = default.max(level),
            Err(_) => targeted.push(directive),
        }
    }
    std::iter::once(default.to_string().to_ascii_lowercase())
        .chain(targeted.into_iter().map(str::to_owned))
        .collect::<Vec<_>>()
        .join(",")
}

/// Log lines as `<time> <LEVEL> <target>: <message> <fields> trace_id=… span_id=…`, the ids
/// of the span the event happened in (its OpenTelemetry context, made current when a span is
/// entered).
struct LineFormat;

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let ansi = w.has_ansi_escapes();
        let (dim, reset) = if ansi {
            ("\x1b[2m", "\x1b[0m")
        } else {
            ("", "")
        };
        w.write_str(dim)?;
        tracing_subscriber::fmt::time::SystemTime.format_time(&mut w)?;
        w.write_str(reset)?;
        let level = *meta.level();
        if ansi {
            let color = match level {
                tracing::Level::ERROR => "\x1b[31m",
                tracing::Level::WARN => "\x1b[33m",
                tracing::Level::INFO => "\x1b[32m",
                tracing::Level::DEBUG => "\x1b[34m",
                tracing::Level::TRACE => "\x1b[35m",
            };
            write!(w, " {color}{level:>5}{reset} ")?;
        } else {
            write!(w, " {level:>5} ")?;
        }
        write!(w, "{dim}{}:{reset} ", meta.target())?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        let cx = opentelemetry::Context::current();
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            write!(
                w,
                " {dim}trace_id={} span_id={}{reset}",
                sc.trace_id(),
                sc.span_id()
            )?;
        }
        writeln!(w)
    }
}

// ---- OTLP -----------------------------------------------------------------------------------

/// The Tokio runtime the gRPC exporters are built in and run on. Always a dedicated one: the
/// application's runtime may be current-thread (a shutdown from its own thread would wait for
/// its timeout and lose the spans) or may be gone before the guard is dropped.
#[cfg(feature = "otlp")]
struct ExportRuntime(Option<tokio::runtime::Runtime>);

#[cfg(feature = "otlp")]
impl ExportRuntime {
    fn start() -> std::io::Result<Self> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("eventsource-otlp")
            .enable_all()
            .build()
            .map(|rt| Self(Some(rt)))
    }
}

#[cfg(feature = "otlp")]
impl Drop for ExportRuntime {
    fn drop(&mut self) {
        // A blocking drop panics inside an async context; the exporters are shut down already.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(feature = "otlp")]
mod otlp {
    use opentelemetry_otlp::{ExporterBuildError, Protocol, WithExportConfig as _};

    use super::{ExportRuntime, OtlpProtocol};

    fn in_runtime<T>(
        runtime: Option<&ExportRuntime>,
        build: impl FnOnce() -> Result<T, ExporterBuildError>,
    ) -> Result<T, ExporterBuildError> {
        match runtime.and_then(|rt| rt.0.as_ref()) {
            Some(rt) => {
                let _entered = rt.enter();
                build()
            }
            None => Err(ExporterBuildError::InternalFailure(
                "no runtime for the gRPC exporter".into(),
            )),
        }
    }

    /// The endpoint, headers, timeout and compression come from the standard variables, which
    /// the exporter reads itself (for HTTP it appends `/v1/traces` to the generic endpoint).
    /// The protocol is always explicit: with `http-json` compiled in, the exporter's own
    /// default would be JSON.
    pub(super) fn span_exporter(
        protocol: OtlpProtocol,
        runtime: Option<&ExportRuntime>,
    ) -> Result<opentelemetry_otlp::SpanExporter, ExporterBuildError> {
        let builder = opentelemetry_otlp::SpanExporter::builder();
        match protocol {
            OtlpProtocol::Grpc => in_runtime(runtime, || builder.with_tonic().build()),
            OtlpProtocol::HttpProtobuf => builder
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .build(),
            OtlpProtocol::HttpJson => builder
                .with_http()
                .with_protocol(Protocol::HttpJson)
                .build(),
        }
    }

    pub(super) fn metric_exporter(
        protocol: OtlpProtocol,
        runtime: Option<&ExportRuntime>,
    ) -> Result<opentelemetry_otlp::MetricExporter, ExporterBuildError> {
        let builder = opentelemetry_otlp::MetricExporter::builder();
        match protocol {
            OtlpProtocol::Grpc => in_runtime(runtime, || builder.with_tonic().build()),
            OtlpProtocol::HttpProtobuf => builder
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .build(),
            OtlpProtocol::HttpJson => builder
                .with_http()
                .with_protocol(Protocol::HttpJson)
                .build(),
        }
    }
}

// ---- configuration from the environment -----------------------------------------------------

/// What the builder was told in code.
#[derive(Debug, Clone, Default)]
struct Options {
    service_name: Option<String>,
    console: Option<bool>,
}

/// An OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "otlp"), allow(dead_code))]
enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

/// The batch span processor's settings, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchSettings {
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
    fn config(&self) -> opentelemetry_sdk::trace::BatchConfig {
        opentelemetry_sdk::trace::BatchConfigBuilder::default()
            .with_scheduled_delay(self.scheduled_delay)
            .with_max_queue_size(self.max_queue_size)
            .with_max_export_batch_size(self.max_export_batch_size)
            .build()
    }
}

/// Everything `init` does, decided from the options and the environment.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    console: bool,
    traces_otlp: Option<OtlpProtocol>,
    metrics_otlp: Option<OtlpProtocol>,
    /// Set explicitly on the resource; `None` leaves it to the SDK's detectors.
    service_name: Option<String>,
    log_directives: String,
    batch: BatchSettings,
    warnings: Vec<String>,
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

impl Settings {
    /// `env` looks a variable up (empty counts as unset); `exe` is the executable's name.
    fn resolve(options: &Options, env: &dyn Fn(&str) -> Option<String>, exe: Option<&str>) -> Self {
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
        let traces_otlp = exporters.otlp.then(|| {
            protocol(
                &[
                    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
                    OTEL_EXPORTER_OTLP_PROTOCOL,
                ],
                &env,
                &mut warnings,
            )
        });
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
        let metrics_otlp = metrics.then(|| {
            protocol(
                &[
                    OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
                    OTEL_EXPORTER_OTLP_PROTOCOL,
                ],
                &env,
                &mut warnings,
            )
        });

        let (log_directives, log_warning) = log_directives(env(RUST_LOG).as_deref());
        warnings.extend(log_warning);

        Settings {
            console,
            traces_otlp,
            metrics_otlp,
            service_name: service_name(
                options.service_name.as_deref(),
                env(OTEL_SERVICE_NAME).as_deref(),
                env(OTEL_RESOURCE_ATTRIBUTES).as_deref(),
                exe,
            ),
            log_directives,
            batch,
            warnings,
        }
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
        Some(directives) => match EnvFilter::builder().parse(directives) {
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
mod tests {
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
        };
        let s = resolve(
            &[
                (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
                (OTEL_SERVICE_NAME, "from-env"),
            ],
            options,
        );
        assert!(s.console && s.traces_otlp.is_some());
        assert_eq!(s.service_name.as_deref(), Some("billing"));
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
    fn spans_are_recorded_at_info_at_least() {
        assert_eq!(span_directives("info"), "info");
        assert_eq!(span_directives("warn"), "info");
        assert_eq!(span_directives("off"), "info");
        assert_eq!(span_directives("debug"), "debug");
        assert_eq!(span_directives("warn,sqlx=off"), "info,sqlx=off");
        assert_eq!(
            span_directives("eventsource=debug"),
            "info,eventsource=debug"
        );
        assert_eq!(span_directives("trace, hyper=info"), "trace,hyper=info");
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
}
