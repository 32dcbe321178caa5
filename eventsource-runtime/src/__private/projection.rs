//! Support for the code `#[projection]` generates.

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
