//! Opening a pool, and telling why a connection failed: [`DatabaseUnreachable`] names the
//! server, and its [`ConnectFailure`] the reason people meet first (TLS, certificates,
//! a server that refuses plain connections), in one line.

use std::fmt;
use std::path::PathBuf;

use sqlx::Connection as _;
use sqlx::error::DatabaseError;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};

use super::liveness::{self, DEFAULT_PEER_TIMEOUT};
use super::{ACQUIRE_TIMEOUT, PING_AFTER_IDLE, POOL_SIZE, server_of, unavailable};
use crate::store::StoreError;

/// A database that could not be reached, and where (`host:port` or the socket, never the
/// password): the source of the [`StoreError::Unavailable`] a store's `connect` returns, with
/// the driver's error (connection refused, password authentication failed, TLS, ...) as its
/// own source.
///
/// Its message is one line: `cannot connect to PostgreSQL at localhost:5432`, then the
/// [`reason`](Self::reason) when it is one of those told apart, e.g. `: the server's
/// certificate is not signed by a trusted CA (sslrootcert, or the system's roots without
/// it)`. No key material and no password is ever part of it.
#[derive(Debug)]
#[non_exhaustive]
pub struct DatabaseUnreachable {
    /// The server's `host:port`, or its Unix socket.
    pub server: String,
    /// Why, when it is one of the failures told apart.
    pub reason: Option<ConnectFailure>,
    /// What the driver said.
    pub source: sqlx::Error,
}

impl fmt::Display for DatabaseUnreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot connect to PostgreSQL at {}", self.server)?;
        match &self.reason {
            Some(reason) => write!(f, ": {reason}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for DatabaseUnreachable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Why a connection to PostgreSQL failed, for the failures a deployment meets first: those
/// of TLS, certificates and authentication. The driver's own error stays the source of the
/// [`DatabaseUnreachable`] that carries this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectFailure {
    /// The server's certificate is not signed by a CA this client trusts.
    #[error(
        "the server's certificate is not signed by a trusted CA (sslrootcert, or the \
         system's roots without it)"
    )]
    UntrustedCertificate,
    /// The server's certificate is not valid for the host name connected to
    /// (`sslmode=verify-full`; sqlx 0.8 checks the name under `verify-ca` too).
    #[error("the server's certificate is not valid for the host name connected to")]
    HostNameMismatch,
    /// The server's certificate has expired or is not valid yet.
    #[error("the server's certificate has expired or is not valid yet")]
    CertificateNotCurrent,
    /// The server's certificate is unusable for another reason (revoked, wrong key usage,
    /// a bad signature, ...).
    #[error("the server's certificate is refused: {0}")]
    CertificateRefused(String),
    /// The server wants a client certificate it trusts (`sslcert` and `sslkey`), and
    /// none, or one it does not accept, was presented.
    #[error(
        "the server requires a client certificate it trusts for this user (sslcert and \
         sslkey)"
    )]
    ClientCertificateRequired,
    /// The server refuses connections without TLS (`sslmode=disable` or `allow`).
    #[error("the server refuses connections without TLS (use sslmode=verify-full)")]
    TlsRequired,
    /// TLS was required (`sslmode=require`, `verify-ca` or `verify-full`) and the server
    /// does not offer it.
    #[error("the server does not offer TLS, which sslmode requires")]
    ServerWithoutTls,
    /// TLS was required and this build has no TLS (the `tls` feature is off).
    #[error("sslmode requires TLS and eventsource-runtime was built without its `tls` feature")]
    TlsNotBuilt,
    /// A certificate or key file cannot be read.
    #[error("cannot read the {setting} file {}", .path.display())]
    CertificateFile {
        /// `sslrootcert`, `sslcert` or `sslkey` (or their `PGSSL*` variables).
        setting: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The password was refused (or the user does not exist).
    #[error("password authentication failed for user {user}")]
    PasswordRefused {
        /// The user.
        user: String,
    },
}

/// What `connect` does with `url`: one connection first, whose error says why (refused,
/// a wrong password, TLS) where the pool's would only say that it timed out waiting, then
/// the pool.
pub(crate) async fn open_pool(url: &str) -> Result<PgPool, StoreError> {
    // Out of every log line `telemetry::init()` writes, whatever the driver logs.
    crate::telemetry::secrets::hide_url_password(url);
    let options: PgConnectOptions = url.parse().map_err(unavailable)?;
    let unreachable = |source: sqlx::Error| {
        let (host, port) = server_of(&options);
        let server = if options.get_socket().is_some() {
            host
        } else {
            format!("{host}:{port}")
        };
        let reason = failure_of(&source, &options, url);
        StoreError::Unavailable(Box::new(DatabaseUnreachable {
            server,
            reason,
            source,
        }))
    };
    match tokio::time::timeout(ACQUIRE_TIMEOUT, sqlx::PgConnection::connect_with(&options)).await {
        Ok(Ok(probe)) => {
            let _ = probe.close().await;
        }
        Ok(Err(error)) => return Err(unreachable(error)),
        Err(_) => {
            return Err(unreachable(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {}s", ACQUIRE_TIMEOUT.as_secs()),
            ))));
        }
    }
    PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        // A backend whose client went silent (a vanished host, a black hole) ends within a
        // bound, with whatever it held.
        .after_connect(|connection, _| {
            Box::pin(liveness::bound_session(connection, DEFAULT_PEER_TIMEOUT))
        })
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    connection.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await
        .map_err(unavailable)
}

/// The reason of a failed connection, when it is one told apart.
fn failure_of(
    error: &sqlx::Error,
    options: &PgConnectOptions,
    url: &str,
) -> Option<ConnectFailure> {
    let tls_required = matches!(
        options.get_ssl_mode(),
        PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull
    );
    match error {
        sqlx::Error::Database(database) => failure_of_server(database.as_ref(), options),
        sqlx::Error::Tls(inner) => {
            if let Some(reason) = tls_failure(inner.as_ref()) {
                return Some(reason);
            }
            // sqlx's own words: the server answered `N` to the TLS request, or this build
            // has no TLS.
            let text = inner.to_string();
            if text.contains("server does not support TLS") {
                Some(ConnectFailure::ServerWithoutTls)
            } else if tls_required && !cfg!(feature = "tls") {
                Some(ConnectFailure::TlsNotBuilt)
            } else {
                unreadable_file(url)
            }
        }
        sqlx::Error::Io(io) => {
            if let Some(reason) = io.get_ref().and_then(tls_failure) {
                return Some(reason);
            }
            if matches!(
                io.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ) {
                unreadable_file(url)
            } else {
                None
            }
        }
        sqlx::Error::Configuration(_) => unreadable_file(url),
        _ => None,
    }
}

/// What the server said, when it refused the connection for a reason told apart.
fn failure_of_server(
    error: &dyn DatabaseError,
    options: &PgConnectOptions,
) -> Option<ConnectFailure> {
    let message = error.message();
    match error.code().as_deref() {
        // invalid_authorization_specification: pg_hba.conf refused the connection.
        Some("28000") => {
            if message.contains("no encryption") {
                Some(ConnectFailure::TlsRequired)
            } else if message.contains("client certificate")
                || message.contains("certificate authentication failed")
            {
                Some(ConnectFailure::ClientCertificateRequired)
            } else {
                None
            }
        }
        // invalid_password
        Some("28P01") => Some(ConnectFailure::PasswordRefused {
            user: options.get_username().to_owned(),
        }),
        _ => None,
    }
}

/// The reason of a TLS failure from rustls, if `error` is one.
#[cfg(feature = "tls")]
fn tls_failure(error: &(dyn std::error::Error + Send + Sync + 'static)) -> Option<ConnectFailure> {
    use rustls::{AlertDescription, CertificateError};

    let rustls_error = error.downcast_ref::<rustls::Error>()?;
    Some(match rustls_error {
        rustls::Error::InvalidCertificate(certificate) => match certificate {
            CertificateError::UnknownIssuer => ConnectFailure::UntrustedCertificate,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                ConnectFailure::HostNameMismatch
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => ConnectFailure::CertificateNotCurrent,
            other => ConnectFailure::CertificateRefused(
                rustls::Error::InvalidCertificate(other.clone()).to_string(),
            ),
        },
        rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown,
        ) => ConnectFailure::ClientCertificateRequired,
        _ => return None,
    })
}

/// Without TLS there are no TLS failures.
#[cfg(not(feature = "tls"))]
fn tls_failure(_: &(dyn std::error::Error + Send + Sync + 'static)) -> Option<ConnectFailure> {
    None
}

/// The first certificate or key file the connection names (in its URL, else in `PGSSL*`)
/// that cannot be read.
fn unreadable_file(url: &str) -> Option<ConnectFailure> {
    [
        ("sslrootcert", "PGSSLROOTCERT"),
        ("sslcert", "PGSSLCERT"),
        ("sslkey", "PGSSLKEY"),
    ]
    .into_iter()
    .find_map(|(setting, variable)| {
        let path = url_parameter(url, setting).or_else(|| std::env::var(variable).ok())?;
        // An inline PEM (sqlx takes those too) is no file.
        if path.trim_start().starts_with("-----BEGIN") || std::fs::read(&path).is_ok() {
            return None;
        }
        Some(ConnectFailure::CertificateFile {
            setting,
            path: PathBuf::from(path),
        })
    })
}

/// The value of the query parameter `name` in `url` (or its sqlx spelling `ssl-...`),
/// percent-decoded.
fn url_parameter(url: &str, name: &str) -> Option<String> {
    let dashed = name.replacen("ssl", "ssl-", 1);
    let (_, query) = url.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name || key == dashed).then(|| {
            let value = value.replace('+', " ");
            percent_encoding::percent_decode_str(&value)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::url_parameter;

    #[test]
    fn url_parameters_are_found_and_decoded() {
        let url = "postgres://u:p@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&ssl-key=k";
        assert_eq!(
            url_parameter(url, "sslrootcert").as_deref(),
            Some("/etc/ca.pem")
        );
        assert_eq!(url_parameter(url, "sslkey").as_deref(), Some("k"));
        assert_eq!(url_parameter(url, "sslcert"), None);
        assert_eq!(url_parameter("postgres://h/db", "sslcert"), None);
    }
}
