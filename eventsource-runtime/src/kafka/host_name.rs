//! A certificate for another host name, told apart from one that no CA trusted here signed.
//!
//! OpenSSL 3.0 fails both handshakes with the same words, "certificate verify failed": the
//! reason (`hostname mismatch`, `unable to get local issuer certificate`) is in the
//! connection's verify result, which librdkafka does not report. So when a handshake
//! fails so, the bus makes the handshake once more, alone, with the same CA and
//! certificate settings but without the host-name check
//! (`ssl.endpoint.identification.algorithm=none`): when that handshake verifies the
//! certificate, it is signed by a CA trusted here, and only its name is wrong
//! ([`TlsFailure::HostNameMismatch`]). That connection is plain TLS
//! (`security.protocol=ssl`, no `sasl.*` setting): no credentials go to a server whose name
//! was not verified, nothing is sent but librdkafka's first request (`ApiVersion`), and the
//! client is dropped as soon as the handshake is over.

use std::sync::{Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, DeliveryResult, ProducerContext};
use tokio::sync::oneshot;

use super::KafkaBus;
use crate::broker::TlsFailure;
use crate::bus::{BrokerUnreachable, BusError};

/// How long the second handshake may take (the broker answered the first one).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// What librdkafka logs when a broker's TLS handshake ends (`debug=broker`): any next
/// state but `DOWN` means it passed, the certificate verified. (The `debug=security` line
/// `Broker SSL certificate verified` is not logged for every connection: not for a
/// bootstrap server's, seen here with librdkafka 2.12.)
const HANDSHAKE_OVER: &str = "Broker changed state SSL_HANDSHAKE -> ";

/// The second handshake's context: says, once, whether its log tells of a verified
/// certificate or of a failed handshake (not of a refused connection: librdkafka goes on
/// to the host's next address). Logs nothing itself.
struct Verdict(Mutex<Option<mpsc::Sender<bool>>>);

impl ClientContext for Verdict {
    fn log(&self, _level: RDKafkaLogLevel, _fac: &str, said: &str) {
        let verified = if said.contains(HANDSHAKE_OVER) && !said.ends_with("-> DOWN") {
            true
        } else if said.contains("SSL handshake failed")
            || said.contains("certificate verify failed")
        {
            // OpenSSL's words may come on a line of their own, before the `SSL handshake
            // failed` of a retry a second later.
            false
        } else {
            return;
        };
        if let Some(verdict) = self.0.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = verdict.send(verified);
        }
    }

    fn error(&self, _error: KafkaError, _reason: &str) {}
}

impl ProducerContext for Verdict {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, (): ()) {}
}

impl KafkaBus {
    /// `error`, with a certificate that is trusted but not for the host name connected to
    /// told apart from an untrusted one (see the [module](self)). Any other error comes
    /// back as it is.
    pub(super) async fn told_apart(&self, mut error: BusError) -> BusError {
        let BusError::Unavailable(source) = &mut error else {
            return error;
        };
        let Some(unreachable) = source.downcast_mut::<BrokerUnreachable>() else {
            return error;
        };
        let Some(TlsFailure::UntrustedCertificate { detail }) = unreachable
            .source
            .as_deref()
            .and_then(|source| source.downcast_ref::<TlsFailure>())
        else {
            return error;
        };
        let detail = detail.clone();
        let checked = self.shared.settings.iter().rev().find_map(|(key, value)| {
            (key == "ssl.endpoint.identification.algorithm").then_some(value)
        });
        if checked.is_some_and(|algorithm| algorithm.eq_ignore_ascii_case("none")) {
            // Host names are not checked: the chain is what failed.
            return error;
        }
        if self.chain_verified().await {
            let host = self
                .shared
                .telemetry
                .server
                .as_ref()
                .map_or_else(|| self.shared.bootstrap.clone(), |(host, _)| host.clone());
            unreachable.source = Some(Box::new(TlsFailure::HostNameMismatch {
                host,
                detail: format!("signed by a CA trusted here, but not for this name: {detail}"),
            }));
        }
        error
    }

    /// Whether a TLS handshake with the brokers, without the host-name check, verifies
    /// their certificate: a client of its own, on a thread of its own (made, served and
    /// dropped there: each blocks), for up to [`HANDSHAKE_TIMEOUT`].
    async fn chain_verified(&self) -> bool {
        let mut config = ClientConfig::new();
        config.set_log_level(RDKafkaLogLevel::Debug);
        config.set("bootstrap.servers", &self.shared.bootstrap);
        for (key, value) in &self.shared.settings {
            if !key.starts_with("sasl.") {
                config.set(key, value);
            }
        }
        config
            .set("client.id", "eventsource-host-name-check")
            .set("security.protocol", "ssl")
            .set("ssl.endpoint.identification.algorithm", "none")
            .set("debug", "broker");
        let (answer, verified) = oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("eventsource-kafka-tls-check".to_owned())
            .spawn(move || {
                let (verdict, heard) = mpsc::channel();
                let context = Verdict(Mutex::new(Some(verdict)));
                let Ok(client) = config.create_with_context::<_, BaseProducer<Verdict>>(context)
                else {
                    return;
                };
                // Its log comes through its main queue, served here until the verdict.
                let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
                let verified = loop {
                    client.poll(Duration::from_millis(20));
                    match heard.try_recv() {
                        Ok(verified) => break verified,
                        Err(_) if Instant::now() >= deadline => break false,
                        Err(_) => {}
                    }
                };
                let _ = answer.send(verified);
                // The client is dropped here, on this thread.
            });
        if spawned.is_err() {
            return false;
        }
        // The thread waits for the handshake no longer than that.
        verified.await.unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::UnavailableReason;

    fn untrusted(server: &str) -> BusError {
        let failure = TlsFailure::UntrustedCertificate {
            detail: "SSL handshake failed: certificate verify failed".to_owned(),
        };
        BusError::unavailable(BrokerUnreachable::new(
            UnavailableReason::Tls,
            server,
            Some(Box::new(failure)),
        ))
    }

    fn failure_of(error: &BusError) -> Option<&TlsFailure> {
        let BusError::Unavailable(source) = error else {
            return None;
        };
        source
            .downcast_ref::<BrokerUnreachable>()?
            .source
            .as_deref()?
            .downcast_ref::<TlsFailure>()
    }

    #[tokio::test]
    async fn only_an_untrusted_certificate_with_host_names_checked_is_looked_at_again() {
        // Host names not checked: nothing to tell apart, and no handshake is made (one
        // to a port nothing listens on would wait for its verdict until
        // `HANDSHAKE_TIMEOUT`).
        let unchecked = KafkaBus::new("kafka://localhost:1")
            .unwrap()
            .with_setting("ssl.endpoint.identification.algorithm", "none");
        let started = std::time::Instant::now();
        let error = unchecked.told_apart(untrusted("localhost:1")).await;
        assert!(started.elapsed() < HANDSHAKE_TIMEOUT / 2);
        assert!(matches!(
            failure_of(&error),
            Some(TlsFailure::UntrustedCertificate { .. })
        ));
        // Any other error comes back as it was.
        let bus = KafkaBus::new("kafka://localhost:1").unwrap();
        let refused = BusError::unavailable(BrokerUnreachable::new(
            UnavailableReason::ConnectionRefused,
            "localhost:1",
            None,
        ));
        let error = bus.told_apart(refused).await;
        assert_eq!(
            error.unavailable_reason(),
            Some(UnavailableReason::ConnectionRefused)
        );
    }
}
