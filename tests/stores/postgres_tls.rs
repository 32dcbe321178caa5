//! PostgreSQL over TLS, against a private cluster that takes TLS only (`hostssl` lines, no
//! `host` line), with a CA and a server certificate for `localhost` made at run time and a
//! user who must present a client certificate (`.ci/run --pg-tls-only` starts it and prints
//! the variables): plain connections refused with a clear error; `verify-full` with the CA
//! runs the store conformance suite; a wrong CA, a wrong host name, a missing client
//! certificate and a missing CA file each fail in one line saying why, with no password;
//! the client certificate works; the least-privilege role runs the stores, the runner and
//! the relay; an `UPDATE` of an event is refused.
//!
//! The server comes from `EVENTSOURCE_PG_TLS_URL` (`postgres://postgres:...@localhost:5433/
//! eventsource_test?sslmode=verify-full&sslrootcert=...`), with `EVENTSOURCE_PG_TLS_CA`,
//! `EVENTSOURCE_PG_TLS_OTHER_CA`, `EVENTSOURCE_PG_TLS_CLIENT_CERT`,
//! `EVENTSOURCE_PG_TLS_CLIENT_KEY` and `EVENTSOURCE_PG_TLS_CERT_USER`. Without it each test
//! prints `skipped: ...` and passes, unless `EVENTSOURCE_REQUIRE_TLS_SERVERS=1` (CI).

use crate::conformance;
use crate::pg_roles;

use std::io::Write as _;
use std::sync::Arc;

use eventsource_runtime::postgres::{ConnectFailure, DatabaseUnreachable, PostgresEventStore};
use eventsource_runtime::sqlx;
use eventsource_runtime::sqlx::postgres::PgConnectOptions;
use eventsource_runtime::store::{EventStore, StoreError};
use eventsource_test_support::errors::chain;
use pg_roles::Roles;

/// The TLS-only server and the files the tests use.
struct Tls {
    /// `verify-full` with the CA, as the superuser (with a password).
    url: String,
    password: String,
    ca: String,
    other_ca: String,
    client_cert: String,
    client_key: String,
    cert_user: String,
}

impl Tls {
    fn from_env(test: &str) -> Option<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let Some(url) = var("EVENTSOURCE_PG_TLS_URL") else {
            assert!(
                std::env::var("EVENTSOURCE_REQUIRE_TLS_SERVERS").as_deref() != Ok("1"),
                "{test}: EVENTSOURCE_REQUIRE_TLS_SERVERS=1 but EVENTSOURCE_PG_TLS_URL is not set \
                 (.ci/run --pg-tls-only)"
            );
            let line = format!(
                "{test}: skipped: EVENTSOURCE_PG_TLS_URL not set (`eval \"$(.ci/run \
                 --pg-tls-only)\"` starts a TLS-only server)\n"
            );
            let _ = std::io::stderr().write_all(line.as_bytes());
            return None;
        };
        let required = |name: &str| {
            var(name)
                .unwrap_or_else(|| panic!("{test}: EVENTSOURCE_PG_TLS_URL is set, {name} is not"))
        };
        let options: PgConnectOptions = url.parse().unwrap();
        let password = url
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('@'))
            .and_then(|(user, _)| user.split_once(':'))
            .map(|(_, password)| password.to_owned())
            .unwrap_or_default();
        assert!(
            !password.is_empty(),
            "{test}: the URL has a password ({})",
            options.get_username()
        );
        Some(Self {
            url,
            password,
            ca: required("EVENTSOURCE_PG_TLS_CA"),
            other_ca: required("EVENTSOURCE_PG_TLS_OTHER_CA"),
            client_cert: required("EVENTSOURCE_PG_TLS_CLIENT_CERT"),
            client_key: required("EVENTSOURCE_PG_TLS_CLIENT_KEY"),
            cert_user: required("EVENTSOURCE_PG_TLS_CERT_USER"),
        })
    }

    /// The URL without its query, then `query`.
    fn with_query(&self, query: &str) -> String {
        let base = self
            .url
            .split_once('?')
            .map_or(self.url.as_str(), |(base, _)| base);
        format!("{base}?{query}")
    }

    /// `with_query`, connecting to `host` instead of `localhost`.
    fn at_host(&self, host: &str, query: &str) -> String {
        self.with_query(query)
            .replacen("@localhost:", &format!("@{host}:"), 1)
    }

    /// The URL as the certificate user (no password), with `query`.
    fn as_cert_user(&self, query: &str) -> String {
        let (_, rest) = self.url.split_once('@').unwrap();
        let host = rest.split_once('?').map_or(rest, |(host, _)| host);
        format!("postgres://{}@{host}?{query}", self.cert_user)
    }
}

/// `connect`'s failure at `url`: the reason, and the whole chain in one line (checked to
/// hold no password and no newline, and to name the server).
async fn refused(tls: &Tls, url: &str, server: &str) -> (Option<ConnectFailure>, String) {
    let error = PostgresEventStore::connect(url).await.unwrap_err();
    let StoreError::Unavailable(source) = &error else {
        panic!("expected Unavailable, got {error:?}");
    };
    let unreachable = source
        .downcast_ref::<DatabaseUnreachable>()
        .unwrap_or_else(|| panic!("a DatabaseUnreachable, got {source:?}"));
    assert_eq!(unreachable.server, server);
    let line = chain(&error);
    eprintln!("refused: {line}");
    assert!(!line.contains(&tls.password), "no password: {line}");
    assert!(!line.contains("PRIVATE KEY"), "no key material: {line}");
    assert!(!line.contains('\n'), "one line: {line}");
    assert!(
        line.contains(&format!("cannot connect to PostgreSQL at {server}: ")),
        "{line}"
    );
    (unreachable.reason.clone(), line)
}

/// Whether the store's connection is encrypted.
async fn encrypted(store: &PostgresEventStore) -> bool {
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_plain_connection_is_refused_with_a_clear_error() {
    let Some(tls) = Tls::from_env("a_plain_connection_is_refused_with_a_clear_error") else {
        return;
    };
    let (reason, line) = refused(&tls, &tls.with_query("sslmode=disable"), "localhost:5433").await;
    assert_eq!(reason, Some(ConnectFailure::TlsRequired), "{line}");
    assert!(
        line.contains("the server refuses connections without TLS"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_full_with_the_ca_runs_the_conformance_suite() {
    let Some(tls) = Tls::from_env("verify_full_with_the_ca_runs_the_conformance_suite") else {
        return;
    };
    let store = PostgresEventStore::connect(&tls.url).await.unwrap();
    assert!(encrypted(&store).await);
    let schemas = std::sync::Mutex::new(Vec::new());
    let (pool, schemas_ref) = (store.pool().clone(), &schemas);
    conformance::events::run_all(move || {
        let pool = pool.clone();
        async move {
            let schema = format!("es_tls_{}", uuid::Uuid::now_v7().simple());
            schemas_ref.lock().unwrap().push(schema.clone());
            let store = PostgresEventStore::from_pool(pool)
                .with_schema(&schema)
                .unwrap();
            store.migrate().await.unwrap();
            Arc::new(store) as Arc<dyn EventStore>
        }
    })
    .await;
    for schema in schemas.into_inner().unwrap() {
        sqlx::raw_sql(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .execute(store.pool())
            .await
            .unwrap();
    }
    store.close().await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_clearly() {
    let Some(tls) = Tls::from_env("a_certificate_from_another_ca_is_refused_clearly") else {
        return;
    };
    let url = tls.with_query(&format!("sslmode=verify-full&sslrootcert={}", tls.other_ca));
    let (reason, line) = refused(&tls, &url, "localhost:5433").await;
    assert_eq!(reason, Some(ConnectFailure::UntrustedCertificate), "{line}");
    assert!(line.contains("not signed by a trusted CA"), "{line}");
}

#[tokio::test]
async fn a_wrong_host_name_is_refused_clearly() {
    let Some(tls) = Tls::from_env("a_wrong_host_name_is_refused_clearly") else {
        return;
    };
    // The certificate is for `localhost`; 127.0.0.1 is the same server by another name.
    let url = tls.at_host(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={}", tls.ca),
    );
    let (reason, line) = refused(&tls, &url, "127.0.0.1:5433").await;
    assert_eq!(reason, Some(ConnectFailure::HostNameMismatch), "{line}");
    assert!(line.contains("not valid for the host name"), "{line}");
    // sqlx 0.8.6 checks the name under verify-ca too (with rustls 0.23.24 or later).
    let url = tls.at_host(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={}", tls.ca),
    );
    let (reason, line) = refused(&tls, &url, "127.0.0.1:5433").await;
    assert_eq!(reason, Some(ConnectFailure::HostNameMismatch), "{line}");
    // `require` encrypts without checking the certificate, as libpq without a root CA.
    let url = tls.at_host(
        "127.0.0.1",
        &format!("sslmode=require&sslrootcert={}", tls.other_ca),
    );
    assert!(encrypted(&PostgresEventStore::connect(&url).await.unwrap()).await);
}

#[tokio::test]
async fn the_client_certificate_user_connects_with_its_certificate_and_only_with_it() {
    let Some(tls) =
        Tls::from_env("the_client_certificate_user_connects_with_its_certificate_and_only_with_it")
    else {
        return;
    };
    let verified = format!("sslmode=verify-full&sslrootcert={}", tls.ca);
    let url = tls.as_cert_user(&format!(
        "{verified}&sslcert={}&sslkey={}",
        tls.client_cert, tls.client_key
    ));
    let store = PostgresEventStore::connect(&url).await.unwrap();
    let user: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(user, tls.cert_user);
    assert!(encrypted(&store).await);
    store.close().await;

    let (reason, line) = refused(&tls, &tls.as_cert_user(&verified), "localhost:5433").await;
    assert_eq!(
        reason,
        Some(ConnectFailure::ClientCertificateRequired),
        "{line}"
    );
    assert!(line.contains("requires a client certificate"), "{line}");
}

#[tokio::test]
async fn a_missing_ca_file_is_named() {
    let Some(tls) = Tls::from_env("a_missing_ca_file_is_named") else {
        return;
    };
    let url = tls.with_query("sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
    let (reason, line) = refused(&tls, &url, "localhost:5433").await;
    assert_eq!(
        reason,
        Some(ConnectFailure::CertificateFile {
            setting: "sslrootcert",
            path: "/nonexistent/ca.pem".into()
        }),
        "{line}"
    );
    assert!(
        line.contains("cannot read the sslrootcert file /nonexistent/ca.pem"),
        "{line}"
    );
}

/// The least-privilege checks of `postgres_roles.rs`, over TLS (`verify-full`, SCRAM
/// passwords).
async fn roles(test: &str) -> Option<Roles> {
    let tls = Tls::from_env(test)?;
    Some(Roles::create(tls.url.parse().unwrap()).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_runtime_role_over_tls_runs_the_stores_the_runner_and_the_relay() {
    let Some(roles) =
        roles("the_runtime_role_over_tls_runs_the_stores_the_runner_and_the_relay").await
    else {
        return;
    };
    pg_roles::the_runtime_role_migrates_nothing_and_is_told_why_it_cannot(&roles).await;
    pg_roles::the_runtime_role_passes_the_conformance_suite(&roles).await;
    pg_roles::the_runtime_role_runs_everything_the_runtime_does(&roles).await;
    roles.cleanup().await;
}

#[tokio::test]
async fn an_update_of_an_event_is_refused_over_tls() {
    let Some(roles) = roles("an_update_of_an_event_is_refused_over_tls").await else {
        return;
    };
    pg_roles::stored_events_are_never_rewritten(&roles).await;
    roles.cleanup().await;
}
