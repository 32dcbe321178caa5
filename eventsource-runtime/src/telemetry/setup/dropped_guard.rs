//! A guard dropped right after `init` (`let _ = telemetry::init();` drops it at once): said
//! when the program goes on to start spans that nothing will export, not when it simply ends
//! (a program that stops on an error within a second of `init` held its guard all along).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::Context;
use opentelemetry::trace::{SpanBuilder, Tracer};
use opentelemetry_sdk::trace::{SdkTracer, Span};

use super::export_failures::ExportHealth;

/// Whether the guard was dropped right after `init`, and whether that was said.
#[derive(Debug)]
pub(super) struct DropWatch {
    dropped_early: AtomicBool,
    told: AtomicBool,
    health: Arc<ExportHealth>,
}

impl DropWatch {
    pub(super) fn new(health: Arc<ExportHealth>) -> Arc<Self> {
        Arc::new(Self {
            dropped_early: AtomicBool::new(false),
            told: AtomicBool::new(false),
            health,
        })
    }

    /// The guard was dropped right after `init`, before any span ended: the next span
    /// started says so.
    pub(super) fn dropped_early(&self) {
        self.dropped_early.store(true, Ordering::Release);
    }

    /// A span is starting: after an early drop, the first one says that telemetry is off.
    fn span_starting(&self) {
        if self.dropped_early.load(Ordering::Acquire) && !self.told.swap(true, Ordering::AcqRel) {
            self.health.line(
                "the telemetry guard was dropped right after init, before any span ended, and \
                 spans go on starting: telemetry is off since then, they are not exported. \
                 `let _ = telemetry::init();` drops it at once; keep it for the life of the \
                 program (`let _telemetry = telemetry::init();`)",
            );
        }
    }
}

/// The SDK's tracer, watching for spans started after an early drop of the guard.
#[derive(Debug, Clone)]
pub(super) struct WatchedTracer {
    tracer: SdkTracer,
    watch: Arc<DropWatch>,
}

impl WatchedTracer {
    pub(super) fn new(tracer: SdkTracer, watch: &Arc<DropWatch>) -> Self {
        Self {
            tracer,
            watch: Arc::clone(watch),
        }
    }
}

impl Tracer for WatchedTracer {
    type Span = Span;

    fn build_with_context(&self, builder: SpanBuilder, parent_cx: &Context) -> Self::Span {
        self.watch.span_starting();
        self.tracer.build_with_context(builder, parent_cx)
    }
}
