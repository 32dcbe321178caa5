//! The broker's errors as the bus's.

use crate::bus::BusError;

/// The broker (or the connection to it) failed.
pub(super) fn unavailable(error: lapin::Error) -> BusError {
    BusError::Unavailable(Box::new(error))
}
