//! What the runtime records, as plain data that both builds share (with and without the
//! `tracing` feature): attribute values, span names and kinds, the duration buckets. The
//! components describe their telemetry with these (and declare their metric instruments
//! with [`otel::metrics`](super::otel::metrics)); [`otel`](super::otel) turns them into
//! OpenTelemetry's types, and its no-op twin ignores them.

// Without the `tracing` feature nothing reads them: the twin takes and drops them.
#![cfg_attr(not(feature = "tracing"), allow(dead_code))]

use std::fmt::{self, Display};

/// What a span says of the aggregate it is about (`eventsource.aggregate.id`,
/// `eventsource.aggregate.type`): an event stream's id, asked only for a span that is
/// recorded.
pub(crate) trait SpanAggregate {
    /// The aggregate id, shared (not copied).
    fn shared_aggregate_id(&self) -> &std::sync::Arc<str>;
    /// The aggregate type; static when it is.
    fn aggregate_type_attr(&self) -> Attr<'_>;
}

/// An attribute value, borrowed until a span or a metric records it (then converted).
#[derive(Clone, Copy)]
pub(crate) enum Attr<'a> {
    /// A string, copied when recorded.
    Str(&'a str),
    /// A string that lives for the whole program, kept without a copy.
    Static(&'static str),
    /// A string shared by reference count (a stream's aggregate id), kept without a copy.
    Shared(&'a std::sync::Arc<str>),
    /// An integer: counts, versions, positions, lags (OpenTelemetry integers, never strings).
    Int(i64),
    /// A flag.
    Bool(bool),
    /// An integer array.
    Ints(&'a [i64]),
    /// Anything `Display`, formatted when recorded.
    Display(&'a dyn Display),
}

impl<'a> Attr<'a> {
    /// A count, version or position (saturating at `i64::MAX`).
    #[inline]
    pub(crate) fn int(n: impl TryInto<i64>) -> Self {
        Self::Int(n.try_into().unwrap_or(i64::MAX))
    }

    /// A name that is usually static (an event type): kept without a copy when it is.
    #[inline]
    #[allow(clippy::ptr_arg, reason = "whether the name is borrowed is the point")]
    pub(crate) fn name(name: &'a std::borrow::Cow<'static, str>) -> Self {
        match name {
            std::borrow::Cow::Borrowed(name) => Self::Static(name),
            std::borrow::Cow::Owned(name) => Self::Str(name),
        }
    }
}

/// A span's name: fixed, or a prefix and a type name (`command.PlaceOrder`) put together
/// only when the span is recorded.
#[derive(Clone, Copy)]
pub(crate) enum SpanName<'a> {
    /// A constant (the defaults, and the `&'static str` overrides).
    Static(&'static str),
    /// A name known only at run time (a projection's override).
    Borrowed(&'a str),
    /// `{prefix}{name}`.
    Prefixed(&'static str, &'a str),
    /// `{prefix}{name}` of two program-long strings (`command.PlaceOrder`): put together
    /// once per process, not once per span.
    PrefixedStatic(&'static str, &'static str),
}

/// How a span relates to its caller, as OpenTelemetry's span kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Work inside the process.
    Internal,
    /// A call to a database or another service.
    Client,
    /// A message sent.
    Producer,
    /// A message (or stored event) received.
    Consumer,
}

/// The buckets the contract gives every histogram of a duration, in seconds: from tens of
/// microseconds (an in-memory command) through milliseconds (a database) to ten seconds, in
/// steps of 2 and 2.5. Shared on purpose by `cqrs.command.duration`, `cqrs.query.duration`
/// and `eventsource.bus.handler.duration`, each declared in its component's `instrument`
/// module.
pub(crate) const DURATION_BOUNDARIES: [f64; 19] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Defines a component's span names: a struct with one `&'static str` field per operation
/// (public, so a team can reproduce its own naming scheme), each defaulting to the
/// contract's name.
macro_rules! span_names {
    (
        $(#[$meta:meta])*
        pub struct $names:ident {
            $($(#[$field_meta:meta])* $field:ident = $default:expr),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $names {
            $($(#[$field_meta])* pub $field: &'static str,)+
        }

        impl Default for $names {
            fn default() -> Self {
                Self { $($field: $default,)+ }
            }
        }
    };
}

pub(crate) use span_names;

/// An error with its sources, `outer: inner: innermost`: how the runtime describes errors
/// (its own and its users') on spans and in log lines. A source whose text the description
/// so far already ends with (an error that names its source in its `Display` and also
/// exposes it through `source()`, as thiserror's `#[error("failed: {0}")] X(#[from] E)`
/// does) is not said again; its own sources still are.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn std::error::Error + 'a));

impl Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(mut source) = self.0.source() else {
            // No source: the error's own text, without a copy.
            return write!(f, "{}", self.0);
        };
        let mut text = self.0.to_string();
        let mut next = String::new();
        loop {
            next.clear();
            fmt::write(&mut next, format_args!("{source}"))?;
            if !text.ends_with(next.as_str()) {
                text.push_str(": ");
                text.push_str(&next);
            }
            match source.source() {
                Some(deeper) => source = deeper,
                None => break,
            }
        }
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::Chain;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner;

    #[derive(Debug, thiserror::Error)]
    #[error("wrapped: {0}")]
    struct Repeats(#[source] Outer);

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Same(#[source] Inner);

    #[test]
    fn a_chain_reads_outer_to_inner() {
        assert_eq!(Chain(&Outer(Inner)).to_string(), "outer: inner");
        assert_eq!(Chain(&Inner).to_string(), "inner");
    }

    #[test]
    fn a_source_the_text_already_ends_with_is_not_repeated() {
        // `wrapped: outer` ends with `outer`; `inner` is still said.
        assert_eq!(
            Chain(&Repeats(Outer(Inner))).to_string(),
            "wrapped: outer: inner"
        );
        assert_eq!(Chain(&Same(Inner)).to_string(), "inner");
    }
}
