//! What `#[traced]` expands to.
//!
//! The attribute builds the span itself (a `tracing::span!` in the user's crate, so the
//! callsite is static and its fields are only evaluated when the callsite is enabled), then
//! hands the function's body to [`run_sync`] or [`run_async`], which run it inside the
//! span, record a panic, and call the `outcome` closure the attribute wrote for the
//! function's return type (see [`probe`]).
//!
//! ```text
//! fn f(args) -> R {
//!     let span = if is_enabled() && (enabled) { span!(INFO, "f", fields..) } else { Span::none() };
//!     run_sync::<R, _, _>(span, move || { body }, outcome)
//! }
//! async fn f(args) -> R {
//!     let span = /* the same */;
//!     run_async::<R, _, _>(span, async move { body }, outcome).await
//! }
//! ```

use std::any::{Any, type_name};
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt::{self, Debug, Display};
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::pin::{Pin, pin};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tracing::Instrument as _;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::telemetry::spans;

/// The attribute `#[traced(ret)]` records the return value's `Debug` under.
pub const RETURN_VALUE: &str = "return.value";

/// Lets go of a disabled span. `Span::none()` (no callsite, no subscriber data) owns
/// nothing, so it is forgotten rather than run through `Span`'s out-of-line drop: the
/// switched-off path stays a few instructions. Any other disabled span is dropped as usual
/// (with `tracing`'s `log` feature its drop may write a log record).
#[inline(always)]
fn release_disabled(span: Span) {
    if span.metadata().is_none() {
        std::mem::forget(span);
    } else {
        drop(span);
    }
}

/// Runs a synchronous body inside `span` (entered), then calls `outcome` with its return
/// value. A panic is recorded on the span as an error and then resumed.
///
/// When the span is disabled (a switch is off, or no subscriber wants it), the body is
/// simply called, with [`telemetry::set_attribute`](crate::telemetry::set_attribute) kept
/// off the caller's span (see `is_untraced_caller`).
#[inline]
pub fn run_sync<R, B, O>(span: Span, body: B, outcome: O) -> R
where
    B: FnOnce() -> R,
    O: FnOnce(&R, &Span),
{
    if span.is_disabled() {
        release_disabled(span);
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

/// Runs an asynchronous body instrumented with `span` (the span is current whenever the
/// body is polled, across every `.await`), then calls `outcome` with its output. A panic
/// while polling is recorded on the span as an error and then resumed.
///
/// When the span is disabled, the body is simply awaited, with
/// [`telemetry::set_attribute`](crate::telemetry::set_attribute) kept off the caller's span
/// (see `is_untraced_caller`).
pub async fn run_async<R, F, O>(span: Span, body: F, outcome: O) -> R
where
    F: Future<Output = R>,
    O: FnOnce(&R, &Span),
{
    if span.is_disabled() {
        release_disabled(span);
        return Untraced(pin!(body)).await;
    }
    let body = pin!(body.instrument(span.clone()));
    match CatchUnwind(body).await {
        Ok(ret) => {
            outcome(&ret, &span);
            ret
        }
        Err(payload) => panicked(&span, payload),
    }
}

thread_local! {
    /// While the body of a `#[traced]` function whose span is off runs on this thread: the
    /// id (`Id::into_u64`) of the span that was current when it started (0: none).
    static UNTRACED_CALLER: Cell<u64> = const { Cell::new(0) };
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

/// Marks the current span as an untraced body's caller until dropped (panics included).
/// Costs one relaxed atomic load when no `tracing` subscriber was ever set.
struct UntracedCaller(Option<u64>);

impl UntracedCaller {
    #[inline]
    fn enter() -> Self {
        if tracing::dispatcher::has_been_set() {
            Self(Some(Self::mark()))
        } else {
            Self(None)
        }
    }

    /// Marks the current span; returns the previous mark.
    #[inline(never)]
    fn mark() -> u64 {
        let current = tracing::dispatcher::get_default(|d| {
            d.current_span().id().map_or(0, tracing::Id::into_u64)
        });
        UNTRACED_CALLER.with(|c| c.replace(current))
    }
}

impl Drop for UntracedCaller {
    #[inline]
    fn drop(&mut self) {
        if let Some(previous) = self.0 {
            UNTRACED_CALLER.with(|c| c.set(previous));
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
fn panicked(span: &Span, payload: Box<dyn Any + Send>) -> ! {
    spans::record_panic(span, &*payload);
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
pub fn no_outcome<R: ?Sized>(_: &R, _: &Span) {}

/// `#[traced(ret)]`: records the return value's `Debug` as [`RETURN_VALUE`] (formatted only
/// when the span is recorded).
pub fn record_return<R: TracedReturn + ?Sized>(span: &Span, value: &R) {
    if !span.is_disabled() {
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

pub mod probe {
    //! Picks, at compile time, how to record a return value, with autoref specialization: the
    //! attribute writes `(&&&&Probe(&ret)).traced_outcome(&span)` with every trait below in
    //! scope, and method resolution takes the first that applies:
    //! 1. [`ViaDisplay`]: `Result<T, E: Display>`: an `Err` ends the span with status ERROR,
    //!    described by the error's `Display`, plus one `exception` event;
    //! 2. [`ViaDebug`]: `Result<T, E: Debug>`: the same with the error's `Debug`;
    //! 3. [`ViaAnyResult`]: any other `Result`: the same with the error's type name;
    //! 4. [`NotAResult`]: anything else (e.g. a struct named `SearchResult`): nothing.
    //!
    //! The error type recorded as `exception.type` is `std::any::type_name::<E>()`.

    use super::{Debug, Display, Span, spans, type_name};

    /// The return value, borrowed for the probe.
    pub struct Probe<'a, R: ?Sized>(pub &'a R);

    /// Records an `Err` through the error's `Display`.
    pub trait ViaDisplay {
        /// Records the outcome on `span`.
        fn traced_outcome(&self, span: &Span);
    }

    impl<T, E: Display> ViaDisplay for &&&Probe<'_, Result<T, E>> {
        #[inline]
        fn traced_outcome(&self, span: &Span) {
            if let Err(error) = self.0 {
                spans::record_error(span, type_name::<E>(), error);
            }
        }
    }

    /// Records an `Err` through the error's `Debug`.
    pub trait ViaDebug {
        /// Records the outcome on `span`.
        fn traced_outcome(&self, span: &Span);
    }

    impl<T, E: Debug> ViaDebug for &&Probe<'_, Result<T, E>> {
        #[inline]
        fn traced_outcome(&self, span: &Span) {
            if let Err(error) = self.0 {
                spans::record_error(span, type_name::<E>(), &format_args!("{error:?}"));
            }
        }
    }

    /// Records an `Err` by its type name.
    pub trait ViaAnyResult {
        /// Records the outcome on `span`.
        fn traced_outcome(&self, span: &Span);
    }

    impl<T, E> ViaAnyResult for &Probe<'_, Result<T, E>> {
        #[inline]
        fn traced_outcome(&self, span: &Span) {
            if self.0.is_err() {
                spans::record_error(span, type_name::<E>(), type_name::<E>());
            }
        }
    }

    /// Records nothing: the value is not a `Result`.
    pub trait NotAResult {
        /// Does nothing.
        fn traced_outcome(&self, span: &Span);
    }

    impl<R: ?Sized> NotAResult for Probe<'_, R> {
        #[inline]
        fn traced_outcome(&self, _: &Span) {}
    }
}

/// The span name `{Type}.{method}` of a method, formatted only when the span is recorded.
///
/// `{Type}` is the short name of `T` (`Self`): the last path segment of
/// `std::any::type_name::<T>()`, without generic arguments.
pub struct MethodName<T: ?Sized> {
    method: &'static str,
    ty: PhantomData<fn() -> *const T>,
}

impl<T: ?Sized> MethodName<T> {
    /// The name of `method` on `T`.
    #[inline]
    #[must_use]
    pub const fn new(method: &'static str) -> Self {
        Self {
            method,
            ty: PhantomData,
        }
    }
}

impl<T: ?Sized> Display for MethodName<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", short_type_name(type_name::<T>()), self.method)
    }
}

impl<T: ?Sized> Debug for MethodName<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Display::fmt(self, f)
    }
}

/// The span names `{Type}.{method}` of one `#[traced]` method, each formatted the first
/// time a span of it is recorded and then kept for the life of the process: the attribute
/// puts one in a `static` at the method, so a span costs a lookup instead of formatting
/// [`MethodName`] again.
///
/// There is one name per `Self` type that reaches the method, several only for a trait's
/// default method or a blanket impl (the monomorphizations share the `static`): a short
/// list, looked up by `type_name::<Self>()`, which is all the name depends on.
pub struct MethodNames {
    first: OnceLock<&'static MethodNameEntry>,
}

/// One `Self` type's name in [`MethodNames`]; never freed (there is at most one per
/// method and type in the program).
struct MethodNameEntry {
    ty: &'static str,
    name: &'static str,
    next: OnceLock<&'static MethodNameEntry>,
}

impl MethodNames {
    /// No name yet.
    #[inline]
    #[must_use]
    pub const fn new() -> Self {
        Self {
            first: OnceLock::new(),
        }
    }

    /// The name of `method` on `T`, the same as `MethodName::<T>::new(method)` displays.
    #[inline]
    #[must_use]
    pub fn get<T: ?Sized>(&self, method: &'static str) -> &'static str {
        let ty = type_name::<T>();
        let mut slot = &self.first;
        loop {
            let entry = *slot.get_or_init(|| {
                Box::leak(Box::new(MethodNameEntry {
                    ty,
                    name: MethodName::<T>::new(method).to_string().leak(),
                    next: OnceLock::new(),
                }))
            });
            if std::ptr::eq(entry.ty, ty) || entry.ty == ty {
                return entry.name;
            }
            slot = &entry.next;
        }
    }
}

impl Default for MethodNames {
    fn default() -> Self {
        Self::new()
    }
}

/// `my_crate::orders::OrderService<alloc::string::String>` -> `OrderService`.
#[must_use]
pub fn short_type_name(full: &str) -> &str {
    let base = full.split('<').next().unwrap_or(full);
    let base = base
        .trim_start_matches('&')
        .trim_start_matches("mut ")
        .trim_start_matches("dyn ");
    base.rsplit("::").next().unwrap_or(base)
}

/// A value `#[traced(fields(key = value))]` records as it is. Integers become OTel
/// integers (`i64`; a `u64` would otherwise arrive as a string, and values beyond `i64`
/// saturate), floats `f64`, `bool` stays, and strings are recorded as `&str`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be recorded as a span attribute as it is",
    label = "write `%` before the value to record its `Display`, or `?` to record its `Debug`",
    note = "`fields(..)` records integers, floats, bools and strings as they are; \
            for any other type write e.g. `fields(order = %order_id, items = ?items)`"
)]
pub trait FieldValue {
    /// The `tracing` value recorded.
    type Out<'a>: tracing::Value
    where
        Self: 'a;

    /// The value to record.
    fn field_value(&self) -> Self::Out<'_>;
}

macro_rules! int_field_value {
    ($($int:ty),*) => {$(
        impl FieldValue for $int {
            type Out<'a> = i64;
            #[inline]
            fn field_value(&self) -> i64 {
                i64::try_from(*self).unwrap_or(if *self > 0 { i64::MAX } else { i64::MIN })
            }
        }
    )*};
}

int_field_value!(
    i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize
);

macro_rules! copy_field_value {
    ($($ty:ty => $out:ty),*) => {$(
        impl FieldValue for $ty {
            type Out<'a> = $out;
            #[inline]
            fn field_value(&self) -> $out {
                <$out>::from(*self)
            }
        }
    )*};
}

copy_field_value!(f32 => f64, f64 => f64, bool => bool);

macro_rules! str_field_value {
    ($($ty:ty),*) => {$(
        impl FieldValue for $ty {
            type Out<'a>
                = &'a str
            where
                Self: 'a;
            #[inline]
            fn field_value(&self) -> &str {
                self
            }
        }
    )*};
}

str_field_value!(str, String, Box<str>, Arc<str>, Cow<'_, str>);

impl<T: FieldValue + ?Sized> FieldValue for &T {
    type Out<'a>
        = T::Out<'a>
    where
        Self: 'a;

    #[inline]
    fn field_value(&self) -> Self::Out<'_> {
        (**self).field_value()
    }
}

impl<T: FieldValue + ?Sized> FieldValue for &mut T {
    type Out<'a>
        = T::Out<'a>
    where
        Self: 'a;

    #[inline]
    fn field_value(&self) -> Self::Out<'_> {
        (**self).field_value()
    }
}

/// `None` records nothing.
impl<T: FieldValue> FieldValue for Option<T> {
    type Out<'a>
        = Option<T::Out<'a>>
    where
        Self: 'a;

    #[inline]
    fn field_value(&self) -> Self::Out<'_> {
        self.as_ref().map(FieldValue::field_value)
    }
}

#[cfg(test)]
mod tests {
    use super::{FieldValue, MethodName, MethodNames, short_type_name};

    #[test]
    fn short_type_names() {
        assert_eq!(
            short_type_name("my_crate::orders::OrderService"),
            "OrderService"
        );
        assert_eq!(short_type_name("a::Repo<alloc::string::String>"), "Repo");
        assert_eq!(short_type_name("&mut a::b::Svc"), "Svc");
        assert_eq!(short_type_name("Local"), "Local");
        struct Svc;
        assert_eq!(MethodName::<Svc>::new("run").to_string(), "Svc.run");
    }

    #[test]
    fn method_names_are_kept_per_self_type() {
        struct Svc;
        struct Repo<T>(T);
        static NAMES: MethodNames = MethodNames::new();
        let first = NAMES.get::<Svc>("run");
        assert_eq!(first, "Svc.run");
        assert!(
            std::ptr::eq(first, NAMES.get::<Svc>("run")),
            "formatted once"
        );
        assert_eq!(NAMES.get::<Repo<u8>>("run"), "Repo.run");
        assert_eq!(NAMES.get::<&mut Svc>("run"), "Svc.run");
        assert_eq!(NAMES.get::<Repo<String>>("run"), "Repo.run");
        assert_eq!(NAMES.get::<Svc>("run"), "Svc.run");
        assert_eq!(NAMES.get::<Repo<u8>>("run"), "Repo.run");
    }

    #[test]
    fn integers_become_i64() {
        assert_eq!(7_u64.field_value(), 7_i64);
        assert_eq!(u64::MAX.field_value(), i64::MAX);
        assert_eq!(i128::MIN.field_value(), i64::MIN);
        assert_eq!((&&3_usize).field_value(), 3_i64);
        assert_eq!(String::from("x").field_value(), "x");
        assert_eq!(Some(2_u8).field_value(), Some(2_i64));
    }
}
