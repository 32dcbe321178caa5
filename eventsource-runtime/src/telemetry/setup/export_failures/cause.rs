//! Why an export failed, named for a person: the exporters report a chain of error texts
//! ("HTTP export failed: network error (io: Broken pipe (os error 32))", "transport error:
//! connection error: stream closed because of a broken pipe") whose last words depend on
//! where the failure surfaced. The cause is what the warning lines say first, and what
//! "first failure of its kind" is keyed on, so the span and metric exporters failing for one
//! reason are one line.

/// What is known about the exporter when its export fails, beyond the error text.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Circumstances {
    /// The endpoint is `https`.
    pub(super) https: bool,
    /// A client certificate (mutual TLS) is configured for this signal.
    pub(super) client_certificate: bool,
    /// An export of this signal got through before.
    pub(super) delivered_before: bool,
}

/// Why an export failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Cause {
    /// The collector turned the client away for want of a client certificate, none being
    /// configured: for sure when its TLS alert says so (`CertificateRequired`), else the
    /// best reading of what it did.
    ClientCertificateWanted {
        /// What it did.
        sign: Sign,
    },
    /// The collector refused the TLS handshake with `alert`, and a client certificate was
    /// sent: it did not accept it.
    ClientCertificateRejected {
        /// The TLS alert's name, as rustls spells it.
        alert: String,
    },
    /// The collector refused the TLS handshake with `alert`, for no reason read here.
    HandshakeRefused {
        /// The TLS alert's name, as rustls spells it.
        alert: String,
    },
    /// The collector's certificate is not trusted here.
    UntrustedCertificate,
    /// Nothing listens at the endpoint.
    ConnectionRefused,
    /// No answer in time.
    TimedOut,
    /// The endpoint's host name does not resolve.
    NameResolution,
    /// The connection was reset or closed under the request.
    ConnectionLost,
    /// The collector answered with an error status.
    HttpStatus,
    /// Anything else: the error text on one line.
    Other(String),
}

/// What a collector that turned a client without a certificate away did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Sign {
    /// It sent the TLS alert `CertificateRequired`: it said so.
    CertificateRequired,
    /// It sent a handshake-failure alert (`HandshakeFailure`, `BadCertificate`), which such a
    /// collector sends a client without a certificate over TLS 1.2.
    HandshakeFailureAlert,
    /// It had closed the connection when the first request was written, before any export
    /// got through (its alert went unread: the refusal surfaced on the client's write, as a
    /// broken pipe).
    Closed,
}

/// The TLS alerts with which a collector that requires a client certificate turns away a
/// client without one (TLS 1.2 servers: OpenSSL sends `HandshakeFailure`, Go `BadCertificate`;
/// TLS 1.3 ones `CertificateRequired`).
const NO_CERTIFICATE_ALERTS: [&str; 2] = ["HandshakeFailure", "BadCertificate"];

/// The TLS alerts that say the client certificate that was sent was not accepted.
const REJECTED_CERTIFICATE_ALERTS: [&str; 8] = [
    "BadCertificate",
    "UnsupportedCertificate",
    "CertificateRevoked",
    "CertificateExpired",
    "CertificateUnknown",
    "UnknownCA",
    "AccessDenied",
    "HandshakeFailure",
];

/// The variables a client certificate is configured with, for the warning lines.
const CLIENT_CERTIFICATE_VARIABLES: &str = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and \
     OTEL_EXPORTER_OTLP_CLIENT_KEY (or their _TRACES_ / _METRICS_ variants)";

impl Cause {
    /// The cause of `error` (the exporter's whole error text) under `known`.
    pub(super) fn of(error: &str, known: Circumstances) -> Self {
        let lower = error.to_ascii_lowercase();
        if let Some(alert) = received_alert(error) {
            return if alert == "CertificateRequired" {
                Self::ClientCertificateWanted {
                    sign: Sign::CertificateRequired,
                }
            } else if known.client_certificate && REJECTED_CERTIFICATE_ALERTS.contains(&alert) {
                Self::ClientCertificateRejected {
                    alert: alert.to_owned(),
                }
            } else if !known.client_certificate && NO_CERTIFICATE_ALERTS.contains(&alert) {
                Self::ClientCertificateWanted {
                    sign: Sign::HandshakeFailureAlert,
                }
            } else {
                Self::HandshakeRefused {
                    alert: alert.to_owned(),
                }
            };
        }
        // A TLS collector that had closed the connection when the first request was written
        // (a broken pipe: the handshake went through on the client's side), before any export
        // got through, no client certificate being sent: the way one that requires it says
        // no when its alert goes unread. A reset or an early end of the stream is not read as
        // this: a server that is no TLS server, or went down mid-handshake, does that too.
        let broken_pipe = lower.contains("broken pipe");
        if broken_pipe && known.https && !known.client_certificate && !known.delivered_before {
            return Self::ClientCertificateWanted { sign: Sign::Closed };
        }
        for (needle, cause) in [
            ("connection refused", Self::ConnectionRefused),
            ("invalid peer certificate", Self::UntrustedCertificate),
            ("certificate", Self::UntrustedCertificate),
            ("timed out", Self::TimedOut),
            ("timeout", Self::TimedOut),
            ("dns", Self::NameResolution),
            ("failed to lookup", Self::NameResolution),
            ("name resolution", Self::NameResolution),
            ("broken pipe", Self::ConnectionLost),
            ("connection reset", Self::ConnectionLost),
            ("unexpected eof", Self::ConnectionLost),
            ("status", Self::HttpStatus),
        ] {
            if lower.contains(needle) {
                return cause;
            }
        }
        Self::Other(super::short(error))
    }

    /// Whether the cause is the collector's as a whole (its address, its TLS), rather than
    /// one signal's endpoint (an error status for `/v1/metrics` only, say): the first
    /// failure of such a cause is one line for spans and metrics together.
    pub(super) fn of_the_collector(&self) -> bool {
        !matches!(self, Self::HttpStatus | Self::Other(_))
    }

    /// The cause's name, for "first of its kind" (the wanted client certificate is one kind,
    /// whatever the sign).
    pub(super) fn kind(&self) -> String {
        match self {
            Self::ClientCertificateWanted { .. } => "client certificate wanted".to_owned(),
            Self::Other(text) => text.clone(),
            other => other.label(),
        }
    }

    /// A short name, for the summary and shutdown lines that refer back to the warning.
    pub(super) fn label(&self) -> String {
        match self {
            Self::ClientCertificateWanted {
                sign: Sign::CertificateRequired,
            } => "the collector wants a client certificate".to_owned(),
            Self::ClientCertificateWanted { .. } => {
                "the collector most likely wants a client certificate".to_owned()
            }
            Self::ClientCertificateRejected { alert } => {
                format!("the collector did not accept the client certificate (TLS alert {alert})")
            }
            Self::HandshakeRefused { alert } => {
                format!("the collector refused the TLS connection (alert {alert})")
            }
            Self::UntrustedCertificate => "the collector's certificate is not trusted".to_owned(),
            Self::ConnectionRefused => "connection refused".to_owned(),
            Self::TimedOut => "timed out".to_owned(),
            Self::NameResolution => "the collector's host name does not resolve".to_owned(),
            Self::ConnectionLost => "the connection was closed or reset".to_owned(),
            Self::HttpStatus => "the collector answered with an error status".to_owned(),
            // Its text is in the first warning line, once.
            Self::Other(_) => "the exporter's error".to_owned(),
        }
    }

    /// What the first warning line says, before the transport's own words: what happened,
    /// and what to do where that is known.
    pub(super) fn explanation(&self) -> String {
        match self {
            Self::ClientCertificateWanted { sign } => {
                let (refused, wants) = match sign {
                    Sign::CertificateRequired => (
                        "the collector refused the TLS handshake".to_owned(),
                        "it wants a client certificate (its alert says so)",
                    ),
                    Sign::HandshakeFailureAlert => (
                        "the collector refused the TLS handshake with a handshake-failure alert, \
                         as one that requires a client certificate does to a client without one"
                            .to_owned(),
                        "it most likely wants a client certificate",
                    ),
                    Sign::Closed => (
                        "the collector seems to have refused the TLS handshake: it had closed \
                         the connection when the first request went out, before any export got \
                         through, as one that requires a client certificate does to a client \
                         without one when its alert goes unread"
                            .to_owned(),
                        "it most likely wants a client certificate",
                    ),
                };
                format!(
                    "{refused}: {wants}, and none is configured; set \
                     {CLIENT_CERTIFICATE_VARIABLES} to PEM files of a certificate the collector \
                     trusts and its key"
                )
            }
            Self::ClientCertificateRejected { alert } => format!(
                "the collector refused the TLS handshake with alert {alert}: it did not accept \
                 the client certificate named by OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE (or its \
                 _TRACES_ / _METRICS_ variant); check that its CA is one the collector trusts"
            ),
            Self::HandshakeRefused { alert } => {
                format!("the collector refused the TLS handshake with alert {alert}")
            }
            Self::UntrustedCertificate => "the collector's certificate is not trusted (the \
                 system's roots, or the CA file named by OTEL_EXPORTER_OTLP_CERTIFICATE, do not \
                 vouch for it)"
                .to_owned(),
            Self::Other(_) => "failed".to_owned(),
            other => other.label(),
        }
    }
}

/// The TLS alert the collector sent, in rustls's words ("received fatal alert:
/// CertificateRequired").
fn received_alert(error: &str) -> Option<&str> {
    let (_, rest) = error.split_once("received fatal alert: ")?;
    let end = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    Some(&rest[..end]).filter(|alert| !alert.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_CERTIFICATE: Circumstances = Circumstances {
        https: true,
        client_certificate: false,
        delivered_before: false,
    };

    #[test]
    fn a_certificate_required_alert_is_a_wanted_client_certificate_for_sure() {
        let error = "Operation failed: HTTP export failed: network error (io: received fatal \
                     alert: CertificateRequired)";
        assert_eq!(
            Cause::of(error, NO_CERTIFICATE),
            Cause::ClientCertificateWanted {
                sign: Sign::CertificateRequired
            }
        );
    }

    #[test]
    fn a_broken_pipe_before_anything_got_through_without_a_certificate_is_the_likely_reading() {
        let http = "HTTP export failed: network error (io: Broken pipe (os error 32))";
        let grpc = "TonicTracesClient export failed with gRPC code: Unknown: transport error: \
                    connection error: stream closed because of a broken pipe";
        for error in [http, grpc] {
            assert_eq!(
                Cause::of(error, NO_CERTIFICATE),
                Cause::ClientCertificateWanted { sign: Sign::Closed },
                "{error}"
            );
            // Over plain HTTP, with a certificate, or after exports got through: a lost
            // connection, nothing more is claimed. Nor for a reset (a server that is no TLS
            // server, or went down mid-handshake, resets too).
            for known in [
                Circumstances {
                    https: false,
                    ..NO_CERTIFICATE
                },
                Circumstances {
                    client_certificate: true,
                    ..NO_CERTIFICATE
                },
                Circumstances {
                    delivered_before: true,
                    ..NO_CERTIFICATE
                },
            ] {
                assert_eq!(Cause::of(error, known), Cause::ConnectionLost, "{error}");
            }
        }
        let reset = "network error (io: Connection reset by peer (os error 104))";
        assert_eq!(Cause::of(reset, NO_CERTIFICATE), Cause::ConnectionLost);
    }

    #[test]
    fn other_alerts_name_the_alert_and_a_sent_certificate_that_was_refused() {
        let error = "network error (io: received fatal alert: UnknownCA)";
        assert_eq!(
            Cause::of(error, NO_CERTIFICATE),
            Cause::HandshakeRefused {
                alert: "UnknownCA".to_owned()
            }
        );
        let with_certificate = Circumstances {
            client_certificate: true,
            ..NO_CERTIFICATE
        };
        assert_eq!(
            Cause::of(error, with_certificate),
            Cause::ClientCertificateRejected {
                alert: "UnknownCA".to_owned()
            }
        );
        let handshake = "received fatal alert: HandshakeFailure";
        assert_eq!(
            Cause::of(handshake, NO_CERTIFICATE),
            Cause::ClientCertificateWanted {
                sign: Sign::HandshakeFailureAlert
            }
        );
    }

    #[test]
    fn the_usual_transport_failures_are_named() {
        for (error, cause) in [
            (
                "network error (io: Connection refused (os error 111))",
                Cause::ConnectionRefused,
            ),
            (
                "network error (rustls: invalid peer certificate: UnknownIssuer)",
                Cause::UntrustedCertificate,
            ),
            ("network error (timeout: global)", Cause::TimedOut),
            (
                "HTTP export failed. Url: x, Status Code: 404, Response: ",
                Cause::HttpStatus,
            ),
        ] {
            assert_eq!(Cause::of(error, NO_CERTIFICATE), cause, "{error}");
        }
        assert_eq!(
            Cause::of("something\n  new", NO_CERTIFICATE),
            Cause::Other("something new".to_owned())
        );
    }

    #[test]
    fn the_wanted_certificate_is_one_kind_whatever_the_sign() {
        let signs = [
            Sign::CertificateRequired,
            Sign::HandshakeFailureAlert,
            Sign::Closed,
        ];
        for sign in signs {
            let cause = Cause::ClientCertificateWanted { sign: sign.clone() };
            assert_eq!(cause.kind(), "client certificate wanted");
            let explanation = cause.explanation();
            assert!(
                explanation.contains("refused the TLS handshake")
                    && explanation.contains("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE")
                    && explanation.contains("OTEL_EXPORTER_OTLP_CLIENT_KEY"),
                "{explanation}"
            );
            // "Most likely" unless the alert said so.
            assert_eq!(
                explanation.contains("most likely"),
                sign != Sign::CertificateRequired,
                "{explanation}"
            );
        }
    }
}
