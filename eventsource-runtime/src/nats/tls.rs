//! TLS to the NATS server: async-nats speaks it on rustls with *ring* (whatever this
//! crate's features), for a `tls://` URL or a server that requires it; the bus's
//! [`BrokerTls`] gives the roots and the client certificate.

use async_nats::{ConnectError, ConnectOptions};

use super::NatsBus;
use crate::broker::tls::find_in_chain;
use crate::broker::{BrokerTls, TlsFailure};
use crate::bus::{BrokerUnreachable, BusError, UnavailableReason};

impl NatsBus {
    /// Builder: TLS to the server, required (a server that does not offer it is refused):
    /// a CA to trust instead of the system's roots, a client certificate for a server that
    /// verifies its clients (`nats-server --tlsverify`, `verify: true`). Without it, a
    /// `tls://` URL or a server that requires TLS is connected to with the system's roots
    /// and no client certificate.
    ///
    /// ```no_run
    /// use eventsource_runtime::broker::BrokerTls;
    /// use eventsource_runtime::nats::NatsBus;
    ///
    /// # fn run() -> Result<(), eventsource_runtime::bus::BusError> {
    /// let bus = NatsBus::new("tls://nats.internal:4222")?.with_tls(
    ///     BrokerTls::new()
    ///         .with_ca_file("/etc/nats-client/ca.pem")
    ///         .with_client_certificate("/etc/nats-client/app.pem", "/etc/nats-client/app-key.pem"),
    /// );
    /// # drop(bus); Ok(()) }
    /// ```
    #[must_use]
    pub fn with_tls(self, tls: BrokerTls) -> Self {
        self.configure(|shared| shared.tls = Some(tls))
    }
}

/// `options` with the bus's TLS settings, if any.
pub(super) fn apply(
    tls: Option<&BrokerTls>,
    options: ConnectOptions,
    server: &str,
) -> Result<ConnectOptions, BusError> {
    let Some(tls) = tls else {
        return Ok(options);
    };
    let config = crate::broker::tls::client_config(tls).map_err(|failure| {
        BusError::unavailable(BrokerUnreachable::new(
            UnavailableReason::Tls,
            server,
            Some(Box::new(failure)),
        ))
    })?;
    Ok(options.tls_client_config(config).require_tls(true))
}

/// Why a connection failed, in TLS terms, when rustls's error is in `error`'s chain.
pub(super) fn failure(
    error: &ConnectError,
    host: &str,
    client_certificate: bool,
) -> Option<TlsFailure> {
    let found = find_in_chain::<async_nats::rustls::Error>(error)?;
    Some(crate::broker::tls::classify(
        found,
        host,
        client_certificate,
    ))
}
