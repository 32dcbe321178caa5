//! What `#[traced]` expands to.
//!
//! The attribute builds the span itself, then hands the function's body to [`run_sync`] or
//! [`run_async`], which run it inside the span, record a panic, and call the `outcome`
//! closure the attribute wrote for the function's return type (see [`probe`]).
//!
//! The span is made one of two ways (see [`TracedSpan`]):
//! - where the subscriber carries eventsource's layer (`telemetry::init()`,
//!   `telemetry::layer()`, `testing::capture()`), on the OpenTelemetry SDK directly, made
//!   the current OpenTelemetry context while the body runs ([`start_direct`]);
//! - otherwise by a `tracing::span!` in the user's crate, so the callsite is static and its
//!   fields are only evaluated when the callsite is enabled.
//!
//! ```text
//! fn f(args) -> R {
//!     let span = if is_enabled() && (enabled) {
//!         if has_direct() {
//!             if tracing::enabled!(kind: SPAN, INFO) {
//!                 start_direct("f", SpanKind::Internal, [("key", FieldValue::otel_value(&value)), ..])
//!             } else { TracedSpan::none() }
//!         } else {
//!             TracedSpan::from(span!(INFO, "f", key = value, ..))
//!         }
//!     } else { TracedSpan::none() };
//!     run_sync::<R, _, _>(span, move || { body }, outcome)
//! }
//! async fn f(args) -> R {
//!     let span = /* the same */;
//!     run_async::<R, _, _>(span, async move { body }, outcome).await
//! }
//! ```

use std::any::type_name;
use std::fmt::{Debug, Display};
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

mod names;
pub mod probe;
mod span;
mod values;

pub use crate::telemetry::attributes::RETURN_VALUE;
pub use crate::telemetry::otel::Span as TracedSpan;
pub use names::{MethodName, MethodNames, short_type_name};
pub use opentelemetry::trace::SpanKind;
pub use span::{has_direct, start_direct};
/// The `tracing` the expansions name (`span!`, `enabled!`), the runtime's own version.
pub use tracing;
pub use values::{FieldValue, debug, display, static_str};

use crate::panic::{CatchUnwind, Payload};
use crate::telemetry::current::UntracedCaller;

/// Runs a synchronous body inside `span` (entered), then calls `outcome` with its return
/// value. A panic is recorded on the span as an error and then resumed.
///
/// When the span is disabled (a switch is off, or no subscriber wants it), the body is
/// simply called, with [`telemetry::set_attribute`](crate::telemetry::set_attribute) kept
/// off the caller's span.
#[inline]
pub fn run_sync<R, B, O>(span: TracedSpan, body: B, outcome: O) -> R
where
    B: FnOnce() -> R,
    O: FnOnce(&R, &TracedSpan),
{
    if span.is_disabled() {
        span.release_disabled();
        let _caller = UntracedCaller::enter();
        return body();
    }
    let caught = {
        let _entered = span.enter();
        panic::catch_unwind(AssertUnwindSafe(body))
    };
    match caught {
        Ok(ret) => {
            outcome(&ret, &span);
            ret
        }
        Err(payload) => panicked(&span, payload),
    }
}

/// Runs an asynchronous body inside `span` (the span is current whenever the body is
/// polled, across every `.await`), then calls `outcome` with its output. A panic while
/// polling is recorded on the span as an error and then resumed.
///
/// When the span is disabled, the body is simply awaited, with
/// [`telemetry::set_attribute`](crate::telemetry::set_attribute) kept off the caller's
/// span.
pub async fn run_async<R, F, O>(span: TracedSpan, body: F, outcome: O) -> R
where
    F: Future<Output = R>,
    O: FnOnce(&R, &TracedSpan),
{
    if span.is_disabled() {
        span.release_disabled();
        return Untraced(pin!(body)).await;
    }
    match CatchUnwind(pin!(span.run(body))).await {
        Ok(ret) => {
            outcome(&ret, &span);
            ret
        }
        Err(payload) => panicked(&span, payload),
    }
}

/// Polls a switched-off `#[traced]` body, marking the span current at each poll (the
/// caller's) as [`UntracedCaller`].
struct Untraced<'a, F>(Pin<&'a mut F>);

impl<F: Future> Future for Untraced<'_, F> {
    type Output = F::Output;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _caller = UntracedCaller::enter();
        self.0.as_mut().poll(cx)
    }
}

/// Records a panic on `span`, ends the span, and resumes unwinding.
#[cold]
fn panicked(span: &TracedSpan, payload: Payload) -> ! {
    span.record_panic(&*payload);
    panic::resume_unwind(payload)
}

/// The `outcome` of a function whose return value needs no recording.
#[inline]
pub fn no_outcome<R: ?Sized>(_: &R, _: &TracedSpan) {}

/// A return value `#[traced(ret)]` can record: anything `Debug`.
#[diagnostic::on_unimplemented(
    message = "`#[traced(ret)]` records the return value's `Debug`, and `{Self}` does not implement `Debug`",
    label = "`{Self}` is not `Debug`",
    note = "derive or implement `Debug` for the return type, or remove `ret`"
)]
pub trait TracedReturn {
    /// Records the value's `Debug` on `span` (formatted only when it is recorded).
    fn record_return(&self, span: &TracedSpan);
}

// Not offered as a candidate in errors: the message says what to write.
#[diagnostic::do_not_recommend]
impl<T: Debug + ?Sized> TracedReturn for T {
    fn record_return(&self, span: &TracedSpan) {
        if span.is_recording() {
            span.set_value(RETURN_VALUE, format!("{self:?}").into());
        }
    }
}

/// What `#[traced(enabled = ..)]` takes: a `bool`.
#[diagnostic::on_unimplemented(
    message = "`#[traced(enabled = ..)]` takes a `bool` expression, and this is a `{Self}`",
    label = "expected a `bool`",
    note = "write e.g. `enabled = self.tracing` (a `bool` field) or `enabled = self.level > 0`"
)]
pub trait Switch {
    /// Whether the span is on.
    fn into_bool(self) -> bool;
}

#[diagnostic::do_not_recommend]
impl Switch for bool {
    #[inline]
    fn into_bool(self) -> bool {
        self
    }
}

#[diagnostic::do_not_recommend]
impl Switch for &bool {
    #[inline]
    fn into_bool(self) -> bool {
        *self
    }
}

/// Returns its argument: wraps a value so that a type error about it points where the call
/// is spanned (at the user's `err` or `ret`).
#[inline]
#[must_use]
pub const fn at<T: ?Sized>(value: &T) -> &T {
    value
}

/// Implemented by `Result` only.
#[diagnostic::on_unimplemented(
    message = "`#[traced(err)]` records the `Err` of a function returning a `Result`, and `{Self}` is not a `Result`",
    label = "`err` needs a `Result` return type",
    note = "remove `err`, or return a `Result` (an alias of one is fine)"
)]
pub trait IsResult {
    /// Nothing: the call only checks the type.
    #[inline]
    fn assert_result(&self) {}
}

#[diagnostic::do_not_recommend]
impl<T, E> IsResult for Result<T, E> {}
