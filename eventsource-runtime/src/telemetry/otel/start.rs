//! How a span of the runtime is started: [`SpanStart`] gathers its name, kind, parent,
//! attributes and links, and starts it the way the current subscriber records spans (on
//! the SDK directly under eventsource's layer, as a `tracing` span under any other). When
//! nothing will record it, nothing is gathered.

use std::borrow::Cow;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{LazyLock, PoisonError, RwLock};

use opentelemetry::KeyValue;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{Link, SpanKind, TraceContextExt as _};
use tracing::Level;
use tracing::callsite::{DefaultCallsite, Identifier};
use tracing::field::FieldSet;
use tracing::level_filters::LevelFilter;
use tracing::metadata::Kind as CallsiteKind;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::direct::{DirectTracer, Parent};
use super::metrics;
use super::span::Span;
use super::value::{key_values, otel_value};
use crate::telemetry::values::{Attr, Kind, SpanAggregate, SpanName};
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

/// The callsite of the `tracing` spans standing for runtime spans under another layer than
/// eventsource's: no file, line or module, so that no backend shows the runtime's internals
/// as the code that made the span.
static TRACING_CALLSITE: DefaultCallsite = DefaultCallsite::new(&TRACING_META);
static TRACING_META: tracing::Metadata<'static> = tracing::Metadata::new(
    "eventsource",
    TARGET,
    Level::INFO,
    None,
    None,
    None,
    FieldSet::new(&["otel.name", "otel.kind"], Identifier(&TRACING_CALLSITE)),
    CallsiteKind::SPAN,
);

/// How a span will be made, decided before its attributes are.
enum Mode {
    /// On the SDK, through the direct tracer of this subscriber (held, so the span starts
    /// without looking the subscriber up again).
    Direct(DirectTracer),
    Tracing,
}

/// Which way the current subscriber records a span of the runtime, if it does.
fn mode() -> Option<Mode> {
    if !tracing::dispatcher::has_been_set() || Level::INFO > LevelFilter::current() {
        return None;
    }
    let direct = tracing::dispatcher::get_default(|dispatch| {
        dispatch.downcast_ref::<DirectTracer>().map(|direct| {
            let _ = CALLSITE.interest(); // registered once, for filters that look it up
            dispatch.enabled(&META).then(|| direct.clone())
        })
    });
    match direct {
        Some(Some(direct)) => Some(Mode::Direct(direct)),
        Some(None) => None,
        None => tracing::span_enabled!(target: TARGET, Level::INFO).then_some(Mode::Tracing),
    }
}

/// A span about to start: its name, kind, parent, attributes and links. Inert (every
/// method a no-op) when the span will not be recorded.
///
/// What is gathered is kept inline, not boxed: the builder calls are inlined where spans
/// are made, so it is written in place, and a box cost an allocation, a copy and a free
/// per span. The calls take it by reference: taken by value, each moved it, about 400
/// instructions a traced command. Components reach this only with the process switch on
/// (`otel::enabled()`).
#[must_use = "a span starts with `start()`"]
pub(crate) struct SpanStart<'a> {
    pending: Option<Pending>,
    /// The name is owned once gathered; `'a` keeps the builder's signature for a name
    /// borrowed until then.
    _name: PhantomData<SpanName<'a>>,
}

/// Kept within 128 bytes: above that, every move of the builder is a call to `memcpy`
/// rather than a few register moves (the name is why it is resolved when gathered).
struct Pending {
    mode: Mode,
    name: Cow<'static, str>,
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
        // Only the switches are asked inline: with one off, the span is inert and every
        // builder call after this one is a test of a null pointer.
        if enabled && toggles::is_enabled() {
            Self::gather(name, kind)
        } else {
            Self {
                pending: None,
                _name: PhantomData,
            }
        }
    }

    /// Whether a span that [`new`](Self::new) would start now with `enabled` would be
    /// recorded: what only its attributes need can be left unmade when it would not.
    #[cfg(any(feature = "kafka", feature = "rabbitmq"))]
    pub(crate) fn would_record(enabled: bool) -> bool {
        enabled && toggles::is_enabled() && mode().is_some()
    }

    /// Whether the span will not be recorded (so its attributes need not be worked out).
    #[inline]
    pub(crate) fn is_inert(&self) -> bool {
        self.pending.is_none()
    }

    /// The subscriber asked, and the gathering started if it records the span.
    #[inline(never)]
    fn gather(name: SpanName<'a>, kind: Kind) -> Self {
        Self {
            pending: mode().map(|mode| Pending {
                mode,
                name: owned_name(name),
                kind,
                parent: Parent::Current,
                attributes: Vec::with_capacity(8),
                links: Vec::new(),
            }),
            _name: PhantomData,
        }
    }

    /// A new trace instead of a child of the current span.
    #[inline(always)]
    pub(crate) fn root(&mut self) -> &mut Self {
        if let Some(pending) = &mut self.pending {
            pending.parent = Parent::Root;
        }
        self
    }

    /// A child of the trace context in `carrier` (a message's headers), with its baggage; a
    /// new trace when the context is missing or malformed (counted, never an error).
    pub(crate) fn remote_parent(&mut self, carrier: &dyn Extractor) -> &mut Self {
        if let Some(pending) = &mut self.pending {
            pending.parent = match counted(propagation::stored_context(carrier)) {
                Some(cx) => Parent::Remote(cx),
                None => Parent::Root,
            };
        }
        self
    }

    /// A link to the trace context in `carrier` (an event's metadata, a message's
    /// headers), with `attributes` on the link; none when the context is missing or
    /// malformed (counted, never an error).
    pub(crate) fn link(
        &mut self,
        carrier: &dyn Extractor,
        attributes: &[(&'static str, Attr<'_>)],
    ) -> &mut Self {
        if let Some(pending) = &mut self.pending
            && let Some(cx) = counted(propagation::stored_context(carrier))
        {
            let context = cx.span().span_context().clone();
            pending
                .links
                .push(Link::new(context, key_values(attributes), 0));
        }
        self
    }

    /// An attribute.
    #[inline(always)]
    pub(crate) fn attr(&mut self, key: &'static str, value: Attr<'_>) -> &mut Self {
        if let Some(pending) = &mut self.pending {
            pending
                .attributes
                .push(KeyValue::new(key, otel_value(value)));
        }
        self
    }

    /// A string attribute (copied).
    #[inline(always)]
    pub(crate) fn str(&mut self, key: &'static str, value: &str) -> &mut Self {
        self.attr(key, Attr::Str(value))
    }

    /// The stream's aggregate id and type (`aggregate.id`, `aggregate.type`), shared or
    /// static, not copied.
    #[inline(always)]
    pub(crate) fn stream(&mut self, stream: &'a impl SpanAggregate) -> &mut Self {
        if let Some(pending) = &mut self.pending {
            pending.attributes.extend([
                KeyValue::new(
                    attr::AGGREGATE_ID,
                    otel_value(Attr::Shared(stream.shared_aggregate_id())),
                ),
                KeyValue::new(
                    attr::AGGREGATE_TYPE,
                    otel_value(stream.aggregate_type_attr()),
                ),
            ]);
        }
        self
    }

    /// A string attribute that lives for the whole program (not copied).
    #[inline(always)]
    pub(crate) fn static_str(&mut self, key: &'static str, value: &'static str) -> &mut Self {
        self.attr(key, Attr::Static(value))
    }

    /// An integer attribute (a count, version or position).
    #[inline(always)]
    pub(crate) fn int(&mut self, key: &'static str, value: impl TryInto<i64>) -> &mut Self {
        self.attr(key, Attr::int(value))
    }

    /// Starts the span gathered (nothing when inert); the builder is inert afterwards.
    #[inline(always)]
    pub(crate) fn start(&mut self) -> Span {
        match self.pending.take() {
            None => Span::none(),
            Some(pending) => pending.start(),
        }
    }
}

/// The name a span is exported with.
fn owned_name(name: SpanName<'_>) -> Cow<'static, str> {
    match name {
        SpanName::Static(name) => Cow::Borrowed(name),
        SpanName::Borrowed(name) => Cow::Owned(name.to_owned()),
        SpanName::Prefixed(prefix, name) => Cow::Owned(format!("{prefix}{name}")),
        SpanName::PrefixedStatic(prefix, name) => Cow::Borrowed(joined(prefix, name)),
    }
}

impl Pending {
    /// Starts the span gathered (kept out of line: [`SpanStart::start`] is inlined where
    /// spans are made, and mostly finds nothing to start).
    fn start(self) -> Span {
        match self.mode {
            Mode::Direct(direct) => Span::start_direct(
                &direct,
                self.name,
                span_kind(self.kind),
                self.attributes,
                self.links,
                &self.parent,
            ),
            Mode::Tracing => start_tracing(
                &self.name,
                self.kind,
                self.parent,
                self.attributes,
                self.links,
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
    let kind = kind_name(&span_kind(kind));
    let Some(span) = tracing_span(name, kind, matches!(parent, Parent::Current)) else {
        return Span::none();
    };
    if let Parent::Remote(cx) = parent {
        let _ = span.set_parent(cx);
    }
    for kv in attributes {
        span.set_attribute(kv.key, kv.value);
    }
    for link in links {
        span.add_link_with_attributes(link.span_context, link.attributes);
    }
    Span::from(span)
}

fn span_kind(kind: Kind) -> SpanKind {
    match kind {
        Kind::Internal => SpanKind::Internal,
        Kind::Client => SpanKind::Client,
        Kind::Producer => SpanKind::Producer,
        Kind::Consumer => SpanKind::Consumer,
    }
}

/// A span kind as OpenTelemetry spells it in text (`otel.kind`): what `tracing-opentelemetry`
/// reads, and what the console and the captured span trees print.
pub(crate) fn kind_name(kind: &SpanKind) -> &'static str {
    match kind {
        SpanKind::Client => "client",
        SpanKind::Server => "server",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
    }
}

/// A `tracing` span at [`TRACING_CALLSITE`] (a child of the current span, or a root), as
/// `info_span!` would make it; `None` when the subscriber does not record it. The
/// subscriber is asked each time, as for [`META`], not through the callsite's cached
/// interest.
fn tracing_span(name: &str, kind: &str, contextual: bool) -> Option<tracing::Span> {
    let meta = &TRACING_META;
    let _ = TRACING_CALLSITE.interest(); // registered once, for filters that look it up
    if !tracing::dispatcher::get_default(|d| d.enabled(meta)) {
        return None;
    }
    let mut fields = meta.fields().iter();
    let (Some(name_field), Some(kind_field)) = (fields.next(), fields.next()) else {
        return None;
    };
    let values: [(&tracing::field::Field, Option<&dyn tracing::Value>); 2] =
        [(&name_field, Some(&name)), (&kind_field, Some(&kind))];
    let values = meta.fields().value_set(&values);
    let span = if contextual {
        tracing::Span::new(meta, &values)
    } else {
        tracing::Span::new_root(meta, &values)
    };
    (!span.is_disabled()).then_some(span)
}

/// Consumed carriers whose stored trace context was missing or malformed.
static INVALID: metrics::Counter = metrics::Counter::new(
    attr::METRIC_TRACE_CONTEXT_INVALID,
    "{event}",
    "Consumed events whose stored trace context was missing or malformed",
);

/// The stored context, or `None` with the invalid one counted.
fn counted(
    stored: Result<opentelemetry::Context, propagation::InvalidContext>,
) -> Option<opentelemetry::Context> {
    stored
        .inspect_err(|invalid| {
            INVALID.add(
                1,
                [(attr::METRIC_ATTR_REASON, Attr::Static(invalid.reason()))],
            );
        })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::SpanStart;

    /// Above 128 bytes, each move of the builder between its calls is a call to `memcpy`
    /// (measured: about 400 instructions a traced command).
    #[test]
    fn a_span_being_gathered_fits_in_128_bytes() {
        let size = std::mem::size_of::<SpanStart<'static>>();
        assert!(size <= 128, "SpanStart is {size} bytes");
    }
}
