//! The server's errors as the bus's: the source kept (a [`BusError::Unavailable`]'s
//! `source()` is async-nats's error), never the URL (it may hold a password).

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::{ConnectError, ConnectErrorKind};
use std::time::Duration;

use uuid::Uuid;

use crate::bus::{BrokerUnreachable, BusError, UnavailableReason};

/// The server (or the connection to it) failed.
pub(super) fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> BusError {
    BusError::Unavailable(Box::new(error))
}

/// A connection to `server` (`host:port`) that failed: with the reason when async-nats's
/// error tells it (refused, credentials, TLS, time-out, an address it cannot use), so that a
/// caller can match on [`BusError::unavailable_reason`]. async-nats's error is the source;
/// it names neither the URL nor the password.
/// `tls`: what went wrong in TLS terms, when rustls said (the source then, in its stead).
pub(super) fn connect_failed(
    error: ConnectError,
    server: &str,
    tls: Option<crate::broker::TlsFailure>,
) -> BusError {
    if let Some(failure) = tls {
        return BusError::unavailable(BrokerUnreachable::new(
            UnavailableReason::Tls,
            server,
            Some(Box::new(failure)),
        ));
    }
    match connect_reason(&error) {
        Some(reason) => BusError::unavailable(BrokerUnreachable::new(
            reason,
            server,
            Some(Box::new(error)),
        )),
        None => unavailable(error),
    }
}

/// Why a connection failed, when async-nats's error says so.
fn connect_reason(error: &ConnectError) -> Option<UnavailableReason> {
    match error.kind() {
        ConnectErrorKind::Io => {
            let io = std::error::Error::source(error)?.downcast_ref::<std::io::Error>()?;
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => Some(UnavailableReason::ConnectionRefused),
                std::io::ErrorKind::TimedOut => Some(UnavailableReason::TimedOut),
                _ => None,
            }
        }
        // `Authentication`: the credentials could not be used (a nonce not signed, a
        // credentials file unreadable); `AuthorizationViolation`: the server refused them.
        ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => {
            Some(UnavailableReason::AuthenticationFailed)
        }
        ConnectErrorKind::Tls => Some(UnavailableReason::Tls),
        ConnectErrorKind::TimedOut => Some(UnavailableReason::TimedOut),
        ConnectErrorKind::ServerParse => Some(UnavailableReason::InvalidUrl),
        // A name that does not resolve, no more attempts allowed: no reason of its own.
        _ => None,
    }
}

/// A URL that is not a NATS server's: its parser's error (which does not repeat the URL).
pub(super) fn invalid_url(error: std::io::Error) -> BusError {
    BusError::unavailable(BrokerUnreachable::new(
        UnavailableReason::InvalidUrl,
        "the URL given",
        Some(Box::new(error)),
    ))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The error and its sources, as one line.
    fn chain(error: &dyn std::error::Error) -> String {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            text = format!("{text}: {cause}");
            source = cause.source();
        }
        text
    }

    #[test]
    fn each_kind_of_connect_failure_has_its_reason_and_names_the_server() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
        let cases = [
            (
                ConnectError::with_source(ConnectErrorKind::Io, refused),
                Some(UnavailableReason::ConnectionRefused),
            ),
            (
                ConnectError::with_source(ConnectErrorKind::Io, timed_out),
                Some(UnavailableReason::TimedOut),
            ),
            (
                ConnectError::with_source(ConnectErrorKind::Io, "broken pipe"),
                None,
            ),
            (
                ConnectError::new(ConnectErrorKind::Authentication),
                Some(UnavailableReason::AuthenticationFailed),
            ),
            (
                ConnectError::with_source(
                    ConnectErrorKind::AuthorizationViolation,
                    "authorization violation",
                ),
                Some(UnavailableReason::AuthenticationFailed),
            ),
            (
                ConnectError::with_source(ConnectErrorKind::Tls, "bad certificate"),
                Some(UnavailableReason::Tls),
            ),
            (
                ConnectError::new(ConnectErrorKind::TimedOut),
                Some(UnavailableReason::TimedOut),
            ),
            (
                ConnectError::with_source(ConnectErrorKind::ServerParse, "not a URL"),
                Some(UnavailableReason::InvalidUrl),
            ),
            (ConnectError::new(ConnectErrorKind::Dns), None),
            (ConnectError::new(ConnectErrorKind::MaxReconnects), None),
        ];
        for (error, reason) in cases {
            let kind = error.kind();
            let mapped = connect_failed(error, "nats.example:4222", None);
            assert!(matches!(mapped, BusError::Unavailable(_)), "{kind:?}");
            assert_eq!(mapped.unavailable_reason(), reason, "{kind:?}");
            let said = chain(&mapped);
            if let Some(reason) = reason {
                assert!(
                    said.contains(&format!("{reason} at nats.example:4222")),
                    "{kind:?}: {said}"
                );
            }
        }
    }

    #[test]
    fn an_invalid_url_never_repeats_the_password() {
        let secret = "s3cret-planted-4711";
        for url in [
            format!("nats://user:{secret}@127.0.0.1:notaport"),
            format!("ftp://user:{secret}@127.0.0.1:4222"),
        ] {
            let error = url
                .parse::<async_nats::ServerAddr>()
                .map_err(invalid_url)
                .unwrap_err();
            assert_eq!(
                error.unavailable_reason(),
                Some(UnavailableReason::InvalidUrl)
            );
            for shown in [chain(&error), format!("{error:?}")] {
                assert!(!shown.contains(secret), "{shown}");
            }
        }
    }
}
