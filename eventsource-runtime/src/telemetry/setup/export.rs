//! OTLP export (the `otlp` feature): the span and metric exporters for each protocol, and the
//! dedicated runtime the gRPC ones are built in and run on.

use opentelemetry_otlp::{ExporterBuildError, Protocol, WithExportConfig as _};

use super::health::{Signal, Target};
use super::settings::OtlpProtocol;

pub(super) use grpc::ExportRuntime;
use grpc::in_runtime;

/// The runtime of the gRPC exporters; without the `otlp-grpc` feature a twin that never
/// builds one (the settings never choose gRPC then: they warn instead).
#[cfg(feature = "otlp-grpc")]
mod grpc {
    use opentelemetry_otlp::ExporterBuildError;

    /// The Tokio runtime the gRPC exporters are built in and run on. Always a dedicated
    /// one: the application's runtime may be current-thread (a shutdown from its own thread
    /// would wait for its timeout and lose the spans) or may be gone before the guard is
    /// dropped.
    pub(in super::super) struct ExportRuntime(Option<tokio::runtime::Runtime>);

    impl ExportRuntime {
        pub(in super::super) fn start() -> std::io::Result<Self> {
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
            // A blocking drop panics inside an async context; the exporters are shut down
            // already.
            if let Some(rt) = self.0.take() {
                rt.shutdown_background();
            }
        }
    }

    pub(super) fn in_runtime<T>(
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
}

#[cfg(not(feature = "otlp-grpc"))]
mod grpc {
    use opentelemetry_otlp::ExporterBuildError;

    /// No gRPC, no runtime.
    pub(in super::super) struct ExportRuntime;

    impl ExportRuntime {
        pub(in super::super) fn start() -> std::io::Result<Self> {
            Ok(Self)
        }
    }

    pub(super) fn in_runtime<T>(
        _: Option<&ExportRuntime>,
        _: impl FnOnce() -> Result<T, ExporterBuildError>,
    ) -> Result<T, ExporterBuildError> {
        Err(ExporterBuildError::InternalFailure(
            "OTLP over grpc needs the `otlp-grpc` feature of eventsource-runtime".into(),
        ))
    }
}

/// Builds an exporter from its builder for `protocol`: gRPC inside the export runtime,
/// HTTP with an explicit protocol (with `http-json` compiled in, the exporter's own default
/// would be JSON). The endpoint, headers, timeout and compression come from the standard
/// variables, which the exporter reads itself (for HTTP it appends `/v1/traces` or
/// `/v1/metrics` to the generic endpoint).
#[cfg(feature = "otlp-grpc")]
macro_rules! grpc {
    ($builder:expr) => {
        $builder.with_tonic().build()
    };
}
#[cfg(not(feature = "otlp-grpc"))]
macro_rules! grpc {
    ($builder:expr) => {
        unreachable!("in_runtime never builds without the `otlp-grpc` feature")
    };
}

macro_rules! build_exporter {
    ($builder:expr, $protocol:expr, $runtime:expr) => {
        match $protocol {
            OtlpProtocol::Grpc => in_runtime($runtime, || grpc!($builder)),
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

/// Where `protocol` sends `signal`, as the exporter resolves it from the standard variables
/// (for the warning lines).
pub(super) fn target(protocol: OtlpProtocol, signal: Signal) -> Target {
    let env = |key: &str| std::env::var(key).ok().filter(|v| !v.trim().is_empty());
    let (specific, path) = match signal {
        Signal::Spans => ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "/v1/traces"),
        Signal::Metrics => ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "/v1/metrics"),
    };
    let grpc = protocol == OtlpProtocol::Grpc;
    let endpoint = env(specific).unwrap_or_else(|| {
        let base = env("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_else(|| {
            if grpc {
                "http://localhost:4317".to_owned()
            } else {
                "http://localhost:4318".to_owned()
            }
        });
        if grpc {
            base
        } else {
            format!("{}{path}", base.trim_end_matches('/'))
        }
    });
    Target {
        endpoint,
        protocol: match protocol {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
            OtlpProtocol::HttpJson => "http/json",
        },
    }
}
