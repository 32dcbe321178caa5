//! Least privilege on the PostgreSQL server of `DATABASE_URL`: the runtime role (granted
//! `postgres::RUNTIME_GRANTS` only, on schemas an owner role migrated) runs the store
//! conformance suite, the snapshot and checkpoint stores with leases and parked events, a
//! projection runner, the relay and the idempotent handlers; its `migrate()` with nothing
//! to do needs no DDL; nobody but the owner rewrites a stored event. The TLS-only server
//! runs the same checks (`postgres_tls.rs`).
//!
//! Without `DATABASE_URL` each test prints `skipped: DATABASE_URL not set` and passes,
//! unless `EVENTSOURCE_REQUIRE_POSTGRES=1`.

use crate::pg_roles;

use eventsource_runtime::sqlx::postgres::PgConnectOptions;
use pg_roles::Roles;

/// The roles of one test on `DATABASE_URL`'s server, or `None` (with a visible message).
async fn roles(test: &str) -> Option<Roles> {
    let url = crate::servers::Server::Postgres.address(test)?;
    let options: PgConnectOptions = url.parse().unwrap();
    Some(Roles::create(options).await)
}

#[tokio::test]
async fn the_runtime_role_migrates_nothing_and_is_told_why_it_cannot() {
    let Some(roles) = roles("the_runtime_role_migrates_nothing_and_is_told_why_it_cannot").await
    else {
        return;
    };
    pg_roles::the_runtime_role_migrates_nothing_and_is_told_why_it_cannot(&roles).await;
    roles.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_runtime_role_passes_the_conformance_suite() {
    let Some(roles) = roles("the_runtime_role_passes_the_conformance_suite").await else {
        return;
    };
    pg_roles::the_runtime_role_passes_the_conformance_suite(&roles).await;
    roles.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_role_runs_everything_the_runtime_does() {
    let Some(roles) = roles("the_runtime_role_runs_everything_the_runtime_does").await else {
        return;
    };
    pg_roles::the_runtime_role_runs_everything_the_runtime_does(&roles).await;
    roles.cleanup().await;
}

#[tokio::test]
async fn stored_events_are_never_rewritten() {
    let Some(roles) = roles("stored_events_are_never_rewritten").await else {
        return;
    };
    pg_roles::stored_events_are_never_rewritten(&roles).await;
    roles.cleanup().await;
}

/// `docs/postgres.md` shows the runtime role's privileges as `RUNTIME_GRANTS` gives them.
#[test]
fn the_documented_grants_are_the_runtime_grants() {
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/postgres.md")).unwrap();
    let grants = eventsource_runtime::postgres::RUNTIME_GRANTS
        .replace("__schema__", "\"app\"")
        .replace("__role__", "\"app_runtime\"");
    for line in grants.lines().filter(|line| !line.starts_with("--")) {
        assert!(docs.contains(line), "docs/postgres.md lacks `{line}`");
    }
}
