//! The console exporter's tests: what a developer sees for commands, links, errors and
//! leftovers, in the full view here and in the compact one (the default) in [`compact`].

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Array, Context, KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SimpleSpanProcessor, SpanExporter};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

use super::{ConsoleDetail, ConsoleExporter};

mod compact;

/// A `Write` whose bytes the test reads back.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

struct Pipeline {
    provider: SdkTracerProvider,
    console: ConsoleExporter,
    out: Buffer,
}

/// A pipeline printing the full view.
fn pipeline() -> Pipeline {
    pipeline_with(|out| ConsoleExporter::with_writer(out).detail(ConsoleDetail::Full))
}

/// A pipeline whose console `console(writer)` builds.
fn pipeline_with(console: impl FnOnce(Buffer) -> ConsoleExporter) -> Pipeline {
    let out = Buffer::default();
    let console = console(out.clone());
    let provider = SdkTracerProvider::builder()
        .with_span_processor(SimpleSpanProcessor::new(console.clone()))
        .build();
    Pipeline {
        provider,
        console,
        out,
    }
}

impl Pipeline {
    fn tracer(&self) -> SdkTracer {
        self.provider.tracer("console-test")
    }

    /// Runs `f` with `tracing` spans recorded through the crate's layer.
    fn with_tracing(&self, f: impl FnOnce()) {
        let layer = crate::telemetry::layer(self.tracer());
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
    }
}

/// A sampled span context from another process, as read from message headers.
fn remote_context(trace_id: &str, span_id: &str) -> SpanContext {
    SpanContext::new(
        TraceId::from_hex(trace_id).unwrap(),
        SpanId::from_hex(span_id).unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    )
}

/// Records a bus consume span under `headers`, the context read from a message.
fn consume(tracer: &SdkTracer, headers: &Context) {
    tracer
        .span_builder("eventsource.event_bus.consume")
        .with_kind(SpanKind::Consumer)
        .start_with_context(tracer, headers)
        .end();
}

/// Replaces a compact span line's duration (its second field) with `<d>`.
fn normalize_compact(line: &str) -> String {
    let mut fields: Vec<&str> = line.split("  ").collect();
    if fields.len() > 1 {
        fields[1] = "<d>";
    }
    fields.join("  ")
}

/// Replaces each span line's duration (the field after the kind) with `<d>`.
fn normalize(text: &str) -> String {
    text.lines()
        .map(|line| {
            let mut fields: Vec<&str> = line.split("  ").collect();
            let kinds = ["internal", "client", "server", "producer", "consumer"];
            if let Some(i) = fields.iter().position(|f| kinds.contains(f))
                && i + 1 < fields.len()
            {
                fields[i + 1] = "<d>";
            }
            fields.join("  ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_command_prints_as_one_tree_when_its_root_ends() {
    let p = pipeline();
    p.with_tracing(|| {
        let command = tracing::info_span!(
            "command",
            otel.name = "command.PlaceOrder",
            eventsource.command.type = "PlaceOrder",
            eventsource.aggregate.type = "Order",
            eventsource.aggregate.id = "order-1",
            cqrs.side = "write",
            eventsource.event.count = 1_i64,
        );
        command.set_attribute(
            "eventsource.event.types",
            Value::Array(vec![opentelemetry::StringValue::from("OrderPlaced")].into()),
        );
        command.in_scope(|| {
            tracing::info_span!(
                "eventsource.repository.load",
                eventsource.aggregate.id = "order-1",
                eventsource.events.replayed = 0_i64,
                eventsource.version = 0_i64,
            )
            .in_scope(|| {
                tracing::info_span!(
                    "eventsource.event_store.load",
                    otel.kind = "client",
                    eventsource.aggregate.id = "order-1",
                    db.system.name = "in_memory",
                    db.operation.name = "load",
                    eventsource.events.loaded = 0_i64,
                )
                .in_scope(|| {});
            });
            tracing::info_span!(
                "eventsource.repository.save",
                eventsource.aggregate.id = "order-1",
                eventsource.version = 1_i64,
            )
            .in_scope(|| {
                tracing::info_span!(
                    "eventsource.event_store.append",
                    otel.kind = "client",
                    eventsource.aggregate.id = "order-1",
                    db.system.name = "in_memory",
                    customer.note = "leave at the door",
                )
                .in_scope(|| {});
            });
            assert_eq!(p.out.text(), "", "nothing before the root ends");
        });
    });
    let text = p.out.text();
    let trace_line = text.lines().next().unwrap();
    assert!(
        trace_line.starts_with("trace ") && trace_line.len() == 6 + 32,
        "{text}"
    );
    let expected = "\
command.PlaceOrder  internal  <d>  eventsource.aggregate.type=Order eventsource.aggregate.id=order-1 eventsource.event.count=1 eventsource.event.types=[OrderPlaced]
├─ eventsource.repository.load  internal  <d>  eventsource.events.replayed=0 eventsource.version=0
│  └─ eventsource.event_store.load  client  <d>  db.system.name=in_memory db.operation.name=load eventsource.events.loaded=0
└─ eventsource.repository.save  internal  <d>  eventsource.version=1
   └─ eventsource.event_store.append  client  <d>  db.system.name=in_memory customer.note=\"leave at the door\"
";
    let body: String = normalize(&text)
        .lines()
        .skip(1)
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(body.trim_end(), expected.trim_end(), "\n{text}");
    assert!(text.ends_with("\n\n"), "a blank line after each trace");
}

#[test]
fn durations_are_readable() {
    let p = pipeline();
    let tracer = p.tracer();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for (name, d) in [
        ("micro", Duration::from_micros(250)),
        ("milli", Duration::from_micros(1_500)),
        ("seconds", Duration::from_millis(2_500)),
    ] {
        let mut span = tracer.span_builder(name).with_start_time(t0).start(&tracer);
        span.end_with_timestamp(t0 + d);
    }
    let text = p.out.text();
    assert!(text.contains("\nmicro  internal  250µs\n"), "{text}");
    assert!(text.contains("\nmilli  internal  1.50ms\n"), "{text}");
    assert!(text.contains("\nseconds  internal  2.500s\n"), "{text}");
}

#[test]
fn errors_show_the_status_description_and_exception_type() {
    let p = pipeline();
    let tracer = p.tracer();
    tracer.in_span("command.ShipOrder", |cx| {
        let span = cx.span();
        span.add_event(
            "exception",
            vec![
                KeyValue::new("exception.type", "OrderError"),
                KeyValue::new("exception.message", "order order-2 is cancelled"),
            ],
        );
        span.set_status(Status::error("order order-2 is cancelled"));
        tracer.in_span("eventsource.repository.load", |_| {});
    });
    let text = p.out.text();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[1].starts_with("command.ShipOrder  internal  "),
        "{text}"
    );
    assert_eq!(
        lines[2], "│  ✗ error: order order-2 is cancelled [OrderError]",
        "{text}"
    );
    assert!(
        lines[3].starts_with("└─ eventsource.repository.load"),
        "{text}"
    );
    assert!(
        !text.contains("exception."),
        "shown as the error line only: {text}"
    );
}

#[test]
fn a_projection_linked_to_its_command_prints_after_it_with_the_linked_name() {
    let p = pipeline();
    let tracer = p.tracer();
    let command = tracer.start("command.PlaceOrder");
    let command_cx = Context::new().with_span(command);
    let append = tracer.start_with_context("eventsource.event_store.append", &command_cx);
    let append_sc = append.span_context().clone();
    drop(append);
    // The projection runs inside the command (in-process delivery): a new root, linked.
    let mut projection = tracer
        .span_builder("projection.OrderReadModel")
        .with_kind(SpanKind::Consumer)
        .with_links(vec![opentelemetry::trace::Link::with_context(
            append_sc.clone(),
        )])
        .start(&tracer);
    projection.set_attribute(KeyValue::new(
        "eventsource.projection.name",
        "OrderReadModel",
    ));
    projection.set_attribute(KeyValue::new("eventsource.event.sequence", 1_i64));
    projection.end();
    assert_eq!(p.out.text(), "", "waits for the command it is linked to");
    command_cx.span().end();

    let text = p.out.text();
    let command_at = text.find("command.PlaceOrder").unwrap();
    let projection_at = text.find("projection.OrderReadModel").unwrap();
    assert!(command_at < projection_at, "{text}");
    let link = format!(
        "   ↳ linked to {}/{} (eventsource.event_store.append)",
        append_sc.trace_id(),
        append_sc.span_id()
    );
    assert!(text.lines().any(|l| l == link), "{text}");
    assert!(
        text.contains("projection.OrderReadModel  consumer  "),
        "kind shown: {text}"
    );
    assert!(text.contains("eventsource.event.sequence=1"), "{text}");
    assert!(
        !text.contains("eventsource.projection.name="),
        "the name already says it: {text}"
    );

    // Linked to a span of a trace printed earlier: printed at once, with the name.
    let before = p.out.text().len();
    let command_sc = command_cx.span().span_context().clone();
    tracer
        .span_builder("replay")
        .with_links(vec![opentelemetry::trace::Link::with_context(
            command_sc.clone(),
        )])
        .start(&tracer)
        .end();
    let later = p.out.text()[before..].to_owned();
    assert!(
        later.contains(&format!(
            "↳ linked to {}/{} (command.PlaceOrder)",
            command_sc.trace_id(),
            command_sc.span_id()
        )),
        "{later}"
    );
}

#[test]
fn a_link_to_an_unknown_span_shows_its_ids_only() {
    let p = pipeline();
    let remote = remote_context("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    p.with_tracing(|| {
        let span = tracing::info_span!("projection", otel.name = "projection.Stats");
        span.add_link(remote);
        span.in_scope(|| {});
    });
    let text = p.out.text();
    assert!(
        text.lines()
            .any(|l| l == "   ↳ linked to 0af7651916cd43dd8448eb211c80319c/b7ad6b7169203331"),
        "{text}"
    );
}

#[test]
fn a_span_continuing_a_remote_parent_prints_when_it_ends() {
    let p = pipeline();
    let remote = remote_context("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let tracer = p.tracer();
    let parent = Context::new().with_remote_span_context(remote);
    consume(&tracer, &parent);
    let text = p.out.text();
    assert!(
        text.starts_with(
            "trace 4bf92f3577b34da6a3ce929d0e0e4736 (continues remote parent 00f067aa0ba902b7)\n\
             eventsource.event_bus.consume  consumer  "
        ),
        "{text}"
    );
}

#[test]
fn a_remote_child_of_a_buffered_span_prints_in_its_tree() {
    // An in-process bus: the consume span continues the publish span's context read
    // from the message headers (a remote parent), after the publish span ended, while
    // the command still runs.
    let p = pipeline();
    let tracer = p.tracer();
    let command = tracer.start("command.PlaceOrder");
    let command_cx = Context::new().with_span(command);
    let publish = tracer
        .span_builder("eventsource.event_bus.publish")
        .with_kind(SpanKind::Producer)
        .start_with_context(&tracer, &command_cx);
    let headers = Context::new().with_remote_span_context(publish.span_context().clone());
    drop(publish);
    consume(&tracer, &headers);
    assert_eq!(p.out.text(), "", "nothing before the command ends");
    command_cx.span().end();
    let text = normalize(&p.out.text());
    assert!(
        text.trim_end().ends_with(
            "command.PlaceOrder  internal  <d>\n\
             └─ eventsource.event_bus.publish  producer  <d>\n   \
             └─ eventsource.event_bus.consume  consumer  <d>"
        ),
        "{text}"
    );
}

#[test]
fn leftovers_are_printed_on_force_flush_and_late_children_continue() {
    let p = pipeline();
    let tracer = p.tracer();
    let root = tracer.start("serve");
    let root_cx = Context::new().with_span(root);
    tracer.start_with_context("early", &root_cx).end();
    let late = tracer.start_with_context("late", &root_cx);
    assert_eq!(p.out.text(), "");

    p.console.force_flush().unwrap();
    let text = p.out.text();
    let root_id = root_cx.span().span_context().span_id();
    assert!(
        text.contains(&format!(
            "(incomplete: parent {root_id} had not ended)\nearly  internal  "
        )),
        "{text}"
    );

    root_cx.span().end();
    assert!(p.out.text().contains("\nserve  internal  "));
    drop(late); // ends after its root was printed
    let text = p.out.text();
    assert!(
        text.contains(&format!("(continued, below {root_id})\nlate  internal  ")),
        "{text}"
    );
}

#[test]
fn shutdown_prints_what_is_buffered() {
    let p = pipeline();
    let tracer = p.tracer();
    let root = tracer.start("never-ends");
    let cx = Context::new().with_span(root);
    tracer.start_with_context("child", &cx).end();
    p.provider.shutdown().unwrap();
    let text = p.out.text();
    assert!(text.contains("\nchild  internal  "), "{text}");
    // The root span itself is never exported: it did not end.
    assert!(!text.contains("never-ends  internal"), "{text}");
}

/// Attributes after the 8th were hidden behind "(+2 more)"; they are the user's
/// own dynamic fields, so they wrap onto a line of their own, under the span.
#[test]
fn every_attribute_is_shown_wrapping_after_eight() {
    let p = pipeline();
    p.with_tracing(|| {
        let span = tracing::info_span!(
            "checkout",
            a1 = 1_i64,
            a2 = 2_i64,
            a3 = 3_i64,
            a4 = 4_i64,
            a5 = 5_i64,
            a6 = 6_i64,
            a7 = 7_i64,
            a8 = 8_i64,
            a9 = 9_i64,
            a10 = 10_i64,
        );
        span.in_scope(|| {});
    });
    let text = p.out.text();
    let lines: Vec<&str> = text.lines().skip(1).collect();
    assert!(
        lines[0].starts_with("checkout  internal")
            && lines[0].ends_with("a1=1 a2=2 a3=3 a4=4 a5=5 a6=6 a7=7 a8=8"),
        "{text}"
    );
    assert_eq!(lines[1].trim(), "a9=9 a10=10", "{text}");
    assert!(!text.contains("more)"), "{text}");
}

#[test]
fn attribute_values_are_short() {
    let p = pipeline();
    p.with_tracing(|| {
        let span = tracing::info_span!(
            "work",
            note = "",
            big = 7_u64, // arrives as a string
            flag = true,
            ratio = 0.5,
            long = "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz",
        );
        span.set_attribute(
            "items",
            Value::Array(Array::I64(vec![1, 2, 3, 4, 5, 6, 7, 8])),
        );
        span.in_scope(|| {});
    });
    let text = p.out.text();
    let line = text.lines().nth(1).unwrap();
    assert!(line.contains(r#"note="""#), "{line}");
    assert!(line.contains("big=7 flag=true ratio=0.5"), "{line}");
    assert!(
        line.contains("long=abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstu…"),
        "{line}"
    );
    assert!(line.contains("items=[1, 2, 3, 4, 5, 6, …+2]"), "{line}");
    assert!(
        !line.contains("code.") && !line.contains("thread."),
        "{line}"
    );
}

#[test]
fn export_after_shutdown_is_an_error() {
    let console = ConsoleExporter::with_writer(std::io::sink());
    console.shutdown().unwrap();
    let result = futures_ready(console.export(Vec::new()));
    assert!(matches!(result, Err(OTelSdkError::AlreadyShutdown)));
}

/// Polls a future that is ready at once (the console's export is synchronous).
fn futures_ready<F: std::future::Future>(future: F) -> F::Output {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("the console export never waits"),
    }
}
