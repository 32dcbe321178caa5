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

use super::{Debug, Display, TracedSpan, type_name};

/// The return value, borrowed for the probe.
pub struct Probe<'a, R: ?Sized>(pub &'a R);

/// Records an `Err` through the error's `Display`.
pub trait ViaDisplay {
    /// Records the outcome on `span`.
    fn traced_outcome(&self, span: &TracedSpan);
}

impl<T, E: Display> ViaDisplay for &&&Probe<'_, Result<T, E>> {
    #[inline]
    fn traced_outcome(&self, span: &TracedSpan) {
        if let Err(error) = self.0 {
            span.record_error(type_name::<E>(), error);
        }
    }
}

/// Records an `Err` through the error's `Debug`.
pub trait ViaDebug {
    /// Records the outcome on `span`.
    fn traced_outcome(&self, span: &TracedSpan);
}

impl<T, E: Debug> ViaDebug for &&Probe<'_, Result<T, E>> {
    #[inline]
    fn traced_outcome(&self, span: &TracedSpan) {
        if let Err(error) = self.0 {
            span.record_error(type_name::<E>(), &format_args!("{error:?}"));
        }
    }
}

/// Records an `Err` by its type name.
pub trait ViaAnyResult {
    /// Records the outcome on `span`.
    fn traced_outcome(&self, span: &TracedSpan);
}

impl<T, E> ViaAnyResult for &Probe<'_, Result<T, E>> {
    #[inline]
    fn traced_outcome(&self, span: &TracedSpan) {
        if self.0.is_err() {
            span.record_error(type_name::<E>(), type_name::<E>());
        }
    }
}

/// Records nothing: the value is not a `Result`.
pub trait NotAResult {
    /// Does nothing.
    fn traced_outcome(&self, span: &TracedSpan);
}

impl<R: ?Sized> NotAResult for Probe<'_, R> {
    #[inline]
    fn traced_outcome(&self, _: &TracedSpan) {}
}
