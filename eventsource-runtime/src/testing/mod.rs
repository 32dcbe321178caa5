//! Test helpers (feature `testing`): given/when/then for aggregates and, with the
//! `tracing` feature, in-process capture of spans and metrics ([`capture`],
//! [`capture_metrics`]).
//!
//! ```
//! use eventsource_runtime::prelude::*;
//! use eventsource_runtime::testing::given;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! pub struct Opened;
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! pub struct Closed;
//!
//! #[derive(Default, Aggregate)]
//! #[aggregate(type = "Door", events(Opened, Closed))]
//! pub struct Door { open: bool }
//! impl Apply<Opened> for Door { fn apply(&mut self, _: &Opened) { self.open = true; } }
//! impl Apply<Closed> for Door { fn apply(&mut self, _: &Closed) { self.open = false; } }
//!
//! pub struct Close;
//! #[derive(Debug, PartialEq, thiserror::Error)]
//! #[error("the door is already closed")]
//! pub struct AlreadyClosed;
//!
//! impl Handle<Close> for Door {
//!     type Error = AlreadyClosed;
//!     fn handle(&self, _: Close) -> Result<Vec<DoorEvent>, AlreadyClosed> {
//!         if self.open { Ok(vec![Closed.into()]) } else { Err(AlreadyClosed) }
//!     }
//! }
//!
//! given::<Door>([Opened.into()]).when(Close).then([Closed]);
//! given::<Door>([]).when(Close).then_error(AlreadyClosed);
//! ```

use std::fmt::Debug;

#[cfg(feature = "tracing")]
mod capture;
pub mod conformance;
#[cfg(feature = "tracing")]
mod metrics;
#[cfg(feature = "tracing")]
mod shape;
#[cfg(feature = "tracing")]
mod spans;
#[cfg(feature = "tracing")]
pub use capture::{SpanCapture, capture};
#[cfg(feature = "tracing")]
pub use metrics::{HistogramBuckets, METRIC_CAPTURE_WAIT, MetricCapture, capture_metrics};
#[cfg(feature = "tracing")]
pub use spans::{CapturedSpans, ExpectedValue, OpenSpan, attribute, event_attribute, events, kind};

/// OpenTelemetry's key-value pair (a span event's or a metric point's attributes).
///
/// ```
/// use eventsource_runtime::testing::KeyValue;
/// assert_eq!(KeyValue::new("cart.id", "cart-1").key.as_str(), "cart.id");
/// ```
#[cfg(feature = "tracing")]
pub use opentelemetry::KeyValue;
/// OpenTelemetry's attribute value, re-exported so that tests need no `opentelemetry`
/// dependency of their own.
///
/// ```
/// use eventsource_runtime::testing::Value;
/// assert_eq!(Value::from("cart-1").as_str(), "cart-1");
/// ```
#[cfg(feature = "tracing")]
pub use opentelemetry::Value;
/// OpenTelemetry's span kind.
///
/// ```
/// use eventsource_runtime::testing::{SpanKind, capture, kind};
/// let capture = capture();
/// tracing::info_span!("work").in_scope(|| {});
/// assert_eq!(kind(capture.spans().get("work")), SpanKind::Internal);
/// ```
#[cfg(feature = "tracing")]
pub use opentelemetry::trace::SpanKind;
/// OpenTelemetry's span status.
///
/// ```
/// use eventsource_runtime::testing::{Status, capture};
/// let capture = capture();
/// tracing::info_span!("work").in_scope(|| {});
/// assert_eq!(capture.spans().get("work").status, Status::Unset);
/// ```
#[cfg(feature = "tracing")]
pub use opentelemetry::trace::Status;
/// A captured span, as the OpenTelemetry SDK exports it (`name`, `span_kind`, `attributes`,
/// `events`, `links`, `status`, ...).
///
/// ```
/// use eventsource_runtime::testing::{SpanData, capture};
/// let capture = capture();
/// tracing::info_span!("work").in_scope(|| {});
/// let spans = capture.spans();
/// let work: &SpanData = spans.get("work");
/// assert_eq!(work.name, "work");
/// ```
#[cfg(feature = "tracing")]
pub use opentelemetry_sdk::trace::SpanData;

use crate::aggregate::{Aggregate, AggregateRoot};
use crate::command::Handle;
use crate::event::{DecodeError, EventEnvelope, NewEvent};

/// Starts a scenario: the aggregate has these events in its history (versions 1, 2, ...).
pub fn given<A: Aggregate>(history: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let mut root = AggregateRoot::<A>::new("given");
    for event in history {
        root.record(event);
    }
    root.take_uncommitted();
    Given { root }
}

/// Starts a scenario from a history as older code stored it: each event by its type name,
/// schema version and JSON payload, read through the aggregate's upcasters as a load
/// would (renamed, split, brought up to date). Tests an event set's upcasters without a
/// store.
///
/// ```
/// use eventsource_runtime::event::NewEvent;
/// use eventsource_runtime::event::upcast::Upcasters;
/// use eventsource_runtime::prelude::*;
/// use eventsource_runtime::testing::given_stored;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// pub struct Deposited { cents: i64 }
///
/// fn account_upcasters() -> Upcasters {
///     // Version 1 counted whole euros.
///     Upcasters::new().step("Deposited", 1, |payload| {
///         payload["cents"] = (payload["euros"].as_i64().ok_or("no euros")? * 100).into();
///         Ok::<_, &str>(())
///     })
/// }
///
/// #[derive(Default, Aggregate)]
/// #[aggregate(events(Deposited(version = 2)), upcasters = account_upcasters)]
/// pub struct Account { cents: i64 }
/// impl Apply<Deposited> for Account {
///     fn apply(&mut self, event: &Deposited) { self.cents += event.cents; }
/// }
///
/// let scenario = given_stored::<Account>([
///     NewEvent::new("Deposited", 1, serde_json::json!({ "euros": 2 })),
///     NewEvent::new("Deposited", 2, serde_json::json!({ "cents": 50 })),
/// ])?;
/// assert_eq!(scenario.state().cents, 250);
/// # Ok::<(), eventsource_runtime::event::DecodeError>(())
/// ```
///
/// # Errors
/// The first event that cannot be decoded: an unknown type, a payload that does not fit,
/// or an upcast that fails ([`DecodeError::Upcast`]).
pub fn given_stored<A: Aggregate>(
    history: impl IntoIterator<Item = NewEvent>,
) -> Result<Given<A>, DecodeError> {
    let mut root = AggregateRoot::<A>::new("given");
    let stream = root.stream().clone();
    for (version, event) in (1..).zip(history) {
        let mut envelope = EventEnvelope::outgoing(event, &stream);
        envelope.version = version;
        envelope.position = version;
        for event in envelope.decode_all::<A::Event>()? {
            root.record(event);
        }
    }
    root.take_uncommitted();
    Ok(Given { root })
}

/// The aggregate's history in a scenario.
#[derive(Debug)]
pub struct Given<A: Aggregate> {
    root: AggregateRoot<A>,
}

impl<A: Aggregate> Given<A> {
    /// Runs `command` through the aggregate's [`Handle`] impl.
    pub fn when<C>(self, command: C) -> Then<A, A::Error>
    where
        A: Handle<C>,
    {
        self.when_fn(|state| state.handle(command))
    }

    /// Runs a decision given as a closure over the state.
    pub fn when_fn<E>(self, decide: impl FnOnce(&A) -> Result<Vec<A::Event>, E>) -> Then<A, E> {
        let result = decide(self.root.state());
        Then {
            root: self.root,
            result,
        }
    }

    /// The state the history builds.
    #[must_use]
    pub fn state(&self) -> &A {
        self.root.state()
    }
}

/// The decision taken in a scenario, to assert on.
#[derive(Debug)]
#[must_use = "a scenario asserts nothing until `then...` is called"]
pub struct Then<A: Aggregate, E> {
    root: AggregateRoot<A>,
    result: Result<Vec<A::Event>, E>,
}

impl<A, E> Then<A, E>
where
    A: Aggregate,
    A::Event: PartialEq + Debug,
    E: Debug,
{
    /// Asserts that the command produced exactly these events, in this order, and returns
    /// the state after applying them.
    ///
    /// # Panics
    /// When the command failed or produced other events.
    #[track_caller]
    pub fn then<I>(self, expected: I) -> A
    where
        I: IntoIterator,
        I::Item: Into<A::Event>,
    {
        let expected: Vec<A::Event> = expected.into_iter().map(Into::into).collect();
        match self.result {
            Ok(events) => {
                assert_eq!(
                    events, expected,
                    "the command produced other events than expected"
                );
                let mut root = self.root;
                for event in events {
                    root.record(event);
                }
                root.into_state()
            }
            Err(error) => panic!("expected events {expected:?}, but the command failed: {error:?}"),
        }
    }

    /// Asserts that the command failed with an error equal to `expected` by its `Debug`
    /// form (variant and fields; the error needs no `PartialEq`), and returns the state,
    /// which a refused command leaves as the history built it.
    ///
    /// ```
    /// # use eventsource_runtime::prelude::*;
    /// # use eventsource_runtime::testing::given;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    /// # pub struct Opened;
    /// # #[derive(Default, Aggregate)]
    /// # #[aggregate(type = "Door", events(Opened))]
    /// # pub struct Door { open: bool }
    /// # impl Apply<Opened> for Door { fn apply(&mut self, _: &Opened) { self.open = true; } }
    /// // No `PartialEq`: an I/O error inside, say.
    /// #[derive(Debug, thiserror::Error)]
    /// pub enum DoorError {
    ///     #[error("the door is already open")]
    ///     AlreadyOpen,
    /// }
    /// let state = given::<Door>([Opened.into()])
    ///     .when_fn(|door| if door.open { Err(DoorError::AlreadyOpen) } else { Ok(vec![]) })
    ///     .then_error(DoorError::AlreadyOpen);
    /// assert!(state.open);
    /// ```
    ///
    /// # Panics
    /// When the command succeeded or failed otherwise.
    #[track_caller]
    pub fn then_error(self, expected: E) -> A {
        match &self.result {
            Ok(events) => {
                panic!("expected the error {expected:?}, but the command produced {events:?}")
            }
            Err(error) => assert!(
                format!("{error:?}") == format!("{expected:?}"),
                "expected the error {expected:?}, but the command failed with {error:?}"
            ),
        }
        self.root.into_state()
    }

    /// Asserts that the command failed with an error whose message (`Display`) is
    /// `message`, and returns the state.
    ///
    /// ```
    /// # use eventsource_runtime::prelude::*;
    /// # use eventsource_runtime::testing::given;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    /// # pub struct Opened;
    /// # #[derive(Default, Aggregate)]
    /// # #[aggregate(type = "Door", events(Opened))]
    /// # pub struct Door { open: bool }
    /// # impl Apply<Opened> for Door { fn apply(&mut self, _: &Opened) { self.open = true; } }
    /// given::<Door>([Opened.into()])
    ///     .when_fn(|_| Err::<Vec<DoorEvent>, _>(std::io::Error::other("jammed")))
    ///     .then_error_message("jammed");
    /// ```
    ///
    /// # Panics
    /// When the command succeeded or failed with another message.
    #[track_caller]
    pub fn then_error_message(self, message: &str) -> A
    where
        E: std::fmt::Display,
    {
        match &self.result {
            Ok(events) => {
                panic!("expected the error {message:?}, but the command produced {events:?}")
            }
            Err(error) => assert_eq!(
                error.to_string(),
                message,
                "the command failed with another message"
            ),
        }
        self.root.into_state()
    }

    /// Asserts that the command failed with an error for which `check` holds (a
    /// `matches!` on the variant, say), and returns the state.
    ///
    /// # Panics
    /// When the command succeeded or `check` returns false.
    #[track_caller]
    pub fn then_error_matches(self, check: impl FnOnce(&E) -> bool) -> A {
        match &self.result {
            Ok(events) => panic!("expected an error, but the command produced {events:?}"),
            Err(error) => assert!(
                check(error),
                "the command failed with an unexpected error: {error:?}"
            ),
        }
        self.root.into_state()
    }
}
