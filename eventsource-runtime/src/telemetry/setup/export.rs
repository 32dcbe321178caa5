//! OTLP export (the `otlp` feature): the span and metric exporters for each protocol, and the
//! dedicated runtime the gRPC ones are built in and run on.

use opentelemetry_otlp::{ExporterBuildError, Protocol, WithExportConfig as _};

use super::settings::OtlpProtocol;

/// The Tokio runtime the gRPC exporters are built in and run on. Always a dedicated one: the
/// application's runtime may be current-thread (a shutdown from its own thread would wait for
/// its timeout and lose the spans) or may be gone before the guard is dropped.
pub(super) struct ExportRuntime(Option<tokio::runtime::Runtime>);

impl ExportRuntime {
    pub(super) fn start() -> std::io::Result<Self> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("eventsource-otlp")
            .enable_all()
            .build()
            .map(|rt| Self(Some(rt)))
    }
}

impl Drop for ExportRuntime {
    fn drop(&mut self) {
        // A blocking drop panics inside an async context; the exporters are shut down already.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

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

/// Builds an exporter from its builder for `protocol`: gRPC inside the export runtime,
/// HTTP with an explicit protocol (with `http-json` compiled in, the exporter's own default
/// would be JSON). The endpoint, headers, timeout and compression come from the standard
/// variables, which the exporter reads itself (for HTTP it appends `/v1/traces` or
/// `/v1/metrics` to the generic endpoint).
macro_rules! build_exporter {
    ($builder:expr, $protocol:expr, $runtime:expr) => {
        match $protocol {
            OtlpProtocol::Grpc => in_runtime($runtime, || $builder.with_tonic().build()),
            OtlpProtocol::HttpProtobuf => $builder
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .build(),
            OtlpProtocol::HttpJson => $builder
                .with_http()
                .with_protocol(Protocol::HttpJson)
                .build(),
        }
    };
}

pub(super) fn span_exporter(
    protocol: OtlpProtocol,
    runtime: Option<&ExportRuntime>,
) -> Result<opentelemetry_otlp::SpanExporter, ExporterBuildError> {
    build_exporter!(
        opentelemetry_otlp::SpanExporter::builder(),
        protocol,
        runtime
    )
}

pub(super) fn metric_exporter(
    protocol: OtlpProtocol,
    runtime: Option<&ExportRuntime>,
) -> Result<opentelemetry_otlp::MetricExporter, ExporterBuildError> {
    build_exporter!(
        opentelemetry_otlp::MetricExporter::builder(),
        protocol,
        runtime
    )
}
