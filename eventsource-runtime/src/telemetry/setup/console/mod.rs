//! The console renderer: each finished trace as an indented tree, for development.
//!
//! [`ConsoleExporter`] is an OpenTelemetry [`SpanExporter`]. It buffers spans per trace and
//! prints a trace when its root span ends (children end before their root), so a command's
//! load, save, store and projection spans come out as one story. Nothing is lost: spans
//! still buffered (a root that has not ended yet, a child that outlived its root) are
//! printed on `force_flush` and `shutdown`, marked as incomplete or continued.
//!
//! This module is the exporter; [`buffer`] holds spans per trace until they can print,
//! [`render`] turns one trace into text, [`writer`] is the output shared with the log lines.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use buffer::TraceBuffer;
pub(crate) use writer::SharedWriter;

mod attributes;
mod buffer;
mod render;
#[cfg(test)]
mod tests;
mod writer;

/// Spans buffered at most before the oldest trace is printed as incomplete.
const MAX_BUFFERED_SPANS: usize = 10_000;
/// Printed spans whose names are remembered for later links.
const MAX_REMEMBERED_NAMES: usize = 4_096;
/// How long a trace linked to a trace still in progress waits to be printed after it.
const MAX_DEFER: Duration = Duration::from_secs(5);
/// Attributes on a span's line in the full view; more wrap onto lines of their own below it.
const ATTRIBUTES_PER_LINE: usize = 8;
/// Attributes on a span's line in the compact view.
const STORY_ATTRIBUTES: usize = 3;
/// Characters shown of one attribute value.
const MAX_VALUE_CHARS: usize = 48;
/// Items shown of an array value.
const MAX_ARRAY_ITEMS: usize = 6;

/// A [`SpanExporter`] that prints each finished trace as an indented tree, one line per span:
/// its name, duration, the attributes that tell its story, its links and its error.
/// `telemetry::init()` installs it when no OTLP endpoint is configured.
///
/// Use it with a `SimpleSpanProcessor` (spans reach it as they end). Clones share the
/// buffer, so keep one to call [`SpanExporter::force_flush`] on: the simple processor does
/// not forward its own `force_flush`.
///
/// A trace looks like this in the compact view, the default:
///
/// ```text
/// trace 4bf92f3577b34da6a3ce929d0e0e4736
/// command.ShipOrder  1.42ms  eventsource.aggregate.id=order-2  ✗ error: order order-2 is cancelled
/// ├─ eventsource.repository.load  310µs  eventsource.events.replayed=2 eventsource.version=2
/// │  └─ eventsource.event_store.load  120µs  eventsource.events.loaded=2
/// └─ …
/// ```
///
/// A span's line shows at most three attributes, the first it has of
/// `eventsource.aggregate.id`, `.handler.name`, `.projection.name`, `.event.type`,
/// `.delivery.mode`, `.delivery.attempt`, the flags `.command.duplicate` and
/// `.handler.duplicate` when set, `.event.count`, `.events.replayed`, `.events.loaded`,
/// `.query.result_count`, `.version`, `.expected_version`, `messaging.destination.name` and
/// `messaging.batch.message_count`, then the application's own (keys outside the
/// `eventsource.`, `db.`, `messaging.`, `cqrs.`, `server.`, `network.`, `error.` namespaces).
/// Not repeated: an attribute equal to the parent span's, or an `eventsource.*` one already
/// spelled in the span name (`command.type` on `command.PlaceOrder`). A link reads
/// `↳ linked to <name> in trace <trace_id>` when the linked span was seen,
/// `↳ linked to <trace_id>/<span_id>` when it was not. A
/// trace linked to a trace still in progress (a projection run inside its command) is
/// printed right after that trace.
///
/// [`ConsoleDetail::Full`] (`EVENTSOURCE_CONSOLE=full` for `init()`) shows every attribute
/// with its full key (as `testing::attribute` and a backend take them), eight to a line, and
/// the span kind, with links (`↳ linked to <trace_id>/<span_id> (<name>)`) and the error on
/// lines of their own; `code.*`, `thread.*`,
/// `exception.*` (shown as the error line) and `cqrs.side` are left out there too:
///
/// ```text
/// command.ShipOrder  internal  1.42ms  eventsource.aggregate.type=Order eventsource.aggregate.id=order-2 eventsource.event.count=0
/// │  ✗ error: order order-2 is cancelled
/// ├─ eventsource.repository.load  internal  310µs  eventsource.events.replayed=2 eventsource.version=2
/// │  └─ eventsource.event_store.load  client  120µs  eventsource.from_version=1 db.system.name=in_memory
/// └─ …
/// ```
///
/// ```
/// use eventsource_runtime::telemetry::{ConsoleDetail, ConsoleExporter};
/// use opentelemetry::trace::{Tracer as _, TracerProvider as _};
/// use opentelemetry_sdk::trace::{SdkTracerProvider, SimpleSpanProcessor};
///
/// let console = ConsoleExporter::with_writer(std::io::sink()) // or ConsoleExporter::new()
///     .detail(ConsoleDetail::Full);
/// let provider = SdkTracerProvider::builder()
///     .with_span_processor(SimpleSpanProcessor::new(console.clone()))
///     .build();
/// provider.tracer("example").in_span("work", |_cx| {});
/// provider.shutdown().unwrap(); // prints what is still buffered
/// ```
#[derive(Clone)]
pub struct ConsoleExporter {
    buffer: Arc<Mutex<TraceBuffer>>,
}

/// How much of each span [`ConsoleExporter`] prints.
///
/// `telemetry::init()` reads it from `EVENTSOURCE_CONSOLE` (`compact` or `full`) unless
/// [`TelemetryBuilder::console_detail`](super::TelemetryBuilder::console_detail) sets it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConsoleDetail {
    /// One line per span: name, duration, at most three attributes that tell the story,
    /// links and error.
    #[default]
    Compact,
    /// Every attribute (eight to a line), the span kind, and a line per link and error.
    Full,
}

impl std::fmt::Debug for ConsoleExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleExporter").finish_non_exhaustive()
    }
}

impl Default for ConsoleExporter {
    fn default() -> Self {
        Self::new()
    }
}

impl ConsoleExporter {
    /// A renderer writing to stderr.
    ///
    /// ```
    /// let console = eventsource_runtime::telemetry::ConsoleExporter::new();
    /// # drop(console);
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::with_shared(SharedWriter::stderr())
    }

    /// A renderer writing to `writer` (a file, a buffer in a test).
    ///
    /// ```
    /// use std::io::Write;
    /// use std::sync::{Arc, Mutex};
    ///
    /// #[derive(Clone, Default)]
    /// struct Buffer(Arc<Mutex<Vec<u8>>>);
    /// impl Write for Buffer {
    ///     fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
    ///         self.0.lock().unwrap().write(buf)
    ///     }
    ///     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
    /// }
    ///
    /// let buffer = Buffer::default();
    /// let console = eventsource_runtime::telemetry::ConsoleExporter::with_writer(buffer.clone());
    /// # drop(console);
    /// ```
    #[must_use]
    pub fn with_writer(writer: impl Write + Send + 'static) -> Self {
        Self::with_shared(SharedWriter::new(writer))
    }

    /// How much each span's line shows: [`ConsoleDetail::Compact`] (the default) or
    /// [`ConsoleDetail::Full`].
    ///
    /// ```
    /// use eventsource_runtime::telemetry::{ConsoleDetail, ConsoleExporter};
    ///
    /// let console = ConsoleExporter::new().detail(ConsoleDetail::Full);
    /// # drop(console);
    /// ```
    #[must_use]
    pub fn detail(self, detail: ConsoleDetail) -> Self {
        self.lock().detail = detail;
        self
    }

    pub(crate) fn with_shared(out: SharedWriter) -> Self {
        Self {
            buffer: Arc::new(Mutex::new(TraceBuffer::new(out))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TraceBuffer> {
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SpanExporter for ConsoleExporter {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let mut buffer = self.lock();
        let result = if buffer.shut_down {
            Err(OTelSdkError::AlreadyShutdown)
        } else {
            buffer.export(batch)
        };
        std::future::ready(result)
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        let mut buffer = self.lock();
        if buffer.shut_down {
            return Ok(());
        }
        buffer.shut_down = true;
        buffer.flush_all()
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.lock().flush_all()
    }
}
