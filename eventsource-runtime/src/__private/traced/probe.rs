//! Picks, at compile time, how to record a return value, with autoref specialization: the
//! attribute writes `(&&&&&&Probe(&ret)).traced_outcome(&span)` with every trait below in
//! scope, and method resolution takes the first that applies:
//! 1. [`ViaError`]: `Result<T, E: Error>`: an `Err` ends the span with status ERROR,
//!    described by the error and its sources (`outer: inner`, a source the text already
//!    ends with said once), plus one `exception` event;
//! 2. [`ViaBoxedError`]: `Result<T, Box<dyn Error (+ Send (+ Sync))>>`: the same (a boxed
//!    trait object is not itself an `Error`);
//! 3. [`ViaDisplay`]: `Result<T, E: Display>`: the same with the error's `Display`;
//! 4. [`ViaDebug`]: `Result<T, E: Debug>`: the same with the error's `Debug`;
//! 5. [`ViaAnyResult`]: any other `Result`: the same with the error's type name;
//! 6. [`NotAResult`]: anything else (e.g. a struct named `SearchResult`): nothing.
//!
//! The error type recorded as `exception.type` is `std::any::type_name::<E>()`.

use std::error::Error;

use super::{Debug, Display, TracedSpan, type_name};
use crate::telemetry::values::Chain;

/// The return value, borrowed for the probe.
pub struct Probe<'a, R: ?Sized>(pub &'a R);

/// Records an `Err` through the error and its sources.
pub trait ViaError {
    /// Records the outcome on `span`.
    fn traced_outcome(&self, span: &TracedSpan);
}

impl<T, E: Error> ViaError for &&&&&Probe<'_, Result<T, E>> {
    #[inline]
    fn traced_outcome(&self, span: &TracedSpan) {
        if let Err(error) = self.0 {
            span.record_error(type_name::<E>(), &Chain(error));
        }
    }
}

/// A boxed error trait object, seen as an `Error`.
pub trait DynError {
    /// The error.
    fn as_error(&self) -> &(dyn Error + '_);
}

impl DynError for dyn Error + '_ {
    #[inline]
    fn as_error(&self) -> &(dyn Error + '_) {
        self
    }
}

impl DynError for dyn Error + Send + '_ {
    #[inline]
    fn as_error(&self) -> &(dyn Error + '_) {
        self
    }
}

impl DynError for dyn Error + Send + Sync + '_ {
    #[inline]
    fn as_error(&self) -> &(dyn Error + '_) {
        self
    }
}

/// Records an `Err(Box<dyn Error ..>)` through the error and its sources.
pub trait ViaBoxedError {
    /// Records the outcome on `span`.
    fn traced_outcome(&self, span: &TracedSpan);
}

impl<T, E: DynError + ?Sized> ViaBoxedError for &&&&Probe<'_, Result<T, Box<E>>> {
    #[inline]
    fn traced_outcome(&self, span: &TracedSpan) {
        if let Err(error) = self.0 {
            span.record_error(type_name::<Box<E>>(), &Chain(error.as_error()));
        }
    }
}

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
