//! librdkafka's own reports of a failed connection, kept for the adapter's errors: a TLS
//! handshake that fails, credentials the broker refuses or a broker that refuses the
//! connection surface only as an error event and a log line on the client's main queue,
//! while the operation itself just times out. The bus's clients share one [`LastError`]
//! (the producer's polling thread serves its queue), and a timed-out `declare` says what it
//! was. When every broker turned the client away so (a refused connection, a failed
//! handshake, refused credentials: none of which passes by waiting), the operations
//! waiting on the brokers hear it at once ([`LastError::turned_away`]) rather than time
//! out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::watch;

use crate::broker::TlsFailure;
use crate::bus::{BrokerUnreachable, UnavailableReason};

/// What librdkafka says of a connection the other end refused.
const REFUSED: &str = "Connection refused";

/// What librdkafka says of credentials the broker refused.
const SASL_REFUSED: &str = "SASL authentication error";

/// A client context recording librdkafka's last connection error; clones share it. What
/// it is told goes on to the `log` crate, as rdkafka's default context does.
#[derive(Debug, Clone, Default)]
pub(super) struct LastError(Arc<Reports>);

/// A failure and librdkafka's words for it.
type Failure = (RDKafkaErrorCode, String);

#[derive(Debug, Default)]
struct Reports {
    kept: Mutex<Kept>,
    /// Why the brokers turned the client away, each time every broker was down, each
    /// having been refused the connection, the handshake or the credentials last.
    turned_away: watch::Sender<Option<Failure>>,
}

#[derive(Debug, Default)]
struct Kept {
    /// The last failure worth naming: its code and librdkafka's words.
    last: Option<Failure>,
    /// Each broker's last failure (by librdkafka's name for it, `host:port/bootstrap` or
    /// `ssl://host:port/{id}`): a refused connection, a failed TLS handshake or refused
    /// credentials, `None` for any other transport failure.
    brokers: HashMap<String, Option<Failure>>,
}

impl ClientContext for LastError {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        // A failed handshake or sign-in is logged with its words just before its event
        // (both come through the client's main queue): either one is kept.
        let code = if log_message.contains("SSL handshake failed")
            || log_message.contains("certificate verify failed")
        {
            Some(RDKafkaErrorCode::SSL)
        } else if log_message.contains(SASL_REFUSED) {
            Some(RDKafkaErrorCode::Authentication)
        } else {
            None
        };
        if let Some(code) = code {
            // `[thrd:ssl://host:9094/bootstrap]: ssl://host:9094/bootstrap: SSL ...`: as
            // the event says it.
            let said = log_message
                .strip_prefix("[thrd:")
                .and_then(|rest| rest.split_once("]: "))
                .map_or(log_message, |(_, said)| said);
            self.record(code, said);
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
    /// transport, TLS or authentication failure is also kept as that broker's last;
    /// "brokers are down" when each one's last turned the client away (refused the
    /// connection, the handshake or the credentials) wakes the
    /// [`turned_away`](Self::turned_away) waiting.
    fn record(&self, code: RDKafkaErrorCode, said: &str) {
        let mut kept = self.0.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let turned_away = match code {
            RDKafkaErrorCode::BrokerTransportFailure => Some(said.contains(REFUSED)),
            RDKafkaErrorCode::SSL | RDKafkaErrorCode::Authentication => Some(true),
            _ => None,
        };
        if let Some(turned_away) = turned_away {
            // `{broker}: Connect to ipv4#127.0.0.1:1 failed: Connection refused (...)`
            let broker = said.split_once(": ").map_or(said, |(broker, _)| broker);
            let failure = turned_away.then(|| (code, said.to_owned()));
            kept.brokers.insert(broker.to_owned(), failure);
        }
        if code == RDKafkaErrorCode::AllBrokersDown {
            let failures: Option<Vec<&Failure>> =
                kept.brokers.values().map(Option::as_ref).collect();
            if let Some(failures) = failures.filter(|f| !f.is_empty()) {
                let why = why_turned_away(said, failures);
                self.0.turned_away.send_replace(Some(why));
            }
            if kept.last.is_some() {
                return;
            }
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
    /// turned the client away (refused the connection, failed the TLS handshake, refused
    /// the credentials; a broker that takes the connection and answers slowly never does):
    /// why, for the brokers at `server`. Never otherwise. Made before the client whose
    /// reports it waits for connects.
    pub(super) fn turned_away(
        &self,
        server: &str,
    ) -> impl std::future::Future<Output = BrokerUnreachable> + Send + 'static {
        let mut turned_away = self.0.turned_away.subscribe();
        let server = server.to_owned();
        async move {
            loop {
                if turned_away.changed().await.is_err() {
                    return std::future::pending().await;
                }
                let why = turned_away.borrow_and_update().clone();
                if let Some(why) = why.and_then(|(code, said)| unreachable(code, &said, &server)) {
                    return why;
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
        unreachable(code, &said, server)
    }
}

/// Why every broker turned the client away, from the failures each one had last: refused
/// credentials, else a failed handshake (what that broker said), else the refused
/// connections (`said`, "N/N brokers are down", with each one's words).
fn why_turned_away(said: &str, failures: Vec<&Failure>) -> Failure {
    let first = |wanted: RDKafkaErrorCode| {
        failures
            .iter()
            .filter(|(code, _)| *code == wanted)
            .min_by(|a, b| a.1.cmp(&b.1))
    };
    if let Some(failure) =
        first(RDKafkaErrorCode::Authentication).or_else(|| first(RDKafkaErrorCode::SSL))
    {
        return (*failure).clone();
    }
    let mut refusals: Vec<&str> = failures.iter().map(|(_, said)| said.as_str()).collect();
    refusals.sort_unstable();
    (
        RDKafkaErrorCode::AllBrokersDown,
        format!("{said}: {}", refusals.join("; ")),
    )
}

/// What librdkafka `said` with `code` means for the brokers at `server`, if it names a
/// reason.
fn unreachable(code: RDKafkaErrorCode, said: &str, server: &str) -> Option<BrokerUnreachable> {
    let (reason, source): (UnavailableReason, Box<dyn std::error::Error + Send + Sync>) = match code
    {
        RDKafkaErrorCode::SSL => (
            UnavailableReason::Tls,
            Box::new(tls_failure(&words(said, server))),
        ),
        RDKafkaErrorCode::Authentication => (
            UnavailableReason::AuthenticationFailed,
            words(said, server).into(),
        ),
        RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown
            if said.contains(REFUSED) =>
        {
            (UnavailableReason::ConnectionRefused, said.into())
        }
        _ => return None,
    };
    Some(BrokerUnreachable::new(reason, server, Some(source)))
}

/// What librdkafka said of one broker, for a line that names `server` already: without
/// the broker's name when it is `server`, the time in the state it failed in, nor the
/// advice to check `ssl.ca.location` (a [`TlsFailure`] gives its own).
/// `ssl://localhost:9094/bootstrap: SSL handshake failed: ...: broker certificate could not
/// be verified, verify that ... (after 2ms in state SSL_HANDSHAKE)` reads
/// `SSL handshake failed: ...`.
fn words(said: &str, server: &str) -> String {
    let mut words = said;
    if let Some((broker, rest)) = said.split_once(": ")
        && broker.contains(&format!("://{server}/"))
    {
        words = rest;
    }
    if let Some((before, _)) = words.rsplit_once(" (after ")
        && words.ends_with(')')
    {
        words = before;
    }
    if let Some((before, _)) = words.split_once(": broker certificate could not be verified") {
        words = before;
    }
    words.to_owned()
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

    /// What librdkafka's producer reports, in this order, when the broker's certificate is
    /// signed by a CA not trusted here (OpenSSL 3.0, librdkafka 2.12).
    const UNTRUSTED: &str = "ssl://localhost:9094/bootstrap: SSL handshake failed: \
                             error:0A000086:SSL routines::certificate verify failed: broker \
                             certificate could not be verified, verify that ssl.ca.location \
                             is correctly configured or root CA certificates are installed \
                             (install ca-certificates package) (after 2ms in state \
                             SSL_HANDSHAKE)";

    /// Likewise, for a wrong password.
    const WRONG_PASSWORD: &str = "sasl_ssl://localhost:9095/bootstrap: SASL authentication \
                                  error: Authentication failed during authentication due to \
                                  invalid credentials with SASL mechanism SCRAM-SHA-512 (after \
                                  311ms in state AUTH_REQ, 1 identical error(s) suppressed)";

    /// Reports `said` with `code`, then "all brokers are down", as a producer's queue does.
    fn down_after(context: &LastError, code: RDKafkaErrorCode, said: &str) {
        context.error(KafkaError::Global(code), said);
        context.error(
            KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down",
        );
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
        let mut waiting = Box::pin(context.turned_away("127.0.0.1:1"));
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
        let heard = waiting.as_mut().now_or_never().expect("heard");
        assert_eq!(heard.reason, UnavailableReason::ConnectionRefused);
        assert_eq!(heard.server, "127.0.0.1:1");
        let words = heard.source.unwrap().to_string();
        assert!(words.starts_with("2/2 brokers are down: 127.0.0.1:1/bootstrap: "));
        assert!(
            words.contains("; 127.0.0.1:2/bootstrap: Connect to"),
            "{words}"
        );
    }

    #[test]
    fn a_failed_handshake_wakes_the_waiting_in_a_few_words() {
        use futures_util::FutureExt as _;

        let context = LastError::default();
        let mut waiting = Box::pin(context.turned_away("localhost:9094"));
        // Logged first (by every client), then the event (the producer's).
        context.log(
            RDKafkaLogLevel::Error,
            "FAIL",
            &format!("[thrd:ssl://localhost:9094/bootstrap]: {UNTRUSTED}"),
        );
        assert!(waiting.as_mut().now_or_never().is_none());
        down_after(&context, RDKafkaErrorCode::SSL, UNTRUSTED);
        let heard = waiting.as_mut().now_or_never().expect("heard at once");
        assert_eq!(heard.reason, UnavailableReason::Tls);
        let failure = heard.source.as_ref().unwrap().downcast_ref::<TlsFailure>();
        let Some(TlsFailure::UntrustedCertificate { detail }) = failure else {
            panic!("{failure:?}")
        };
        assert_eq!(
            detail,
            "SSL handshake failed: error:0A000086:SSL routines::certificate verify failed"
        );
        // One broker in all: the log line's is the event's.
        assert_eq!(context.0.kept.lock().unwrap().brokers.len(), 1);
    }

    #[test]
    fn refused_credentials_wake_the_waiting_and_win_over_a_refused_connection() {
        use futures_util::FutureExt as _;

        let context = LastError::default();
        let mut waiting = Box::pin(context.turned_away("localhost:9095"));
        context.error(
            KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure),
            "sasl_ssl://localhost:9096/bootstrap: Connect to ipv4#127.0.0.1:9096 failed: \
             Connection refused (after 0ms in state CONNECT)",
        );
        down_after(&context, RDKafkaErrorCode::Authentication, WRONG_PASSWORD);
        let heard = waiting.as_mut().now_or_never().expect("heard at once");
        assert_eq!(heard.reason, UnavailableReason::AuthenticationFailed);
        assert_eq!(
            heard.source.unwrap().to_string(),
            "SASL authentication error: Authentication failed during authentication due to \
             invalid credentials with SASL mechanism SCRAM-SHA-512"
        );
        // Once the brokers are down, the time-out says the same.
        let kept = context.unreachable("localhost:9095").unwrap();
        assert_eq!(kept.reason, UnavailableReason::AuthenticationFailed);
    }

    #[test]
    fn the_words_name_another_broker_than_the_one_said() {
        assert_eq!(
            words(WRONG_PASSWORD, "k1:9095"),
            "sasl_ssl://localhost:9095/bootstrap: SASL authentication error: Authentication \
             failed during authentication due to invalid credentials with SASL mechanism \
             SCRAM-SHA-512"
        );
        assert_eq!(words("no broker named", "h:1"), "no broker named");
    }
}
