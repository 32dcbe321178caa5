//! Support for the code `#[projection]` generates.

use crate::event::{DecodeError, EventEnvelope, EventType};
use crate::projection::ProjectionError;

/// What a `#[projection]` handler may return: `()` or `Result<(), E>`, where `E` converts
/// into `Box<dyn Error + Send + Sync>` (any `std::error::Error + Send + Sync + 'static`,
/// `String`, `&'static str`, `anyhow::Error`, ...). An `Err` fails the delivery with
/// [`ProjectionError::Handler`].
#[diagnostic::on_unimplemented(
    message = "a #[projection] handler returns `()` or `Result<(), E>`, not `{Self}`",
    label = "not `()` or `Result<(), E>` with an error type `E`",
    note = "`E` must convert into `Box<dyn std::error::Error + Send + Sync>`: any `std::error::Error + Send + Sync + 'static`, `String` or `&'static str`"
)]
pub trait HandlerOutput {
    /// The delivery's outcome.
    ///
    /// # Errors
    /// The handler's own error, as [`ProjectionError::Handler`].
    fn into_projection_result(self) -> Result<(), ProjectionError>;
}

impl HandlerOutput for () {
    #[inline]
    fn into_projection_result(self) -> Result<(), ProjectionError> {
        Ok(())
    }
}

impl<E> HandlerOutput for Result<(), E>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    #[inline]
    fn into_projection_result(self) -> Result<(), ProjectionError> {
        self.map_err(ProjectionError::handler)
    }
}

/// An envelope's event for a `#[projection]` handler: the recorded event the envelope
/// carries (see [`EventEnvelope::decode`]), borrowed, or the parsed payload. The handler
/// takes `&T`, which `&Decoded<T>` coerces to.
pub enum Decoded<'a, T> {
    /// Recorded by this process.
    Recorded(&'a T),
    /// Parsed from the payload.
    Parsed(T),
}

impl<T> std::ops::Deref for Decoded<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        match self {
            Self::Recorded(event) => event,
            Self::Parsed(event) => event,
        }
    }
}

/// The envelope's event as a `T`, `None` when it holds another type.
///
/// # Errors
/// As [`EventEnvelope::decode_as`].
#[inline]
pub fn decode<T: EventType>(
    envelope: &EventEnvelope,
) -> Option<Result<Decoded<'_, T>, DecodeError>> {
    if let Some(event) = envelope.payload.recorded::<T>() {
        return Some(Ok(Decoded::Recorded(event)));
    }
    envelope
        .decode_as::<T>()
        .map(|parsed| parsed.map(Decoded::Parsed))
}
