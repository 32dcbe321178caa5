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
mod telemetry;
/// The types a test needs to write its expectations, so it needs no `opentelemetry`
/// dependency of its own: attribute values and pairs, span kinds and statuses, and the
/// captured span.
#[cfg(feature = "tracing")]
pub use opentelemetry::trace::{SpanKind, Status};
#[cfg(feature = "tracing")]
pub use opentelemetry::{Array, KeyValue, Value};
#[cfg(feature = "tracing")]
pub use opentelemetry_sdk::trace::SpanData;
#[cfg(feature = "tracing")]
pub use telemetry::{
    CapturedSpans, MetricCapture, SpanCapture, assert_attribute, attribute, capture,
    capture_metrics, events, kind,
};

use crate::aggregate::{Aggregate, AggregateRoot};
use crate::command::Handle;

/// Starts a scenario: the aggregate has these events in its history (versions 1, 2, ...).
pub fn given<A: Aggregate>(history: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let mut root = AggregateRoot::<A>::new("given");
    for event in history {
        root.record(event);
    }
    root.take_uncommitted();
    Given { root }
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

    /// Asserts that the command failed with `expected`: the same message (`Display`) and
    /// the same `Debug`, so the error type needs no `PartialEq`.
    ///
    /// # Panics
    /// When the command succeeded or failed otherwise.
    #[track_caller]
    pub fn then_error(self, expected: E)
    where
        E: std::fmt::Display,
    {
        match self.result {
            Ok(events) => {
                panic!("expected error {expected:?}, but the command produced {events:?}")
            }
            Err(error) => assert!(
                error.to_string() == expected.to_string()
                    && format!("{error:?}") == format!("{expected:?}"),
                "the command failed with another error\n  actual: {error} ({error:?})\n  expected: {expected} ({expected:?})"
            ),
        }
    }

    /// Asserts that the command failed with an error for which `check` holds.
    ///
    /// # Panics
    /// When the command succeeded or `check` returns false.
    #[track_caller]
    pub fn then_error_matches(self, check: impl FnOnce(&E) -> bool) {
        match self.result {
            Ok(events) => panic!("expected an error, but the command produced {events:?}"),
            Err(error) => assert!(
                check(&error),
                "the command failed with an unexpected error: {error:?}"
            ),
        }
    }
}
