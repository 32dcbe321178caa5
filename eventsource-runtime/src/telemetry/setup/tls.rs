//! TLS for OTLP export: the files named by `OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]CERTIFICATE`,
//! `_CLIENT_CERTIFICATE` and `_CLIENT_KEY`, read once when the exporter is built, turned into
//! the HTTP client's rustls settings (the `tls` feature) or the gRPC channel's (`otlp-grpc`).
//! A custom CA replaces the system's roots; without one, the system's roots are used.

// With neither feature, the files are read (and checked) but nothing uses them: an https
// endpoint is a warning then.
#![cfg_attr(not(any(feature = "tls", feature = "otlp-grpc")), allow(dead_code))]

use super::InitError;
use super::settings::{TlsFile, TlsFiles};

/// The PEM contents of one signal's TLS files.
#[derive(Debug, Default)]
pub(super) struct TlsMaterial {
    /// The CA certificates.
    ca: Option<Pem>,
    /// The client certificate and its key.
    identity: Option<(Pem, Pem)>,
}

/// A file's PEM contents, and the variable that named the file.
#[derive(Debug)]
struct Pem {
    /// For the HTTP client's errors (tonic checks the PEM itself, in its own words).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    variable: String,
    contents: Vec<u8>,
}

impl TlsMaterial {
    /// Reads the files; a file that cannot be read, or a client certificate without its
    /// key (or the reverse), is an error naming the variable.
    pub(super) fn read(files: &TlsFiles) -> Result<Self, InitError> {
        let read = |file: &TlsFile| {
            std::fs::read(&file.path)
                .map(|contents| Pem {
                    variable: file.variable.clone(),
                    contents,
                })
                .map_err(|error| InitError::Tls {
                    variable: file.variable.clone(),
                    problem: format!("cannot read {}: {error}", file.path.display()),
                })
        };
        let ca = files.ca.as_ref().map(read).transpose()?;
        let identity = match (&files.client_certificate, &files.client_key) {
            (None, None) => None,
            (Some(certificate), Some(key)) => Some((read(certificate)?, read(key)?)),
            (Some(set), None) | (None, Some(set)) => {
                let missing = if files.client_key.is_none() {
                    "CLIENT_KEY"
                } else {
                    "CLIENT_CERTIFICATE"
                };
                return Err(InitError::Tls {
                    variable: set.variable.clone(),
                    problem: format!(
                        "mutual TLS needs both the client certificate and its key; \
                         OTEL_EXPORTER_OTLP_{missing} (or its per-signal variant) is not set"
                    ),
                });
            }
        };
        Ok(Self { ca, identity })
    }
}

/// The HTTP client's TLS settings: rustls with *ring*, the custom CA or the system's roots,
/// and the client certificate if any. Warns (in `warnings`) when the system has no roots.
#[cfg(feature = "tls")]
pub(super) fn http_config(
    material: &TlsMaterial,
    warnings: &mut Vec<String>,
) -> Result<ureq::tls::TlsConfig, InitError> {
    use std::sync::Arc;
    use ureq::tls::{Certificate, ClientCert, PemItem, RootCerts, TlsConfig, TlsProvider};

    let pem_items = |variable: &str, pem: &[u8]| {
        ureq::tls::parse_pem(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| InitError::Tls {
                variable: variable.to_owned(),
                problem: format!("not valid PEM: {error}"),
            })
    };
    let certificates =
        |variable: &str, pem: &[u8]| -> Result<Vec<Certificate<'static>>, InitError> {
            let certificates: Vec<_> = pem_items(variable, pem)?
                .into_iter()
                .filter_map(|item| match item {
                    PemItem::Certificate(certificate) => Some(certificate),
                    _ => None,
                })
                .collect();
            if certificates.is_empty() {
                return Err(InitError::Tls {
                    variable: variable.to_owned(),
                    problem: "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned(),
                });
            }
            Ok(certificates)
        };

    let roots = match &material.ca {
        Some(ca) => RootCerts::new_with_certs(&certificates(&ca.variable, &ca.contents)?),
        None => {
            let found = rustls_native_certs::load_native_certs();
            let roots: Vec<_> = found
                .certs
                .iter()
                .map(|der| Certificate::from_der(der.as_ref()).to_owned())
                .collect();
            if roots.is_empty() {
                warnings.push(
                    "no root certificates found on this system (install the ca-certificates \
                     package, or name a CA file with OTEL_EXPORTER_OTLP_CERTIFICATE): HTTPS \
                     exports will fail"
                        .to_owned(),
                );
            }
            RootCerts::new_with_certs(&roots)
        }
    };
    let client = match &material.identity {
        None => None,
        Some((certificate, key)) => {
            let chain = certificates(&certificate.variable, &certificate.contents)?;
            let key_variable = &key.variable;
            let key = pem_items(key_variable, &key.contents)?
                .into_iter()
                .find_map(|item| match item {
                    PemItem::PrivateKey(key) => Some(key),
                    _ => None,
                })
                .ok_or_else(|| InitError::Tls {
                    variable: key_variable.clone(),
                    problem: "holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC)"
                        .to_owned(),
                })?;
            Some(ClientCert::new_with_certs(&chain, key))
        }
    };
    Ok(TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .root_certs(roots)
        .client_cert(client)
        .build())
}

/// The gRPC channel's TLS settings: the custom CA or the system's roots, and the client
/// identity if any (tonic checks the PEM when the channel is built).
#[cfg(feature = "otlp-grpc")]
pub(super) fn grpc_config(
    material: &TlsMaterial,
) -> opentelemetry_otlp::tonic_types::transport::ClientTlsConfig {
    use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};

    let config = ClientTlsConfig::new();
    let config = match &material.ca {
        Some(ca) => config.ca_certificate(Certificate::from_pem(&ca.contents)),
        None => config.with_native_roots(),
    };
    match &material.identity {
        Some((certificate, key)) => {
            config.identity(Identity::from_pem(&certificate.contents, &key.contents))
        }
        None => config,
    }
}
