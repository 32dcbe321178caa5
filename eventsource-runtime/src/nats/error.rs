//! The server's errors as the bus's: the source kept (a [`BusError::Unavailable`]'s
//! `source()` is async-nats's error), never the URL (it may hold a password).

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use std::time::Duration;

use uuid::Uuid;

use crate::bus::BusError;

/// The server (or the connection to it) failed.
pub(super) fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> BusError {
    BusError::Unavailable(Box::new(error))
}

/// A publish's error (sending it, or its acknowledgement) as the bus's: a refusal of this
/// message is [`BusError::Rejected`], a lost connection [`BusError::Unavailable`].
/// No acknowledgement within `waited` is [`BusError::Unconfirmed`].
pub(super) fn publish_error(message_id: Uuid, error: PublishError, waited: Duration) -> BusError {
    match error.kind() {
        PublishErrorKind::BrokenPipe | PublishErrorKind::MaxAckPending => unavailable(error),
        PublishErrorKind::TimedOut => BusError::Unconfirmed { message_id, waited },
        PublishErrorKind::StreamNotFound => BusError::Rejected {
            message_id,
            reason: "no stream takes the subject (no responders)".to_owned(),
        },
        _ => BusError::Rejected {
            message_id,
            reason: crate::telemetry::values::Chain(&error).to_string(),
        },
    }
}
