//! The one way the runtime starts a span, for its components and `#[traced]` alike.
//!
//! - Under eventsource's layer ([`OtelLayer`](crate::telemetry::OtelLayer):
//!   `telemetry::init()`, `telemetry::layer()`, `testing::capture()`), on the OpenTelemetry
//!   SDK directly ([`DirectTracer`]), made the current OpenTelemetry context while its work
//!   runs. The subscriber's filter is asked first (target `eventsource`, level INFO).
//! - Under any other subscriber, an ordinary `tracing` span (target `eventsource`, named
//!   by `otel.name`), so an application's own `tracing-opentelemetry` setup exports the same
//!   span.
//! - With no subscriber, or a switch off, nothing is built and no attribute is formatted.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{LazyLock, PoisonError, RwLock};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use opentelemetry::trace::{Link, SpanId, SpanKind, Status, TraceContextExt as _};
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use tracing::Level;
use tracing::callsite::{DefaultCallsite, Identifier};
use tracing::field::FieldSet;
use tracing::level_filters::LevelFilter;
use tracing::metadata::Kind as CallsiteKind;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::direct::{Attached, DirectTracer, Parent};
use crate::event::{Metadata, StreamId};
use crate::telemetry::values::{Attr, Kind, SpanName};
use crate::telemetry::{TARGET, attributes as attr, propagation, toggles};

/// What the subscriber's filter is asked about before a span is started on the direct
/// path. Asked directly rather than through a callsite's cached interest, which `tracing`
/// keeps for the whole process and can fix at "never" while another thread installs its
/// subscriber.
static CALLSITE: DefaultCallsite = DefaultCallsite::new(&META);
static META: tracing::Metadata<'static> = tracing::Metadata::new(
    "eventsource",
    TARGET,
    Level::INFO,
    Some(file!()),
    Some(line!()),
    Some(module_path!()),
    FieldSet::new(&[], Identifier(&CALLSITE)),
    CallsiteKind::SPAN,
);

/// How a span will be made, decided before its attributes are.
#[derive(Clone, Copy)]
enum Mode {
    Direct,
    Tracing,
}

/// Which way the current subscriber records a span of the runtime, if it does.
fn mode() -> Option<Mode> {
    if !tracing::dispatcher::has_been_set() || Level::INFO > LevelFilter::current() {
        return None;
    }
    let direct = tracing::dispatcher::get_default(|dispatch| {
        dispatch.downcast_ref::<DirectTracer>().map(|_| {
            let _ = CALLSITE.interest(); // registered once, for filters that look it up
            dispatch.enabled(&META)
        })
    });
    match direct {
        Some(true) => Some(Mode::Direct),
        Some(false) => None,
        None => tracing::span_enabled!(target: TARGET, Level::INFO).then_some(Mode::Tracing),
    }
}

/// A span about to start: its name, kind, parent, attributes and links. Inert (every
/// method a no-op) when the span will not be recorded.
#[must_use = "a span starts with `start()`"]
pub(crate) struct SpanStart<'a> {
    pending: Option<Pending<'a>>,
}

struct Pending<'a> {
    mode: Mode,
    name: SpanName<'a>,
    kind: Kind,
    parent: Parent,
    attributes: Vec<KeyValue>,
    links: Vec<Link>,
}

impl<'a> SpanStart<'a> {
    /// A span named `name`, a child of the current span, if the component's own switch
    /// (`enabled`), the process switch and the subscriber all want it.
    #[inline]
    pub(crate) fn new(enabled: bool, name: SpanName<'a>, kind: Kind) -> Self {
        let mode = if enabled && toggles::is_enabled() {
            mode()
        } else {
            None
        };
        Self {
            pending: mode.map(|mode| Pending {
                mode,
                name,
                kind,
                parent: Parent::Current,
                attributes: Vec::with_capacity(8),
                links: Vec::new(),
            }),
        }
    }

    /// A new trace instead of a child of the current span.
    #[inline]
    pub(crate) fn root(mut self) -> Self {
        if let Some(pending) = &mut self.pending {
            pending.parent = Parent::Root;
        }
        self
    }

    /// A child of the trace context in `carrier` (a message's headers), with its baggage; a
    /// new trace when the context is missing or malformed (counted, never an error).
    pub(crate) fn remote_parent(mut self, carrier: &Metadata) -> Self {
        if let Some(pending) = &mut self.pending {
            pending.parent = match propagation::stored_span_context(carrier) {
                Some(_) => Parent::Remote(propagation::extract(carrier)),
                None => Parent::Root,
            };
        }
        self
    }

    /// A link to the trace context in `carrier` (an event's metadata, a message's
    /// headers), with `attributes` on the link; none when the context is missing or
    /// malformed (counted, never an error).
    pub(crate) fn link(
        mut self,
        carrier: &Metadata,
        attributes: &[(&'static str, Attr<'_>)],
    ) -> Self {
        if let Some(pending) = &mut self.pending
            && let Some(context) = propagation::stored_span_context(carrier)
        {
            pending
                .links
                .push(Link::new(context, key_values(attributes), 0));
        }
        self
    }

    /// An attribute.
    #[inline]
    pub(crate) fn attr(mut self, key: &'static str, value: Attr<'_>) -> Self {
        if let Some(pending) = &mut self.pending {
            pending
                .attributes
                .push(KeyValue::new(key, otel_value(value)));
        }
        self
    }

    /// A string attribute (copied).
    #[inline]
    pub(crate) fn str(self, key: &'static str, value: &str) -> Self {
        self.attr(key, Attr::Str(value))
    }

    /// The stream's aggregate id and type (`aggregate.id`, `aggregate.type`), shared or
    /// static, not copied.
    #[inline]
    pub(crate) fn stream(mut self, stream: &'a StreamId) -> Self {
        if let Some(pending) = &mut self.pending {
            let aggregate_type = match stream.static_aggregate_type() {
                Some(aggregate_type) => Attr::Static(aggregate_type),
                None => Attr::Str(stream.aggregate_type()),
            };
            pending.attributes.extend([
                KeyValue::new(
                    attr::AGGREGATE_ID,
                    otel_value(Attr::Shared(stream.shared_id())),
                ),
                KeyValue::new(attr::AGGREGATE_TYPE, otel_value(aggregate_type)),
            ]);
        }
        self
    }

    /// A string attribute that lives for the whole program (not copied).
    #[inline]
    pub(crate) fn static_str(self, key: &'static str, value: &'static str) -> Self {
        self.attr(key, Attr::Static(value))
    }

    /// An integer attribute (a count, version or position).
    #[inline]
    pub(crate) fn int(self, key: &'static str, value: impl TryInto<i64>) -> Self {
        self.attr(key, Attr::int(value))
    }

    /// Starts the span (nothing when inert).
    #[inline]
    pub(crate) fn start(self) -> Span {
        match self.pending {
            None => Span::none(),
            Some(pending) => pending.start(),
        }
    }
}

impl Pending<'_> {
    fn start(self) -> Span {
        let pending = self;
        let name = match pending.name {
            SpanName::Static(name) => Cow::Borrowed(name),
            SpanName::Borrowed(name) => Cow::Owned(name.to_owned()),
            SpanName::Prefixed(prefix, name) => Cow::Owned(format!("{prefix}{name}")),
            SpanName::PrefixedStatic(prefix, name) => Cow::Borrowed(joined(prefix, name)),
        };
        match pending.mode {
            Mode::Direct => Span::start_direct(
                name,
                span_kind(pending.kind),
                pending.attributes,
                pending.links,
                &pending.parent,
            ),
            Mode::Tracing => start_tracing(
                &name,
                pending.kind,
                pending.parent,
                pending.attributes,
                pending.links,
            ),
        }
    }
}

/// `{prefix}{name}`, made once per process and kept: the pairs are program-long strings
/// (span prefixes and command or query type names), so there are only ever a few.
fn joined(prefix: &'static str, name: &'static str) -> &'static str {
    type Names = HashMap<(&'static str, &'static str), &'static str, foldhash::fast::FixedState>;
    static NAMES: LazyLock<RwLock<Names>> = LazyLock::new(RwLock::default);
    let key = (prefix, name);
    if let Some(&joined) = NAMES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
    {
        return joined;
    }
    let mut names = NAMES.write().unwrap_or_else(PoisonError::into_inner);
    names
        .entry(key)
        .or_insert_with(|| String::leak(format!("{prefix}{name}")))
}

/// The `tracing` span standing for a runtime span under a subscriber without eventsource's
/// layer: its OpenTelemetry name, kind, parent, attributes and links go through
/// `tracing-opentelemetry`'s fields and span extension.
fn start_tracing(
    name: &str,
    kind: Kind,
    parent: Parent,
    attributes: Vec<KeyValue>,
    links: Vec<Link>,
) -> Span {
    let kind = match kind {
        Kind::Internal => "internal",
        Kind::Client => "client",
        Kind::Producer => "producer",
        Kind::Consumer => "consumer",
    };
    let span = match parent {
        Parent::Current => {
            tracing::info_span!(target: TARGET, "eventsource", otel.name = name, otel.kind = kind)
        }
        Parent::Root | Parent::Remote(_) => tracing::info_span!(
            target: TARGET, parent: None, "eventsource", otel.name = name, otel.kind = kind
        ),
    };
    if span.is_disabled() {
        return Span::none();
    }
    if let Parent::Remote(cx) = parent {
        let _ = span.set_parent(cx);
    }
    for kv in attributes {
        span.set_attribute(kv.key, kv.value);
    }
    for link in links {
        span.add_link_with_attributes(link.span_context, link.attributes);
    }
    Span(Inner::Tracing(span))
}

fn span_kind(kind: Kind) -> SpanKind {
    match kind {
        Kind::Internal => SpanKind::Internal,
        Kind::Client => SpanKind::Client,
        Kind::Producer => SpanKind::Producer,
        Kind::Consumer => SpanKind::Consumer,
    }
}

/// An attribute value as OpenTelemetry's.
pub(crate) fn otel_value(value: Attr<'_>) -> Value {
    match value {
        Attr::Str(s) => Value::String(s.to_owned().into()),
        Attr::Static(s) => Value::from(s),
        Attr::Shared(s) => Value::from(std::sync::Arc::clone(s)),
        Attr::Int(n) => Value::I64(n),
        Attr::Bool(b) => Value::Bool(b),
        Attr::Strs(items) => Value::Array(Array::String(
            items.iter().map(|s| StringValue::from(*s)).collect(),
        )),
        Attr::Display(d) => Value::String(d.to_string().into()),
    }
}

/// Attributes as OpenTelemetry's.
pub(crate) fn key_values(attributes: &[(&'static str, Attr<'_>)]) -> Vec<KeyValue> {
    attributes
        .iter()
        .map(|&(key, value)| KeyValue::new(key, otel_value(value)))
        .collect()
}

/// A span of the runtime or of `#[traced]`: made on the SDK directly, a `tracing` span, or
/// nothing. Ended when dropped.
pub struct Span(Inner);

enum Inner {
    Off,
    Direct(DirectSpan),
    Tracing(tracing::Span),
}

/// A span made on the SDK and the context holding it; ended when dropped (also when its
/// work is cancelled).
struct DirectSpan {
    cx: Context,
    id: SpanId,
}

impl Drop for DirectSpan {
    #[inline]
    fn drop(&mut self) {
        self.cx.span().end();
    }
}

impl From<tracing::Span> for Span {
    #[inline]
    fn from(span: tracing::Span) -> Self {
        Self(Inner::Tracing(span))
    }
}

impl Span {
    /// No span: a switch is off, or nobody records.
    #[inline]
    #[must_use]
    pub fn none() -> Self {
        Self(Inner::Off)
    }

    /// Starts a span on the current subscriber's direct tracer (nothing if it has none).
    #[inline]
    pub(crate) fn start_direct(
        name: Cow<'static, str>,
        kind: SpanKind,
        attributes: Vec<KeyValue>,
        links: Vec<Link>,
        parent: &Parent,
    ) -> Self {
        let mut start = Some((name, kind, attributes, links));
        DirectTracer::with_current(|direct| match (direct, start.take()) {
            (Some(direct), Some((name, kind, attributes, links))) => {
                let cx = direct.start(name, kind, attributes, links, parent);
                let id = cx.span().span_context().span_id();
                Self(Inner::Direct(DirectSpan { cx, id }))
            }
            _ => Self::none(),
        })
    }

    /// Whether nothing is recorded: no span, or a disabled `tracing` span.
    #[inline]
    pub(crate) fn is_disabled(&self) -> bool {
        match &self.0 {
            Inner::Off => true,
            Inner::Direct(_) => false,
            Inner::Tracing(span) => span.is_disabled(),
        }
    }

    /// Whether what is set now is kept (a span, sampled).
    #[inline]
    pub(crate) fn is_recording(&self) -> bool {
        match &self.0 {
            Inner::Off => false,
            Inner::Direct(direct) => direct.cx.span().is_recording(),
            Inner::Tracing(span) => !span.is_disabled(),
        }
    }

    /// Lets go of a disabled span. `tracing::Span::none()` owns nothing, so it is
    /// forgotten rather than run through `Span`'s out-of-line drop: the switched-off path of
    /// `#[traced]` stays a few instructions.
    #[inline(always)]
    pub(crate) fn release_disabled(self) {
        match self.0 {
            Inner::Tracing(span) if span.metadata().is_none() => std::mem::forget(span),
            inner => drop(inner),
        }
    }

    /// Sets an attribute.
    #[inline]
    pub(crate) fn set(&self, key: &'static str, value: Attr<'_>) {
        if self.is_recording() {
            self.set_value(key, otel_value(value));
        }
    }

    /// Sets an attribute given as OpenTelemetry's value.
    pub(crate) fn set_value(&self, key: &'static str, value: Value) {
        match &self.0 {
            Inner::Off => {}
            Inner::Direct(direct) => direct.cx.span().set_attribute(KeyValue::new(key, value)),
            Inner::Tracing(span) => span.set_attribute(key, value),
        }
    }

    /// Adds a span event.
    pub(crate) fn add_event(&self, name: &'static str, attributes: &[(&'static str, Attr<'_>)]) {
        if !self.is_recording() {
            return;
        }
        let attributes = key_values(attributes);
        match &self.0 {
            Inner::Off => {}
            Inner::Direct(direct) => direct.cx.span().add_event(name, attributes),
            Inner::Tracing(span) => span.add_event(name, attributes),
        }
    }

    /// Status ERROR described by `message`, `error.type`, and exactly one `exception` span
    /// event with `exception.type` (the same type) and `exception.message`.
    pub(crate) fn record_error(&self, error_type: &str, message: &(impl Display + ?Sized)) {
        if !self.is_recording() {
            return;
        }
        self.set(attr::ERROR_TYPE, Attr::Str(error_type));
        let message = message.to_string();
        self.add_event(
            attr::SPAN_EVENT_EXCEPTION,
            &[
                (attr::EXCEPTION_TYPE, Attr::Str(error_type)),
                (attr::EXCEPTION_MESSAGE, Attr::Str(&message)),
            ],
        );
        self.set_status(Status::error(message));
    }

    /// Records a panic as an error (type `panic`).
    pub(crate) fn record_panic(&self, payload: &(dyn std::any::Any + Send)) {
        self.record_error(attr::EXCEPTION_TYPE_PANIC, crate::panic::message(payload));
    }

    /// Status ERROR described by `description`, without an `exception` event (the error
    /// was reported on a child span).
    pub(crate) fn set_error(&self, description: &(impl Display + ?Sized)) {
        if self.is_recording() {
            self.set_status(Status::error(description.to_string()));
        }
    }

    fn set_status(&self, status: Status) {
        match &self.0 {
            Inner::Off => {}
            Inner::Direct(direct) => direct.cx.span().set_status(status),
            Inner::Tracing(span) => span.set_status(status),
        }
    }

    /// Writes this span's W3C context (and baggage) into `carrier`; with no span of its own,
    /// the current span's, so that consumers still join the caller's trace.
    pub(crate) fn inject(&self, carrier: &mut Metadata) {
        match &self.0 {
            Inner::Off => inject_current(carrier),
            Inner::Direct(direct) => propagation::inject(&direct.cx, carrier),
            Inner::Tracing(span) => propagation::inject(&span.context(), carrier),
        }
    }

    /// Runs `work` inside the span: the span is current whenever `work` is polled.
    #[inline]
    pub(crate) fn run<F: Future>(&self, work: F) -> InSpan<'_, F> {
        InSpan { span: self, work }
    }

    /// Makes the span current until the guard is dropped.
    #[inline]
    pub(crate) fn enter(&self) -> Entered<'_> {
        match &self.0 {
            Inner::Off => Entered {
                _tracing: None,
                _direct: None,
            },
            Inner::Tracing(span) => Entered {
                _tracing: Some(span.enter()),
                _direct: None,
            },
            Inner::Direct(direct) => Entered {
                _tracing: None,
                _direct: Some(Attached::new(&direct.cx, direct.id)),
            },
        }
    }
}

/// The guard of [`Span::enter`].
pub(crate) struct Entered<'a> {
    _tracing: Option<tracing::span::Entered<'a>>,
    _direct: Option<Attached>,
}

pin_project_lite::pin_project! {
    /// [`Span::run`]'s future: `work`, polled with the span current. (One struct holding
    /// `work` once, rather than an `async fn` whose every branch kept its own copy of it.)
    pub(crate) struct InSpan<'a, F> {
        span: &'a Span,
        #[pin]
        work: F,
    }
}

impl<F: Future> Future for InSpan<'_, F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        this.work.poll(cx)
    }
}

/// Writes the current span's W3C context into `carrier`, when the process switch is on.
fn inject_current(carrier: &mut Metadata) {
    if toggles::is_enabled() {
        propagation::inject_current(carrier);
    }
}

/// Measures a duration for the metrics, when the process switch is on.
pub(crate) struct Stopwatch(Option<Instant>);

impl Stopwatch {
    /// Starts measuring.
    #[inline]
    pub(crate) fn start() -> Self {
        Self(toggles::is_enabled().then(Instant::now))
    }

    /// The time since [`start`](Self::start) (zero when nothing was measured).
    #[inline]
    pub(crate) fn elapsed(&self) -> Duration {
        self.0.map_or(Duration::ZERO, |started| started.elapsed())
    }
}

/// Runs `work` with the trace context stored in `carrier` (an event's metadata) as the
/// current context, so the spans it starts continue that trace: a relay publishing a stored
/// event continues the command that stored it. Without a valid stored context, or with the
/// process switch off, `work` simply runs.
pub(crate) async fn in_stored_context<F: Future>(carrier: &Metadata, work: F) -> F::Output {
    if !toggles::is_enabled() {
        return work.await;
    }
    let cx = propagation::extract(carrier);
    if !cx.span().span_context().is_valid() {
        return work.await;
    }
    WithContext {
        cx,
        work: pin!(work),
    }
    .await
}

/// Polls a pinned future with a context current.
struct WithContext<'a, F> {
    cx: Context,
    work: Pin<&'a mut F>,
}

impl<F: Future> Future for WithContext<'_, F> {
    type Output = F::Output;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<F::Output> {
        let _attached = self.cx.clone().attach();
        self.work.as_mut().poll(task)
    }
}
