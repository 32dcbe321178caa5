//! Throwaway certificates for the TLS tests, made at run time with rcgen and written as PEM
//! files in a directory of their own (removed on drop): a CA, a server certificate for
//! `localhost` only (so that `127.0.0.1` is a host-name mismatch), a client certificate it
//! signed, and another CA with a client certificate of its own, which the servers do not
//! trust. Also: the skip-or-fail rule of the TLS tests, and the checks every broker's TLS
//! failure must pass.

#![allow(dead_code)]

use std::path::PathBuf;

use eventsource_runtime::broker::TlsFailure;
use eventsource_runtime::bus::{BrokerUnreachable, BusError, UnavailableReason};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};

/// Says `test` is skipped because a TLS server is missing (`why`), or fails it when
/// `EVENTSOURCE_REQUIRE_TLS_SERVERS=1` (CI sets it).
pub fn skip(test: &str, why: &str) {
    crate::servers::skip(test, why, "EVENTSOURCE_REQUIRE_TLS_SERVERS");
}

/// `error`, a bus's failure to connect to `server`, checked: a TLS failure at `server`, on
/// one line, in which neither the `secret` planted (if any) nor key material shows, nor in
/// `bus`, the bus's `Debug`; the [`TlsFailure`] it carries.
pub fn tls_failure_of(
    error: &BusError,
    server: &str,
    secret: Option<&str>,
    bus: &str,
) -> TlsFailure {
    let said = crate::errors::chain(error);
    eprintln!("refused as: {said}");
    assert_eq!(
        error.unavailable_reason(),
        Some(UnavailableReason::Tls),
        "{said}"
    );
    assert!(
        said.contains(&format!("TLS connection failed at {server}")),
        "{said}"
    );
    assert!(!said.contains('\n'), "one line: {said}");
    for shown in [&said, &format!("{error:?}"), bus] {
        assert!(
            secret.is_none_or(|secret| !shown.contains(secret)),
            "{shown}"
        );
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    }
    let BusError::Unavailable(source) = error else {
        panic!("{said}")
    };
    let unreachable = source
        .downcast_ref::<BrokerUnreachable>()
        .unwrap_or_else(|| panic!("{said}"));
    unreachable
        .source
        .as_ref()
        .and_then(|s| s.downcast_ref::<TlsFailure>())
        .cloned()
        .unwrap_or_else(|| panic!("a TlsFailure: {said}"))
}

/// The PEM files of a test PKI: `ca.pem`, `server.pem`, `server-key.pem`, `client.pem`,
/// `client-key.pem`, `other-ca.pem`, `other-client.pem`, `other-client-key.pem`.
pub struct Pki {
    pub dir: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

impl Pki {
    /// A new PKI in a directory of its own, named after `name`.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "eventsource-broker-tls-{name}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |file: &str, pem: String| std::fs::write(dir.join(file), pem).unwrap();
        let leaf = |ca: &CertifiedIssuer<'static, KeyPair>,
                    names: Vec<String>,
                    purpose: ExtendedKeyUsagePurpose,
                    file: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(names).unwrap();
            params.extended_key_usages = vec![purpose];
            let certificate = params.signed_by(&key, ca).unwrap();
            write(&format!("{file}.pem"), certificate.pem());
            write(&format!("{file}-key.pem"), key.serialize_pem());
        };
        let trusted = ca("eventsource test CA");
        leaf(
            &trusted,
            vec!["localhost".to_owned()],
            ExtendedKeyUsagePurpose::ServerAuth,
            "server",
        );
        leaf(
            &trusted,
            vec!["eventsource".to_owned()],
            ExtendedKeyUsagePurpose::ClientAuth,
            "client",
        );
        write("ca.pem", trusted.pem());
        let other = ca("another CA");
        leaf(
            &other,
            vec!["eventsource".to_owned()],
            ExtendedKeyUsagePurpose::ClientAuth,
            "other-client",
        );
        write("other-ca.pem", other.pem());
        Self { dir }
    }

    /// A file of the PKI.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
