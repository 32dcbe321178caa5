//! No secret printed: a recognisable password planted in a broker URL, a database URL and
//! `OTEL_EXPORTER_OTLP_HEADERS`, the `distributed` example run with logs at `TRACE`, once
//! normally and once per failing connection; the password appears in none of what it
//! printed (stdout, stderr: log lines, console trees, errors) nor in anything it exported
//! (spans, metrics). A failing connection is one line saying what failed and where.
//!
//! Needs the servers of the other tests (`EVENTSOURCE_NATS_URL`, `EVENTSOURCE_AMQP_URL`,
//! `DATABASE_URL`); a scenario whose server is not named is skipped visibly, unless CI's
//! `EVENTSOURCE_REQUIRE_*` says it must run.

use eventsource_test_support::otlp;
use eventsource_test_support::otlp_collector;

use eventsource_test_support::servers;

use servers::Server;
use std::process::Output;

use crate::otlp::{example_binary, example_command};
use crate::otlp_collector::collector;

/// The password planted everywhere.
const SECRET: &str = "pl4nted-s3cret-4711";

/// The role that signs in with `SECRET`.
const SECRET_ROLE: &str = "es_secrets_test";

/// `url` with `SECRET` as its password (`scheme://user@host` or `scheme://user:pw@host`).
fn with_secret(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (user_info, host) = rest.split_once('@').expect("a URL with a user");
    let user = user_info
        .split_once(':')
        .map_or(user_info, |(user, _)| user);
    format!("{scheme}://{user}:{SECRET}@{host}")
}

/// `url` (a PostgreSQL superuser's) for a role of the test's own that signs in with `SECRET`
/// as its password, made (or its password set again) through `url`, with the privileges of
/// `url`'s user (it owns the stores' tables): whatever the server asks of a password (trust,
/// SCRAM), the planted one is the one sent, and accepted.
fn database_with_secret(url: &str) -> String {
    use eventsource_runtime::sqlx::{Connection as _, Executor as _, PgConnection};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let mut admin = PgConnection::connect(url)
            .await
            .expect("DATABASE_URL answers");
        let exists: bool = eventsource_runtime::sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)",
        )
        .bind(SECRET_ROLE)
        .fetch_one(&mut admin)
        .await
        .expect("the roles");
        let verb = if exists { "ALTER" } else { "CREATE" };
        admin
            .execute(format!("{verb} ROLE {SECRET_ROLE} LOGIN PASSWORD '{SECRET}'").as_str())
            .await
            .expect("the test's role");
        // What the example reads and makes: the tables `url`'s user owns, and its own.
        let owner: String = eventsource_runtime::sqlx::query_scalar("SELECT current_user::text")
            .fetch_one(&mut admin)
            .await
            .expect("the user");
        admin
            .execute(format!("GRANT \"{owner}\" TO {SECRET_ROLE}").as_str())
            .await
            .expect("the role takes the owner's privileges");
    });
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (_, host) = rest.split_once('@').expect("a URL with a user");
    format!("{scheme}://{SECRET_ROLE}:{SECRET}@{host}")
}

/// The `host:port` of `url`.
fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split(['/', '?']).next().unwrap_or(rest).to_owned()
}

/// Runs the example with `args`, logs at `TRACE` and the secret in the OTLP headers; asserts
/// the secret is in nothing it printed or exported, and returns what it printed.
fn run(test: &str, args: &[&str]) -> (Output, String) {
    let (endpoint, requests) = collector();
    let binary = example_binary("distributed", &["rabbitmq", "kafka", "nats"]);
    let output = example_command(&binary, &endpoint)
        .env("RUST_LOG", "trace")
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("authorization=Bearer%20{SECRET}"),
        )
        .env("OTEL_BSP_SCHEDULE_DELAY", "50")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "100")
        .args(args)
        .output()
        .expect("the example runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if let Some(line) = printed.lines().find(|line| line.contains(SECRET)) {
        panic!("{test}: the password is printed:\n{line}");
    }
    let requests = requests.lock().unwrap().clone();
    for request in &requests {
        assert!(
            !String::from_utf8_lossy(&request.body).contains(SECRET),
            "{test}: the password is exported to {}:\n{}",
            request.path,
            String::from_utf8_lossy(&request.body)
        );
    }
    (output, printed)
}

/// A run that must fail: exit status 1, and its last line the one error line, which says
/// `what` and where (`host:port`) and shows the URL's password as `***`.
fn fails(test: &str, args: &[&str], what: &str, server: &str) {
    let (output, printed) = run(test, args);
    assert_eq!(output.status.code(), Some(1), "{test}:\n{printed}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{test}: one error line:\n{stderr}");
    let error = errors[0];
    assert!(
        error.contains(what) && error.contains(server) && error.contains(":***@"),
        "{test}: want `{what}` at {server}, the password as ***:\n{error}"
    );
    assert!(
        !stderr.lines().any(|line| line.contains(" ERROR ")),
        "{test}: no library ERROR line before ours:\n{stderr}"
    );
}

#[test]
fn a_normal_run_at_trace_prints_and_exports_no_password() {
    let test = "normal_run";
    let (Some(nats), Some(database)) = (Server::Nats.address(test), Server::Postgres.address(test))
    else {
        return;
    };
    // A NATS server without users takes any password; PostgreSQL gets a role of its own.
    let nats = format!("nats://orders:{SECRET}@{}", host_port(&nats));
    let database = database_with_secret(&database);
    let prefix = format!("es-test-secrets-{}", std::process::id());
    let (output, printed) = run(
        test,
        &[
            "--role",
            "both",
            "--broker",
            &nats,
            "--prefix",
            &prefix,
            "--processed",
            &database,
        ],
    );
    assert!(output.status.success(), "{printed}");
    assert!(
        printed.contains("crm updated"),
        "the run did its work:\n{printed}"
    );
    assert!(
        printed.contains(" TRACE "),
        "logs at TRACE were written:\n{printed}"
    );
}

#[test]
fn failing_connections_say_what_and_where_in_one_line_without_the_password() {
    let test = "failing_connections";
    if let Some(amqp) = Server::RabbitMq.address(test) {
        let wrong = with_secret(&amqp);
        let at = host_port(&amqp);
        fails(
            test,
            &["--role", "consumer", "--broker", &wrong],
            "authentication refused",
            &at,
        );
        let closed = format!("amqp://guest:{SECRET}@127.0.0.1:1/%2f");
        fails(
            test,
            &["--role", "consumer", "--broker", &closed],
            "connection refused",
            "127.0.0.1:1",
        );
    }
    let nats = format!("nats://orders:{SECRET}@127.0.0.1:1");
    fails(
        test,
        &["--role", "consumer", "--broker", &nats],
        "connection refused",
        "127.0.0.1:1",
    );
    // Kafka takes its credentials as settings: a URL with a password is refused as such.
    let kafka = format!("kafka://orders:{SECRET}@127.0.0.1:9092");
    fails(
        test,
        &["--role", "consumer", "--broker", &kafka],
        "takes no credentials",
        "kafka://orders:***@127.0.0.1:9092",
    );
    let database = format!("postgres://orders:{SECRET}@127.0.0.1:1/orders");
    fails(
        test,
        &["--role", "both", "--store", &database],
        "cannot connect to PostgreSQL",
        "127.0.0.1:1",
    );
    if let Some(database) = Server::Postgres.address(test) {
        let (_, rest) = with_secret(&database)
            .split_once("://")
            .map(|(s, r)| (s.to_owned(), r.to_owned()))
            .unwrap();
        let (_, host) = rest.split_once('@').unwrap();
        let nobody = format!("postgres://nobody-{}:{SECRET}@{host}", std::process::id());
        fails(
            test,
            &["--role", "both", "--store", &nobody],
            "cannot connect to PostgreSQL",
            &host_port(&database),
        );
    }
}
