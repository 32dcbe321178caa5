//! TLS to a broker: what to trust and which client certificate to present
//! ([`BrokerTls`]), and why a TLS connection failed ([`TlsFailure`]).
//!
//! One TLS stack for RabbitMQ and NATS: rustls with *ring* (lapin with the `tls` feature,
//! async-nats always). Kafka's client, librdkafka, brings its own (OpenSSL, the
//! `kafka-ssl` feature): `kafka::KafkaBus::with_tls` hands the
//! same files to it as `ssl.*` settings.

use std::path::{Path, PathBuf};

/// What a bus trusts and presents over TLS: the system's root certificates unless a CA file
/// is given, and a client certificate when the broker wants one (RabbitMQ's
/// `fail_if_no_peer_cert`, `nats-server --tlsverify`, a Kafka listener with
/// `ssl.client.auth=required`).
///
/// Only paths are kept (no key material): the files are read on each connection, so a
/// renewed certificate is picked up at the next reconnection. Its `Debug` shows the paths.
///
/// ```
/// use eventsource_runtime::broker::BrokerTls;
///
/// let tls = BrokerTls::new()
///     .with_ca_file("/etc/ssl/broker/ca.pem")
///     .with_client_certificate("/etc/ssl/broker/client.pem", "/etc/ssl/broker/client-key.pem");
/// assert_eq!(tls.ca_file().map(|p| p.display().to_string()).as_deref(), Some("/etc/ssl/broker/ca.pem"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerTls {
    ca_file: Option<PathBuf>,
    client_certificate: Option<(PathBuf, PathBuf)>,
}

impl BrokerTls {
    /// The system's root certificates, no client certificate: what a managed broker with a
    /// public certificate (Amazon MQ, CloudAMQP, Synadia Cloud) needs.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Builder: trust the CA certificates of this PEM file instead of the system's roots.
    #[must_use]
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Builder: present this client certificate (a PEM file, the chain from the leaf up)
    /// and its private key (a PEM file: PKCS#8, RSA or SEC1).
    #[must_use]
    pub fn with_client_certificate(
        mut self,
        certificate: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.client_certificate = Some((certificate.into(), key.into()));
        self
    }

    /// The CA file, if one is given.
    #[must_use]
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// The client certificate's file and its key's, if given.
    #[must_use]
    pub fn client_certificate(&self) -> Option<(&Path, &Path)> {
        self.client_certificate
            .as_ref()
            .map(|(certificate, key)| (certificate.as_path(), key.as_path()))
    }
}

/// Why a TLS connection to a broker failed: the source of a
/// [`BrokerUnreachable`](crate::bus::BrokerUnreachable) whose reason is
/// [`UnavailableReason::Tls`](crate::bus::UnavailableReason::Tls). Its text is one line, for a
/// person; it never holds key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The server's certificate is not signed by a CA trusted here (the system's roots, or
    /// the CA file given), or is expired, not yet valid, revoked.
    #[error(
        "the server's certificate is not trusted ({detail}): give the CA that signed it \
         (`BrokerTls::with_ca_file`)"
    )]
    UntrustedCertificate {
        /// What the verifier said.
        detail: String,
    },
    /// The server's certificate is not valid for the host name connected to.
    #[error("the server's certificate is not valid for the host name `{host}` ({detail})")]
    HostNameMismatch {
        /// The host name of the URL.
        host: String,
        /// What the verifier said (the names the certificate is valid for).
        detail: String,
    },
    /// The server wants a client certificate and none is configured: its TLS alert said so
    /// (`said`), or it closed the connection right after the handshake, as such a server
    /// does over TLS 1.3 when its alert goes unread.
    #[error("{}", client_certificate_wanted(*said))]
    ClientCertificateWanted {
        /// The server's TLS alert said so.
        said: bool,
    },
    /// The server refused the client certificate that was presented: with its TLS alert,
    /// or (`None`) by closing the connection right after the handshake.
    #[error("{}", client_certificate_refused(alert.as_deref()))]
    ClientCertificateRefused {
        /// The TLS alert, as rustls names it.
        alert: Option<String>,
    },
    /// The server refused the handshake, for no reason read here.
    #[error("the server refused the TLS handshake (TLS alert {alert})")]
    HandshakeRefused {
        /// The TLS alert, as rustls names it.
        alert: String,
    },
    /// What answered is not a TLS server (a plain listener on this port?).
    #[error("the server does not speak TLS on this port ({detail}): is it a plain listener?")]
    NotTls {
        /// What the client saw.
        detail: String,
    },
    /// The server takes TLS connections only, and the URL asked for a plain one.
    #[error("the server takes TLS connections only: use `{scheme}://` ({detail})")]
    PlainRefused {
        /// The scheme that connects over TLS (`amqps`, `tls`, ...).
        scheme: &'static str,
        /// What the client saw.
        detail: String,
    },
    /// The TLS settings cannot be used: a file that cannot be read or holds no
    /// certificate or key, a TLS URL in a build without TLS.
    #[error("TLS settings: {0}")]
    Settings(String),
    /// Anything else the TLS layer said.
    #[error("{0}")]
    Other(String),
}

fn client_certificate_wanted(said: bool) -> String {
    let how = if said {
        "the server wants a client certificate (its TLS alert says so)"
    } else {
        "the server closed the connection right after the TLS handshake, as one that wants a \
         client certificate does to a client without one"
    };
    format!("{how}, and none is configured (`BrokerTls::with_client_certificate`)")
}

fn client_certificate_refused(alert: Option<&str>) -> String {
    match alert {
        Some(alert) => format!("the server refused the client certificate (TLS alert {alert})"),
        None => "the server closed the connection right after the TLS handshake: it did not \
                 accept the client certificate (is it signed by a CA the server trusts?)"
            .to_owned(),
    }
}

impl TlsFailure {
    /// What a connection closed by the server right after the TLS handshake means, with
    /// (`presented`) or without a client certificate.
    #[cfg(feature = "rabbitmq")]
    pub(crate) fn closed_after_handshake(presented: bool) -> Self {
        if presented {
            Self::ClientCertificateRefused { alert: None }
        } else {
            Self::ClientCertificateWanted { said: false }
        }
    }
}

#[cfg(any(feature = "rabbitmq", feature = "nats"))]
/// The first error of type `T` in `error`'s chain, looking into I/O errors too (whose
/// `source()` skips the error they wrap).
pub(crate) fn find_in_chain<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut next = Some(error);
    while let Some(current) = next {
        if let Some(found) = current.downcast_ref::<T>() {
            return Some(found);
        }
        let inner = current
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref);
        if let Some(found) = inner.and_then(|inner| find_in_chain::<T>(inner)) {
            return Some(found);
        }
        next = current.source();
    }
    None
}

#[cfg(any(all(feature = "tls", feature = "rabbitmq"), feature = "nats"))]
pub(crate) use stack::{classify, client_config};

/// The rustls side: the client settings built from a [`BrokerTls`], and its errors read.
#[cfg(any(all(feature = "tls", feature = "rabbitmq"), feature = "nats"))]
mod stack {
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls::{AlertDescription, CertificateError, ClientConfig, RootCertStore};

    use super::{BrokerTls, TlsFailure};

    /// The TLS alerts that say a presented client certificate was not accepted.
    const REJECTED_CERTIFICATE_ALERTS: [AlertDescription; 8] = [
        AlertDescription::BadCertificate,
        AlertDescription::UnsupportedCertificate,
        AlertDescription::CertificateRevoked,
        AlertDescription::CertificateExpired,
        AlertDescription::CertificateUnknown,
        AlertDescription::UnknownCA,
        AlertDescription::AccessDenied,
        AlertDescription::HandshakeFailure,
    ];

    /// The rustls client settings of `tls`: *ring*, the CA file's certificates or the
    /// system's roots, the client certificate if any. The files are read now.
    pub(crate) fn client_config(tls: &BrokerTls) -> Result<ClientConfig, TlsFailure> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        match tls.ca_file() {
            Some(path) => {
                let read = read(path, "CA file")?;
                let certificates = certificates(&read, path, "CA file")?;
                let (_, ignored) = roots.add_parsable_certificates(certificates);
                if roots.is_empty() || ignored > 0 {
                    return Err(TlsFailure::Settings(format!(
                        "the CA file {} holds a certificate that is not a valid CA certificate",
                        path.display()
                    )));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(TlsFailure::Settings(
                        "no root certificates found on this system (install the \
                         ca-certificates package, or give a CA file: `BrokerTls::with_ca_file`)"
                            .to_owned(),
                    ));
                }
            }
        }
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsFailure::Settings(e.to_string()))?
            .with_root_certificates(roots);
        match tls.client_certificate() {
            None => Ok(builder.with_no_client_auth()),
            Some((certificate, key)) => {
                let chain = certificates(
                    &read(certificate, "client certificate")?,
                    certificate,
                    "client certificate",
                )?;
                let key_pem = read(key, "client key")?;
                // The parser's error is not shown: it might quote what it read.
                let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
                    TlsFailure::Settings(format!(
                        "the client key {} holds no PEM private key (PKCS#8, RSA or SEC1)",
                        key.display()
                    ))
                })?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|error| {
                        TlsFailure::Settings(format!(
                            "the client certificate {} and the key {} cannot be used together: \
                             {error}",
                            certificate.display(),
                            key.display()
                        ))
                    })
            }
        }
    }

    fn read(path: &std::path::Path, what: &str) -> Result<Vec<u8>, TlsFailure> {
        std::fs::read(path).map_err(|error| {
            TlsFailure::Settings(format!(
                "cannot read the {what} {}: {error}",
                path.display()
            ))
        })
    }

    fn certificates(
        pem: &[u8],
        path: &std::path::Path,
        what: &str,
    ) -> Result<Vec<CertificateDer<'static>>, TlsFailure> {
        let certificates: Vec<_> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|error| {
                TlsFailure::Settings(format!(
                    "the {what} {} is not valid PEM: {error}",
                    path.display()
                ))
            })?;
        if certificates.is_empty() {
            return Err(TlsFailure::Settings(format!(
                "the {what} {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            )));
        }
        Ok(certificates)
    }

    /// What `error` means for a person, connecting to `host` with (`client_certificate`)
    /// or without a client certificate.
    pub(crate) fn classify(
        error: &rustls::Error,
        host: &str,
        client_certificate: bool,
    ) -> TlsFailure {
        match error {
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => TlsFailure::HostNameMismatch {
                host: host.to_owned(),
                detail: error.to_string(),
            },
            rustls::Error::InvalidCertificate(_) => TlsFailure::UntrustedCertificate {
                detail: error.to_string(),
            },
            rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => {
                TlsFailure::ClientCertificateWanted { said: true }
            }
            rustls::Error::AlertReceived(alert)
                if client_certificate && REJECTED_CERTIFICATE_ALERTS.contains(alert) =>
            {
                TlsFailure::ClientCertificateRefused {
                    alert: Some(format!("{alert:?}")),
                }
            }
            // What a TLS 1.2 server that requires a client certificate sends a client
            // without one.
            rustls::Error::AlertReceived(
                AlertDescription::HandshakeFailure | AlertDescription::BadCertificate,
            ) if !client_certificate => TlsFailure::ClientCertificateWanted { said: true },
            rustls::Error::AlertReceived(alert) => TlsFailure::HandshakeRefused {
                alert: format!("{alert:?}"),
            },
            rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
                TlsFailure::NotTls {
                    detail: error.to_string(),
                }
            }
            other => TlsFailure::Other(other.to_string()),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn each_failure_reads_for_a_person() {
            let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
            let said = classify(&unknown, "h", false).to_string();
            assert!(
                said.contains("not trusted") && said.contains("UnknownIssuer"),
                "{said}"
            );
            let name = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
            assert!(matches!(
                classify(&name, "h", false),
                TlsFailure::HostNameMismatch { .. }
            ));
            let wanted = rustls::Error::AlertReceived(AlertDescription::CertificateRequired);
            let said = TlsFailure::ClientCertificateWanted { said: true };
            assert_eq!(classify(&wanted, "h", false), said);
            let failure = rustls::Error::AlertReceived(AlertDescription::HandshakeFailure);
            assert_eq!(classify(&failure, "h", false), said);
            assert!(matches!(
                classify(&failure, "h", true),
                TlsFailure::ClientCertificateRefused { .. }
            ));
            let io = std::io::Error::new(std::io::ErrorKind::InvalidData, wanted.clone());
            assert_eq!(
                crate::broker::tls::find_in_chain::<rustls::Error>(&io),
                Some(&wanted)
            );
        }

        #[test]
        fn unreadable_files_are_named_and_never_quoted() {
            let missing = BrokerTls::new().with_ca_file("/nonexistent/ca.pem");
            let said = client_config(&missing).unwrap_err().to_string();
            assert!(said.contains("/nonexistent/ca.pem"), "{said}");
            let dir = std::env::temp_dir().join(format!("es-broker-tls-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let not_pem = dir.join("key.pem");
            std::fs::write(&not_pem, "s3cret-key-material").unwrap();
            let said = client_config(&BrokerTls::new().with_ca_file(&not_pem))
                .unwrap_err()
                .to_string();
            assert!(said.contains("no PEM certificate"), "{said}");
            assert!(!said.contains("s3cret"), "{said}");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
