//! librdkafka's own reports of a failed connection, kept for the adapter's errors: a TLS
//! handshake that fails or a broker that refuses the connection surfaces only as an error
//! event and a log line on the client's main queue, while the operation itself just times
//! out. The bus's clients share one [`LastError`] (the producer's polling thread serves its
//! queue), and a timed-out `declare` says what it was.

use std::sync::{Arc, Mutex, PoisonError};

use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::bus::{BrokerUnreachable, TlsFailure, UnavailableReason};

/// A client context recording librdkafka's last connection error; clones share it. What
/// it is told goes on to the `log` crate, as rdkafka's default context does.
#[derive(Debug, Clone, Default)]
pub(super) struct LastError(Arc<Mutex<Option<(RDKafkaErrorCode, String)>>>);

impl ClientContext for LastError {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        // A failed handshake is logged with OpenSSL's words, sometimes before its event.
        if log_message.contains("SSL handshake failed")
            || log_message.contains("certificate verify failed")
        {
            self.record(RDKafkaErrorCode::SSL, log_message);
        }
        DefaultClientContext.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if let Some(code) = error.rdkafka_error_code() {
            self.record(code, reason);
        }
        DefaultClientContext.error(error, reason);
    }
}

impl LastError {
    /// Keeps `code` and what was `said`, unless a TLS or authentication failure is kept
    /// already and this is the "brokers are down" that follows it.
    fn record(&self, code: RDKafkaErrorCode, said: &str) {
        let mut last = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let specific = |code: &RDKafkaErrorCode| {
            matches!(
                code,
                RDKafkaErrorCode::SSL | RDKafkaErrorCode::Authentication
            )
        };
        let generic = matches!(
            code,
            RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure
        );
        if !(generic && last.as_ref().is_some_and(|(kept, _)| specific(kept))) {
            *last = Some((code, said.to_owned()));
        }
    }

    /// Why the brokers at `server` could not be used, when librdkafka said: the reason and
    /// its words, or `None` (nothing recorded, or nothing this names).
    pub(super) fn unreachable(&self, server: &str) -> Option<BrokerUnreachable> {
        let (code, said) = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        let (reason, source): (UnavailableReason, Box<dyn std::error::Error + Send + Sync>) =
            match code {
                RDKafkaErrorCode::SSL => (UnavailableReason::Tls, Box::new(tls_failure(&said))),
                RDKafkaErrorCode::Authentication => {
                    (UnavailableReason::AuthenticationFailed, said.into())
                }
                RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown
                    if said.contains("Connection refused") =>
                {
                    (UnavailableReason::ConnectionRefused, said.into())
                }
                _ => return None,
            };
        Some(BrokerUnreachable::new(reason, server, Some(source)))
    }
}

/// What OpenSSL said of a handshake, as a [`TlsFailure`].
fn tls_failure(said: &str) -> TlsFailure {
    let detail = said.to_owned();
    if said.contains("certificate verify failed") {
        TlsFailure::UntrustedCertificate { detail }
    } else if said.contains("wrong version number") || said.contains("packet length too long") {
        TlsFailure::NotTls { detail }
    } else {
        TlsFailure::Other(detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(code: RDKafkaErrorCode, said: &str) -> LastError {
        let context = LastError::default();
        context.error(KafkaError::Global(code), said);
        context
    }

    #[test]
    fn a_failed_handshake_is_named() {
        let context = recorded(
            RDKafkaErrorCode::SSL,
            "ssl://localhost:9093/bootstrap: SSL handshake failed: error:0A000086:SSL \
             routines::certificate verify failed: broker certificate could not be verified",
        );
        let unreachable = context.unreachable("localhost:9093").unwrap();
        assert_eq!(unreachable.reason, UnavailableReason::Tls);
        let failure = unreachable
            .source
            .as_ref()
            .unwrap()
            .downcast_ref::<TlsFailure>();
        assert!(
            matches!(failure, Some(TlsFailure::UntrustedCertificate { .. })),
            "{failure:?}"
        );
    }

    #[test]
    fn a_refused_connection_is_named_and_a_timeout_is_not() {
        let refused = recorded(
            RDKafkaErrorCode::AllBrokersDown,
            "1/1 brokers are down: Connection refused",
        );
        assert_eq!(
            refused.unreachable("h:1").unwrap().reason,
            UnavailableReason::ConnectionRefused
        );
        assert!(LastError::default().unreachable("h:1").is_none());
        let other = recorded(RDKafkaErrorCode::MessageTimedOut, "timed out");
        assert!(other.unreachable("h:1").is_none());
    }
}
