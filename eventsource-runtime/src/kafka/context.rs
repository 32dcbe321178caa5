//! librdkafka's own reports of a failed connection, kept for the adapter's errors: a TLS
//! handshake that fails or a broker that refuses the connection surfaces only as an error
//! event and a log line on the client's main queue, while the operation itself just times
//! out. The bus's clients share one [`LastError`] (the producer's polling thread serves its
//! queue), and a timed-out `declare` says what it was. When every broker refused the
//! connection, the operations waiting on the brokers hear it at once
//! ([`LastError::refusals`]) rather than time out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::watch;

use crate::bus::{BrokerUnreachable, TlsFailure, UnavailableReason};

/// What librdkafka says of a connection the other end refused.
const REFUSED: &str = "Connection refused";

/// A client context recording librdkafka's last connection error; clones share it. What
/// it is told goes on to the `log` crate, as rdkafka's default context does.
#[derive(Debug, Clone, Default)]
pub(super) struct LastError(Arc<Reports>);

#[derive(Debug, Default)]
struct Reports {
    kept: Mutex<Kept>,
    /// librdkafka's words, each time every broker was down, each having refused the
    /// connection last.
    refusals: watch::Sender<Option<String>>,
}

#[derive(Debug, Default)]
struct Kept {
    /// The last failure worth naming: its code and librdkafka's words.
    last: Option<(RDKafkaErrorCode, String)>,
    /// Each broker's last transport failure (by librdkafka's name for it,
    /// `host:port/bootstrap` or `host:port/{id}`): what it said when it was a refused
    /// connection, `None` for any other.
    brokers: HashMap<String, Option<String>>,
}

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
    /// already and this is the transport failure or the "brokers are down" that follows it;
    /// "brokers are down" (which names no cause) never replaces what is kept. A broker's
    /// transport failure is also kept as that broker's last; "brokers are down" when each
    /// one's last was a refused connection wakes the [`refusals`](Self::refusals) waiting.
    fn record(&self, code: RDKafkaErrorCode, said: &str) {
        let mut kept = self.0.kept.lock().unwrap_or_else(PoisonError::into_inner);
        match code {
            RDKafkaErrorCode::BrokerTransportFailure => {
                // `{broker}: Connect to ipv4#127.0.0.1:1 failed: Connection refused (...)`
                let broker = said.split_once(": ").map_or(said, |(broker, _)| broker);
                let refused = said.contains(REFUSED).then(|| said.to_owned());
                kept.brokers.insert(broker.to_owned(), refused);
            }
            RDKafkaErrorCode::AllBrokersDown => {
                let refusals: Option<Vec<&str>> =
                    kept.brokers.values().map(Option::as_deref).collect();
                if let Some(mut refusals) = refusals.filter(|r| !r.is_empty()) {
                    refusals.sort_unstable();
                    let words = format!("{said}: {}", refusals.join("; "));
                    self.0.refusals.send_replace(Some(words));
                }
                if kept.last.is_some() {
                    return;
                }
            }
            _ => {}
        }
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
        if !(generic && kept.last.as_ref().is_some_and(|(kept, _)| specific(kept))) {
            kept.last = Some((code, said.to_owned()));
        }
    }

    /// Completes when, from now on, librdkafka reports every broker down, each having
    /// refused the connection (a broker that takes the connection and answers slowly never
    /// does), with librdkafka's words; never otherwise. Made before the client whose
    /// reports it waits for connects.
    pub(super) fn refusals(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let mut refusals = self.0.refusals.subscribe();
        async move {
            loop {
                if refusals.changed().await.is_err() {
                    return std::future::pending().await;
                }
                if let Some(words) = refusals.borrow_and_update().clone() {
                    return words;
                }
            }
        }
    }

    /// Why the brokers at `server` could not be used, when librdkafka said: the reason and
    /// its words, or `None` (nothing recorded, or nothing this names).
    pub(super) fn unreachable(&self, server: &str) -> Option<BrokerUnreachable> {
        let (code, said) = self
            .0
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last
            .clone()?;
        let (reason, source): (UnavailableReason, Box<dyn std::error::Error + Send + Sync>) =
            match code {
                RDKafkaErrorCode::SSL => (UnavailableReason::Tls, Box::new(tls_failure(&said))),
                RDKafkaErrorCode::Authentication => {
                    (UnavailableReason::AuthenticationFailed, said.into())
                }
                RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown
                    if said.contains(REFUSED) =>
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

    /// What librdkafka reports when nothing listens at the bootstrap server, in this order.
    const REFUSED_AT_1: &str = "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: \
                                Connection refused (after 0ms in state CONNECT)";

    #[test]
    fn a_refused_connection_is_named_and_a_timeout_is_not() {
        let refused = recorded(RDKafkaErrorCode::BrokerTransportFailure, REFUSED_AT_1);
        // "Brokers are down" names no cause: the refusal before it is kept.
        refused.error(
            KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down",
        );
        let unreachable = refused.unreachable("127.0.0.1:1").unwrap();
        assert_eq!(unreachable.reason, UnavailableReason::ConnectionRefused);
        assert!(
            unreachable
                .source
                .unwrap()
                .to_string()
                .contains("Connection refused")
        );
        assert!(LastError::default().unreachable("h:1").is_none());
        let other = recorded(RDKafkaErrorCode::MessageTimedOut, "timed out");
        assert!(other.unreachable("h:1").is_none());
    }

    #[test]
    fn every_broker_refusing_wakes_the_waiting_and_nothing_else_does() {
        use futures_util::FutureExt as _;

        let context = LastError::default();
        let down = || {
            context.error(
                KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
                "2/2 brokers are down",
            );
        };
        let transport = |said: &str| {
            context.error(
                KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure),
                said,
            );
        };
        // Reported before the wait began: not heard.
        transport(REFUSED_AT_1);
        down();
        let mut waiting = Box::pin(context.refusals());
        assert!(waiting.as_mut().now_or_never().is_none());
        // One broker refused, the other took the connection and dropped it (or is slow).
        transport(
            "127.0.0.1:2/bootstrap: Connect to ipv4#127.0.0.1:2 failed: \
             Connection timed out (after 30000ms in state CONNECT)",
        );
        down();
        assert!(waiting.as_mut().now_or_never().is_none());
        // Both refused.
        transport(
            "127.0.0.1:2/bootstrap: Connect to ipv4#127.0.0.1:2 failed: \
             Connection refused (after 0ms in state CONNECT)",
        );
        assert!(
            waiting.as_mut().now_or_never().is_none(),
            "not all down yet"
        );
        down();
        let words = waiting.as_mut().now_or_never().expect("heard");
        assert!(words.starts_with("2/2 brokers are down: 127.0.0.1:1/bootstrap: "));
        assert!(
            words.contains("; 127.0.0.1:2/bootstrap: Connect to"),
            "{words}"
        );
    }
}
