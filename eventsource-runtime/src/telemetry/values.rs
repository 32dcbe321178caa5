//! What the runtime records, as plain data that both builds share (with and without the
//! `tracing` feature): attribute values, span names and kinds, metric instruments. The
//! components describe their telemetry with these; [`otel`](super::otel) turns them into
//! OpenTelemetry's types, and its no-op twin ignores them.

// Without the `tracing` feature nothing reads them: the twin takes and drops them.
#![cfg_attr(not(feature = "tracing"), allow(dead_code))]

use std::fmt::{self, Display};

use super::attributes as attr;

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

/// The contract's counters.
#[derive(Clone, Copy, Debug)]
#[repr(usize)]
pub(crate) enum Counter {
    /// `cqrs.command.total`.
    Commands,
    /// `cqrs.events.produced`.
    EventsProduced,
    /// `cqrs.query.total`.
    Queries,
    /// `eventsource.trace_context.invalid`.
    TraceContextInvalid,
    /// `eventsource.bus.messages.published`.
    BusPublished,
    /// `eventsource.bus.messages.consumed`.
    BusConsumed,
    /// `eventsource.projection.lease_lost`.
    LeaseLost,
    /// `eventsource.projection.events_parked`.
    EventsParked,
    /// `eventsource.events.upcast`.
    EventsUpcast,
    /// `eventsource.bus.messages.dead_lettered`.
    BusDeadLettered,
    /// `eventsource.bus.publish.failures`.
    BusPublishFailures,
    /// `eventsource.bus.consumer_group.stalls`.
    GroupStalls,
    /// `eventsource.bus.messages.skipped`.
    BusSkipped,
    /// `eventsource.projection.segment.changes`.
    SegmentChanges,
}

impl Counter {
    /// Every counter, in declaration order (their index).
    pub(crate) const ALL: [Self; 14] = [
        Self::Commands,
        Self::EventsProduced,
        Self::Queries,
        Self::TraceContextInvalid,
        Self::BusPublished,
        Self::BusConsumed,
        Self::LeaseLost,
        Self::EventsParked,
        Self::EventsUpcast,
        Self::BusDeadLettered,
        Self::BusPublishFailures,
        Self::GroupStalls,
        Self::BusSkipped,
        Self::SegmentChanges,
    ];

    /// The counter's name, unit and description.
    pub(crate) const fn describe(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Commands => (attr::METRIC_COMMAND_TOTAL, "{command}", "Commands handled"),
            Self::EventsProduced => (
                attr::METRIC_EVENTS_PRODUCED,
                "{event}",
                "Events produced by commands",
            ),
            Self::Queries => (attr::METRIC_QUERY_TOTAL, "{query}", "Queries run"),
            Self::TraceContextInvalid => (
                attr::METRIC_TRACE_CONTEXT_INVALID,
                "{event}",
                "Consumed events whose stored trace context was missing or malformed",
            ),
            Self::BusPublished => (
                attr::METRIC_BUS_MESSAGES_PUBLISHED,
                "{message}",
                "Messages published on an event bus",
            ),
            Self::BusConsumed => (
                attr::METRIC_BUS_MESSAGES_CONSUMED,
                "{message}",
                "Messages an event bus delivered to its handlers",
            ),
            Self::LeaseLost => (
                attr::METRIC_PROJECTION_LEASE_LOST,
                "{lease}",
                "Leases projection runners lost while processing",
            ),
            Self::EventsParked => (
                attr::METRIC_PROJECTION_EVENTS_PARKED,
                "{event}",
                "Unreadable events projection runners parked",
            ),
            Self::EventsUpcast => (
                attr::METRIC_EVENTS_UPCAST,
                "{event}",
                "Stored events brought up to their type's current schema version",
            ),
            Self::BusDeadLettered => (
                attr::METRIC_BUS_MESSAGES_DEAD_LETTERED,
                "{message}",
                "Messages moved to a consumer group's dead letters",
            ),
            Self::BusPublishFailures => (
                attr::METRIC_BUS_PUBLISH_FAILURES,
                "{message}",
                "Messages an event bus failed to publish",
            ),
            Self::GroupStalls => (
                attr::METRIC_BUS_CONSUMER_GROUP_STALLS,
                "{stall}",
                "Times a consumer group had events waiting and handled none for its stall bound",
            ),
            Self::BusSkipped => (
                attr::METRIC_BUS_MESSAGES_SKIPPED,
                "{message}",
                "Messages a consumer group settled without handing them to a handler",
            ),
            Self::SegmentChanges => (
                attr::METRIC_PROJECTION_SEGMENT_CHANGES,
                "{segment}",
                "Segments of split projections claimed, taken over, released, lost or fenced",
            ),
        }
    }
}

/// The buckets of a command's, a query's or a handler's duration, in seconds: from tens of
/// microseconds (an in-memory command) through milliseconds (a database) to ten seconds, in
/// steps of 2 and 2.5.
pub(crate) const DURATION_BOUNDARIES: [f64; 19] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The buckets of a projection's lag, in seconds: from a millisecond (in step) to hours (a
/// runner catching up after a deploy).
pub(crate) const LAG_BOUNDARIES: [f64; 22] = [
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0, 1_800.0, 3_600.0, 7_200.0, 14_400.0,
];

/// The buckets of a collection query's result size, in items.
pub(crate) const RESULT_SIZE_BOUNDARIES: [f64; 16] = [
    0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1_000.0, 2_000.0, 5_000.0, 10_000.0,
    20_000.0, 50_000.0,
];

/// The contract's histograms of durations, in seconds.
#[derive(Clone, Copy, Debug)]
#[repr(usize)]
pub(crate) enum Timing {
    /// `cqrs.command.duration`.
    Command,
    /// `cqrs.query.duration`.
    Query,
    /// `cqrs.projection.lag`.
    ProjectionLag,
    /// `eventsource.bus.handler.duration`.
    BusHandler,
}

impl Timing {
    /// Every histogram of durations, in declaration order (their index).
    pub(crate) const ALL: [Self; 4] = [
        Self::Command,
        Self::Query,
        Self::ProjectionLag,
        Self::BusHandler,
    ];

    /// The histogram's bucket boundaries, in seconds: the contract's (`docs/telemetry.md`),
    /// given as the instrument's advice, so that an application's own view still wins.
    pub(crate) const fn boundaries(self) -> &'static [f64] {
        match self {
            Self::Command | Self::Query | Self::BusHandler => &DURATION_BOUNDARIES,
            Self::ProjectionLag => &LAG_BOUNDARIES,
        }
    }

    /// The histogram's name and description (the unit is `s`).
    pub(crate) const fn describe(self) -> (&'static str, &'static str) {
        match self {
            Self::Command => (
                attr::METRIC_COMMAND_DURATION,
                "Duration of command handling: load, decide, save, deliver",
            ),
            Self::Query => (attr::METRIC_QUERY_DURATION, "Duration of queries"),
            Self::ProjectionLag => (
                attr::METRIC_PROJECTION_LAG,
                "Time from an event's timestamp to its projection",
            ),
            Self::BusHandler => (
                attr::METRIC_BUS_HANDLER_DURATION,
                "Duration of one event handler handling one message",
            ),
        }
    }
}

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
