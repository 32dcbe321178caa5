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

use std::any::{Any, type_name};
use std::cell::Cell;
use std::fmt::{Debug, Display};
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

use opentelemetry::trace::SpanId;
use tracing::Instrument as _;

mod names;
pub mod probe;
mod span;
mod values;

pub use names::{MethodName, MethodNames, short_type_name};
pub use opentelemetry::trace::SpanKind;
pub use span::{TracedSpan, has_direct, start_direct};
pub use values::{FieldValue, debug, display, static_str};

use span::Kind;

/// The attribute `#[traced(ret)]` records the return value's `Debug` under.
pub const RETURN_VALUE: &str = "return.value";

/// Runs a synchronous body inside `span` (entered), then calls `outcome` with its return
/// value. A panic is recorded on the span as an error and then resumed.
///
/// When the span is disabled (a switch is off, or no subscriber wants it), the body is
/// simply called, with [`telemetry::set_attribute`](crate::telemetry::set_attribute) kept
/// off the caller's span (see `is_untraced_caller`).
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
    let caught = match &span.kind {
        Kind::Tracing(tracing_span) => {
            let _entered = tracing_span.enter();
            panic::catch_unwind(AssertUnwindSafe(body))
        }
        Kind::Direct(direct) => {
            let _attached = direct.attach();
            panic::catch_unwind(AssertUnwindSafe(body))
        }
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
/// [`telemetry::set_attribute`](crate::telemetry::set_attribute) kept off the caller's span
/// (see `is_untraced_caller`).
pub async fn run_async<R, F, O>(span: TracedSpan, body: F, outcome: O) -> R
where
    F: Future<Output = R>,
    O: FnOnce(&R, &TracedSpan),
{
    if span.is_disabled() {
        span.release_disabled();
        return Untraced(pin!(body)).await;
    }
    let caught = match &span.kind {
        Kind::Tracing(tracing_span) => {
            CatchUnwind(pin!(body.instrument(tracing_span.clone()))).await
        }
        Kind::Direct(direct) => CatchUnwind(pin!(span::WithDirect::new(direct, pin!(body)))).await,
    };
    match caught {
        Ok(ret) => {
            outcome(&ret, &span);
            ret
        }
        Err(payload) => panicked(&span, payload),
    }
}

thread_local! {
    /// While the body of a `#[traced]` function whose span is off runs on this thread: the
    /// id (`Id::into_u64`) of the `tracing` span that was current when it started (0: none).
    static UNTRACED_CALLER: Cell<u64> = const { Cell::new(0) };
    /// The same for a `#[traced]` span made on the direct path (invalid: none).
    static UNTRACED_DIRECT_CALLER: Cell<SpanId> = const { Cell::new(SpanId::INVALID) };
}

/// Whether `span` is the caller of a switched-off `#[traced]` body running now on this
/// thread, with no span of its own in between: `telemetry::set_attribute` called there
/// means the function's own span, which does not exist, so it must not land on the
/// caller's.
#[inline]
pub(crate) fn is_untraced_caller(span: &tracing::Id) -> bool {
    let caller = UNTRACED_CALLER.with(Cell::get);
    caller != 0 && caller == span.into_u64()
}

/// [`is_untraced_caller`] for a span made on the direct path.
#[inline]
pub(crate) fn is_untraced_direct_caller(span: SpanId) -> bool {
    let caller = UNTRACED_DIRECT_CALLER.with(Cell::get);
    caller != SpanId::INVALID && caller == span
}

/// Marks the current span as an untraced body's caller until dropped (panics included).
/// Costs one relaxed atomic load when no `tracing` subscriber was ever set.
struct UntracedCaller(Option<(u64, SpanId)>);

impl UntracedCaller {
    #[inline]
    fn enter() -> Self {
        if tracing::dispatcher::has_been_set() {
            Self(Some(Self::mark()))
        } else {
            Self(None)
        }
    }

    /// Marks the current spans; returns the previous marks.
    #[inline(never)]
    fn mark() -> (u64, SpanId) {
        let current = tracing::dispatcher::get_default(|d| {
            d.current_span().id().map_or(0, tracing::Id::into_u64)
        });
        let direct = crate::telemetry::layer::direct_current_id();
        (
            UNTRACED_CALLER.with(|c| c.replace(current)),
            UNTRACED_DIRECT_CALLER.with(|c| c.replace(direct)),
        )
    }
}

impl Drop for UntracedCaller {
    #[inline]
    fn drop(&mut self) {
        if let Some((previous, previous_direct)) = self.0 {
            UNTRACED_CALLER.with(|c| c.set(previous));
            UNTRACED_DIRECT_CALLER.with(|c| c.set(previous_direct));
        }
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
fn panicked(span: &TracedSpan, payload: Box<dyn Any + Send>) -> ! {
    span.record_panic(&*payload);
    panic::resume_unwind(payload)
}

/// Polls a pinned future, turning a panic into `Err(payload)`.
struct CatchUnwind<'a, F>(Pin<&'a mut F>);

impl<F: Future> Future for CatchUnwind<'_, F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(ret)) => Poll::Ready(Ok(ret)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// The `outcome` of a function whose return value needs no recording.
#[inline]
pub fn no_outcome<R: ?Sized>(_: &R, _: &TracedSpan) {}

/// `#[traced(ret)]`: records the return value's `Debug` as [`RETURN_VALUE`] (formatted only
/// when the span is recorded).
pub fn record_return<R: TracedReturn + ?Sized>(span: &TracedSpan, value: &R) {
    if span.is_recording() {
        span.set_attribute(RETURN_VALUE, format!("{value:?}"));
    }
}

/// A return value `#[traced(ret)]` can record: anything `Debug`.
#[diagnostic::on_unimplemented(
    message = "`#[traced(ret)]` records the return value's `Debug`, and `{Self}` does not implement `Debug`",
    label = "`{Self}` is not `Debug`",
    note = "derive or implement `Debug` for the return type, or remove `ret`"
)]
pub trait TracedReturn: Debug {}

impl<T: Debug + ?Sized> TracedReturn for T {}

/// The value of `#[traced(enabled = ..)]`.
#[inline]
#[must_use]
pub fn switch(on: impl Switch) -> bool {
    on.into_bool()
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

impl Switch for bool {
    #[inline]
    fn into_bool(self) -> bool {
        self
    }
}

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

/// `#[traced(err)]` checks that the function returns a `Result`.
#[inline]
pub fn assert_result<R: IsResult + ?Sized>(_: &R) {}

/// Implemented by `Result` only.
#[diagnostic::on_unimplemented(
    message = "`#[traced(err)]` records the `Err` of a function returning a `Result`, and `{Self}` is not a `Result`",
    label = "`err` needs a `Result` return type",
    note = "remove `err`, or return a `Result` (an alias of one is fine)"
)]
pub trait IsResult {}

impl<T, E> IsResult for Result<T, E> {}
