//! Connecting: plain for `amqp://`, over TLS (rustls with *ring*, the `tls` feature) for
//! `amqps://`, with the bus's [`BrokerTls`] or the system's roots.
//!
//! lapin's own TLS path would fall back to a plain connection for `amqps://` in a build
//! without a TLS backend, and takes its roots from its own features: the TLS stream is
//! made here instead, and handed to lapin's connection.

use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Connection, ConnectionProperties};

use crate::broker::{BrokerTls, TlsFailure};
use crate::bus::{BrokerUnreachable, BusError, UnavailableReason};

/// A failure to connect over TLS to `server`, for `failure`.
fn tls_failed(server: &str, failure: TlsFailure) -> BusError {
    BusError::unavailable(BrokerUnreachable::new(
        UnavailableReason::Tls,
        server,
        Some(Box::new(failure)),
    ))
}

/// A new connection to the broker at `url` (already checked), over TLS if its scheme is
/// `amqps`.
pub(super) async fn connect(
    url: &str,
    tls: Option<&BrokerTls>,
    server: &str,
) -> Result<Connection, BusError> {
    let uri: AMQPUri = url.parse().map_err(|e: String| {
        BusError::unavailable(BrokerUnreachable::new(
            UnavailableReason::InvalidUrl,
            "the URL given",
            Some(e.into()),
        ))
    })?;
    match uri.scheme {
        AMQPScheme::AMQP => {
            if tls.is_some() {
                return Err(tls_failed(
                    server,
                    TlsFailure::Settings(
                        "TLS settings were given for an `amqp://` URL: use `amqps://`".to_owned(),
                    ),
                ));
            }
            let (host, port) = (uri.authority.host.clone(), uri.authority.port);
            match Connection::connect_uri(uri, ConnectionProperties::default()).await {
                Ok(connection) => Ok(connection),
                Err(error) if opening_failed(&error) && speaks_tls(host, port).await => {
                    Err(tls_failed(
                        server,
                        TlsFailure::PlainRefused {
                            scheme: "amqps",
                            detail: "it answers a TLS hello, and ended the AMQP one".to_owned(),
                        },
                    ))
                }
                Err(error) => Err(super::error::connect_failed(error, server, None)),
            }
        }
        AMQPScheme::AMQPS => connect_tls(uri, tls, server).await,
    }
}

/// Whether a plain connection failed the way a TLS listener makes it fail: an answer that is
/// no AMQP frame (a TLS alert record), or the connection closed.
fn opening_failed(error: &lapin::Error) -> bool {
    match error.kind() {
        lapin::ErrorKind::ParsingError(_) => true,
        lapin::ErrorKind::IOError(io) => matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::BrokenPipe
        ),
        _ => false,
    }
}

/// Whether the server at `host:port` answers a TLS hello in TLS (a handshake or an alert
/// record), within two seconds: asked only after a plain connection failed.
async fn speaks_tls(host: String, port: u16) -> bool {
    use std::io::{Read as _, Write as _};
    use std::net::ToSocketAddrs as _;

    let probe = move || -> std::io::Result<bool> {
        const WAIT: std::time::Duration = std::time::Duration::from_secs(2);
        let Some(addr) = (host.as_str(), port).to_socket_addrs()?.next() else {
            return Ok(false);
        };
        let mut stream = std::net::TcpStream::connect_timeout(&addr, WAIT)?;
        stream.set_read_timeout(Some(WAIT))?;
        // A TLS handshake record holding a truncated ClientHello: a TLS server answers with
        // a record of its own (an alert), an AMQP server with its protocol header.
        stream.write_all(&[0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00])?;
        let mut first = [0_u8; 2];
        stream.read_exact(&mut first)?;
        Ok(matches!(first, [0x15 | 0x16, 0x03]))
    };
    tokio::task::spawn_blocking(probe)
        .await
        .is_ok_and(|answer| answer.unwrap_or(false))
}

/// Over TLS: the handshake made here with rustls, the AMQP connection by lapin over it.
#[cfg(feature = "tls")]
async fn connect_tls(
    uri: AMQPUri,
    tls: Option<&BrokerTls>,
    server: &str,
) -> Result<Connection, BusError> {
    use std::sync::Arc;

    use lapin::tcp::{AMQPUriTcpExt as _, RustlsConnector, TLSConfig};

    let default = BrokerTls::new();
    let tls = tls.unwrap_or(&default);
    let config = crate::broker::tls::client_config(tls).map_err(|f| tls_failed(server, f))?;
    let connector = Arc::new(RustlsConnector::from(config));
    let runtime = lapin::runtime::default_runtime().map_err(super::error::unavailable)?;
    let host = uri.authority.host.clone();
    let connect = async move |uri: AMQPUri, runtime| {
        // TCP first (the URI as a plain one), then the handshake with the bus's settings.
        let mut plain = uri.clone();
        plain.scheme = AMQPScheme::AMQP;
        let stream = plain
            .connect_with_config_async(TLSConfig::default(), &runtime)
            .await?;
        // A failed handshake: rustls's error, or what ended it, read here (after it, a
        // closed connection means something else).
        let stream = stream
            .into_rustls(&connector, &uri.authority.host)
            .await
            .map_err(|io| {
                if crate::broker::tls::find_in_chain::<rustls::Error>(&io).is_some() {
                    return io;
                }
                let detail = format!("the connection ended during the TLS handshake: {io}");
                std::io::Error::new(io.kind(), TlsFailure::NotTls { detail })
            })?;
        Ok(stream)
    };
    let presented = tls.client_certificate().is_some();
    Connection::connector(uri, runtime, connect, ConnectionProperties::default())
        .await
        .map_err(|error| super::error::connect_failed(error, server, Some((&host, presented))))
}

/// Without the `tls` feature: an `amqps://` URL is refused, never connected in plain.
#[cfg(not(feature = "tls"))]
async fn connect_tls(
    _uri: AMQPUri,
    _tls: Option<&BrokerTls>,
    server: &str,
) -> Result<Connection, BusError> {
    Err(tls_failed(
        server,
        TlsFailure::Settings(
            "`amqps://` needs eventsource-runtime's `tls` feature (on by default), which this \
             build does not have"
                .to_owned(),
        ),
    ))
}
