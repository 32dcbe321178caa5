//! The broker's errors as the bus's.

use lapin::ErrorKind;

use crate::broker::TlsFailure;
use crate::broker::tls::find_in_chain;
use crate::bus::{BrokerUnreachable, BusError, UnavailableReason};

/// AMQP's `ACCESS_REFUSED` reply code: RabbitMQ refused the credentials (or the vhost).
const ACCESS_REFUSED: u16 = 403;

/// A connection to `server` (`host:port`) that failed: with the reason when lapin's error
/// tells it (refused, credentials, TLS, time-out), so that a caller can match on
/// [`BusError::unavailable_reason`]. `tls` is the host name and whether a client
/// certificate was presented, for a TLS connection; a TLS failure's source is a
/// [`TlsFailure`](crate::broker::TlsFailure) that says why in a person's words.
pub(super) fn connect_failed(
    error: lapin::Error,
    server: &str,
    tls: Option<(&str, bool)>,
) -> BusError {
    if let Some(failure) = tls_failure(&error, tls) {
        return BusError::unavailable(BrokerUnreachable::new(
            UnavailableReason::Tls,
            server,
            Some(Box::new(failure)),
        ));
    }
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

/// Why a connection failed, in TLS terms, when it failed for a TLS reason: over TLS
/// (`tls`: the host name and whether a client certificate was presented), a failed
/// handshake, or a connection closed right after it (what a server that wants a client
/// certificate, or refuses the one presented, does over TLS 1.3). (A plain connection to a
/// TLS listener is told by asking it, in `tls::connect`.)
fn tls_failure(error: &lapin::Error, tls: Option<(&str, bool)>) -> Option<TlsFailure> {
    let (host, presented) = tls?;
    if let Some(failure) = find_in_chain::<TlsFailure>(error) {
        return Some(failure.clone());
    }
    #[cfg(feature = "tls")]
    if let Some(found) = find_in_chain::<rustls::Error>(error) {
        return Some(crate::broker::tls::classify(found, host, presented));
    }
    let _ = host;
    match error.kind() {
        ErrorKind::IOError(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::BrokenPipe
            ) =>
        {
            Some(TlsFailure::closed_after_handshake(presented))
        }
        _ => None,
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
