//! One builder per signal: the tracer provider (the span counter, the console, the OTLP span
//! exporter behind a batch processor) and the meter provider (the OTLP metric exporter behind
//! a periodic reader), each OTLP exporter wrapped to report what it could not send.

use std::sync::Arc;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{SdkTracerProvider, SimpleSpanProcessor};

use super::InitError;
use super::console::ConsoleExporter;
#[cfg(feature = "otlp")]
use super::console::SharedWriter;
#[cfg(feature = "otlp")]
use super::export;
use super::export_failures::{ExportHealth, SpanCounter};
use super::settings::Settings;
#[cfg(feature = "otlp")]
use super::{
    export_failures,
    settings::{HistogramAggregation, OtlpProtocol, TlsFiles},
    warn,
};

/// What the exporters of one `init` share: the runtime of the gRPC exporters, the export
/// health they report to, and where their setup warnings go.
pub(super) struct Exporting<'a> {
    #[cfg(feature = "otlp")]
    pub(super) runtime: Option<&'a export::ExportRuntime>,
    pub(super) health: &'a Arc<ExportHealth>,
    #[cfg(feature = "otlp")]
    pub(super) out: SharedWriter,
}

impl Exporting<'_> {
    /// The tracer provider: every ended span counted, printed by `console` if any, and sent
    /// over OTLP when the settings say so. The sampler (`OTEL_TRACES_SAMPLER`) and span
    /// limits are read by the SDK's builder itself.
    pub(super) fn tracer_provider(
        &mut self,
        settings: &Settings,
        resource: Resource,
        console: Option<&ConsoleExporter>,
    ) -> Result<SdkTracerProvider, InitError> {
        let mut builder = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_span_processor(SpanCounter(Arc::clone(self.health)));
        if let Some(console) = console {
            builder = builder.with_span_processor(SimpleSpanProcessor::new(console.clone()));
        }
        #[cfg(feature = "otlp")]
        if let Some(protocol) = settings.traces_otlp {
            let exporter = self.watched(
                export_failures::Signal::Spans,
                protocol,
                &settings.traces_tls,
                |setup, warnings| setup.span_exporter(warnings),
            )?;
            let processor = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
                .with_batch_config(settings.batch.config())
                .build();
            builder = builder.with_span_processor(processor);
        }
        #[cfg(not(feature = "otlp"))]
        let _ = settings;
        Ok(builder.build())
    }

    /// The meter provider, when metrics are sent over OTLP.
    #[cfg(feature = "otlp")]
    pub(super) fn meter_provider(
        &mut self,
        settings: &Settings,
        resource: Resource,
    ) -> Result<Option<SdkMeterProvider>, InitError> {
        let Some(protocol) = settings.metrics_otlp else {
            return Ok(None);
        };
        let exporter = self.watched(
            export_failures::Signal::Metrics,
            protocol,
            &settings.metrics_tls,
            |setup, warnings| setup.metric_exporter(warnings),
        )?;
        let builder = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_periodic_exporter(exporter);
        Ok(Some(match settings.histogram_aggregation {
            HistogramAggregation::ExplicitBuckets => builder.build(),
            HistogramAggregation::Base2Exponential => {
                builder.with_view(exponential_histograms).build()
            }
        }))
    }

    /// Without the `otlp` feature no metric is exported.
    #[cfg(not(feature = "otlp"))]
    pub(super) fn meter_provider(
        &mut self,
        _: &Settings,
        _: Resource,
    ) -> Result<Option<SdkMeterProvider>, InitError> {
        Ok(None)
    }

    /// The exporter of `signal` that `build` makes, wrapped to count what it sent and
    /// dropped; its setup warnings written out.
    #[cfg(feature = "otlp")]
    fn watched<E>(
        &mut self,
        signal: export_failures::Signal,
        protocol: OtlpProtocol,
        tls: &TlsFiles,
        build: impl FnOnce(&export::ExporterSetup<'_>, &mut Vec<String>) -> Result<E, InitError>,
    ) -> Result<export_failures::Watched<E>, InitError> {
        let target = export::target(protocol, signal, tls);
        let cause = Arc::default();
        let mut warnings = Vec::new();
        let setup = export::ExporterSetup {
            protocol,
            runtime: self.runtime,
            target: &target,
            signal,
            tls,
            cause: &cause,
        };
        let built = build(&setup, &mut warnings);
        for warning in &warnings {
            warn(&mut self.out, warning);
        }
        Ok(export_failures::Watched {
            inner: built?,
            health: Arc::clone(self.health),
            target,
            cause,
        })
    }
}

/// The view of `OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION=
/// base2_exponential_bucket_histogram`: every histogram with exponential buckets (the SDK's
/// defaults: 160 buckets, scale 20), instead of the contract's boundaries.
#[cfg(feature = "otlp")]
fn exponential_histograms(
    instrument: &opentelemetry_sdk::metrics::Instrument,
) -> Option<opentelemetry_sdk::metrics::Stream> {
    use opentelemetry_sdk::metrics::{Aggregation, InstrumentKind, Stream};
    (instrument.kind() == InstrumentKind::Histogram)
        .then(|| {
            Stream::builder()
                .with_aggregation(Aggregation::Base2ExponentialHistogram {
                    max_size: 160,
                    max_scale: 20,
                    record_min_max: true,
                })
                .build()
                .ok()
        })
        .flatten()
}
