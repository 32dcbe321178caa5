//! OTLP export (the `otlp` feature): the span and metric exporters for each protocol, the
//! HTTP client they send with (TLS with the `tls` feature), and the dedicated runtime the gRPC
//! ones are built in and run on.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};

use super::InitError;
use super::export_failures::{Signal, Target, TransportCause};
use super::settings::{OtlpProtocol, TlsFiles};
use super::tls::TlsMaterial;

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

/// Builds an exporter from its builder for `protocol`: gRPC inside the export runtime (with
/// the TLS settings for an `https` endpoint), HTTP with an explicit protocol (with `http-json`
/// compiled in, the exporter's own default would be JSON) and eventsource's HTTP client. The
/// endpoint, headers, timeout and compression come from the standard variables, which the
/// exporter reads itself (for HTTP it appends `/v1/traces` or `/v1/metrics` to the generic
/// endpoint).
#[cfg(feature = "otlp-grpc")]
macro_rules! grpc {
    ($builder:expr, $target:expr, $material:expr) => {{
        use opentelemetry_otlp::WithTonicConfig as _;
        let builder = $builder.with_tonic();
        if $target.is_https() {
            builder
                .with_tls_config(super::tls::grpc_config($material))
                .build()
        } else {
            builder.build()
        }
    }};
}
#[cfg(not(feature = "otlp-grpc"))]
macro_rules! grpc {
    ($builder:expr, $target:expr, $material:expr) => {{
        let _ = (&$target, &$material);
        unreachable!("in_runtime never builds without the `otlp-grpc` feature")
    }};
}

/// The exporter's encoding for an HTTP protocol. The settings only ask for `http/json` in a
/// build with the `otlp-json` feature (they fall back to `http/protobuf` otherwise).
fn http_encoding(protocol: OtlpProtocol) -> Protocol {
    match protocol {
        #[cfg(feature = "otlp-json")]
        OtlpProtocol::HttpJson => Protocol::HttpJson,
        _ => Protocol::HttpBinary,
    }
}

macro_rules! build_exporter {
    ($builder:expr, $protocol:expr, $runtime:expr, $target:expr, $material:expr, $client:expr) => {
        match $protocol {
            OtlpProtocol::Grpc => in_runtime($runtime, || grpc!($builder, $target, $material)),
            http @ (OtlpProtocol::HttpProtobuf | OtlpProtocol::HttpJson) => $builder
                .with_http()
                .with_protocol(http_encoding(http))
                .with_http_client($client()?)
                .build(),
        }
    };
}

/// What building one signal's exporter needs.
pub(super) struct ExporterSetup<'a> {
    pub(super) protocol: OtlpProtocol,
    pub(super) runtime: Option<&'a ExportRuntime>,
    pub(super) target: &'a Target,
    pub(super) signal: Signal,
    pub(super) tls: &'a TlsFiles,
    /// Where the HTTP client keeps the cause of its last failure.
    pub(super) cause: &'a Arc<TransportCause>,
}

impl ExporterSetup<'_> {
    pub(super) fn span_exporter(
        &self,
        warnings: &mut Vec<String>,
    ) -> Result<opentelemetry_otlp::SpanExporter, InitError> {
        let material = self.tls_material(warnings)?;
        let mut client = || self.http_client(&material, warnings);
        build_exporter!(
            opentelemetry_otlp::SpanExporter::builder(),
            self.protocol,
            self.runtime,
            self.target,
            &material,
            client
        )
        .map_err(InitError::SpanExporter)
    }

    pub(super) fn metric_exporter(
        &self,
        warnings: &mut Vec<String>,
    ) -> Result<opentelemetry_otlp::MetricExporter, InitError> {
        let material = self.tls_material(warnings)?;
        let mut client = || self.http_client(&material, warnings);
        build_exporter!(
            opentelemetry_otlp::MetricExporter::builder(),
            self.protocol,
            self.runtime,
            self.target,
            &material,
            client
        )
        .map_err(InitError::MetricExporter)
    }

    /// The TLS files, read when the endpoint is `https` (else they do not matter).
    fn tls_material(&self, warnings: &mut Vec<String>) -> Result<TlsMaterial, InitError> {
        if !self.target.is_https() {
            return Ok(TlsMaterial::default());
        }
        if let Some(warning) = self.tls_missing(cfg!(feature = "tls")) {
            warnings.push(warning);
            return Ok(TlsMaterial::default());
        }
        TlsMaterial::read(self.tls)
    }

    /// The warning for an `https` endpoint over HTTP in a build without `tls` (gRPC's TLS
    /// comes with `otlp-grpc`).
    fn tls_missing(&self, tls_built: bool) -> Option<String> {
        (self.target.is_https() && self.protocol != OtlpProtocol::Grpc && !tls_built).then(|| {
            format!(
                "{} is https, which needs the `tls` feature of eventsource-runtime (this build \
                 lacks it): {} will not be exported",
                self.target.endpoint,
                self.signal.name()
            )
        })
    }

    /// The HTTP client: blocking (the exporters call it from their own threads), with the
    /// export timeout, no redirects, the proxy the usual variables name (`HTTPS_PROXY`,
    /// `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`), and TLS for an `https` endpoint.
    fn http_client(
        &self,
        material: &TlsMaterial,
        warnings: &mut Vec<String>,
    ) -> Result<HttpClient, InitError> {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(export_timeout(self.signal)))
            .http_status_as_error(false)
            .max_redirects(0);
        #[cfg(feature = "tls")]
        let config = if self.target.is_https() {
            config.tls_config(super::tls::http_config(material, warnings)?)
        } else {
            config
        };
        #[cfg(not(feature = "tls"))]
        let _ = (material, warnings);
        Ok(HttpClient {
            agent: ureq::Agent::new_with_config(config.build()),
            cause: Arc::clone(self.cause),
        })
    }
}

/// The export timeout, as the exporter resolves it: the per-signal variable, the generic
/// one, else 10 s.
fn export_timeout(signal: Signal) -> Duration {
    let specific = match signal {
        Signal::Spans => "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        Signal::Metrics => "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
    };
    [specific, "OTEL_EXPORTER_OTLP_TIMEOUT"]
        .into_iter()
        .find_map(|key| std::env::var(key).ok()?.trim().parse::<u64>().ok())
        .map_or(
            opentelemetry_otlp::OTEL_EXPORTER_OTLP_TIMEOUT_DEFAULT,
            Duration::from_millis,
        )
}

/// The largest collector answer read (the OTLP answers are small; a partial-success message
/// at most).
const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;

/// The OTLP/HTTP client (ureq: blocking and small, no async runtime of its own).
#[derive(Debug)]
pub(super) struct HttpClient {
    agent: ureq::Agent,
    cause: Arc<TransportCause>,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for HttpClient {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<
        opentelemetry_http::Response<opentelemetry_http::Bytes>,
        opentelemetry_http::HttpError,
    > {
        let (parts, body) = request.into_parts();
        let response = self
            .agent
            .run(ureq::http::Request::from_parts(parts, body.to_vec()))
            .inspect_err(|error| self.cause.set(error.to_string()))?;
        let (parts, mut body) = response.into_parts();
        let bytes = body
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .inspect_err(|error| self.cause.set(format!("reading the answer: {error}")))?;
        Ok(opentelemetry_http::Response::from_parts(
            parts,
            opentelemetry_http::Bytes::from(bytes),
        ))
    }
}

/// Where `protocol` sends `signal`, as the exporter resolves it from the standard variables,
/// and whether `tls` names a client certificate (for the warning lines).
pub(super) fn target(protocol: OtlpProtocol, signal: Signal, tls: &TlsFiles) -> Target {
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
        client_certificate: tls.client_certificate.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_over_http_without_the_tls_feature_is_one_warning_naming_it() {
        let setup = |endpoint: &str, protocol| {
            let target = Target {
                endpoint: endpoint.to_owned(),
                protocol: "http/protobuf",
                client_certificate: false,
            };
            ExporterSetup {
                protocol,
                runtime: None,
                target: &target,
                signal: Signal::Spans,
                tls: &TlsFiles::default(),
                cause: &Arc::default(),
            }
            .tls_missing(false)
        };
        assert_eq!(
            setup("HTTPS://collector/v1/traces", OtlpProtocol::HttpProtobuf).as_deref(),
            Some(
                "HTTPS://collector/v1/traces is https, which needs the `tls` feature of \
                 eventsource-runtime (this build lacks it): spans will not be exported"
            )
        );
        assert_eq!(
            setup("http://collector/v1/traces", OtlpProtocol::HttpJson),
            None
        );
        assert_eq!(setup("https://collector", OtlpProtocol::Grpc), None);
    }
}
