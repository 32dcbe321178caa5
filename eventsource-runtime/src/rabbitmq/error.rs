//! The broker's errors as the bus's.

use lapin::ErrorKind;

use crate::bus::{BrokerUnreachable, BusError, UnavailableReason};

/// AMQP's `ACCESS_REFUSED` reply code: RabbitMQ refused the credentials (or the vhost).
const ACCESS_REFUSED: u16 = 403;

/// A connection to `server` (`host:port`) that failed: with the reason when lapin's error
/// tells it (refused, credentials, TLS, time-out), so that a caller can match on
/// [`BusError::unavailable_reason`].
pub(super) fn connect_failed(error: lapin::Error, server: &str) -> BusError {
    let reason = match error.kind() {
        ErrorKind::IOError(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => Some(UnavailableReason::ConnectionRefused),
            std::io::ErrorKind::TimedOut => Some(UnavailableReason::TimedOut),
            _ if is_tls(io) => Some(UnavailableReason::Tls),
            _ => None,
        },
        ErrorKind::ProtocolError(amqp) if amqp.get_id() == ACCESS_REFUSED => {
            Some(UnavailableReason::AuthenticationFailed)
        }
        ErrorKind::AuthProviderError(_) => Some(UnavailableReason::AuthenticationFailed),
        _ => None,
    };
    match reason {
        Some(reason) => BusError::unavailable(BrokerUnreachable::new(
            reason,
            server,
            Some(Box::new(error)),
        )),
        None => unavailable(error),
    }
}

/// Whether an I/O error came from the TLS layer.
fn is_tls(error: &std::io::Error) -> bool {
    let text = error.to_string().to_ascii_lowercase();
    text.contains("tls") || text.contains("certificate") || text.contains("handshake")
}

/// The broker (or the connection to it) failed.
pub(super) fn unavailable(error: lapin::Error) -> BusError {
    BusError::Unavailable(Box::new(error))
}
