//! `eventsource console`: the operator's page (`eventsource_runtime::console`) served on
//! loopback, over the store `--store` names (and, for causation trees, other services'
//! stores: `--also-store`) and, with a broker's feature, consumer groups' dead letters
//! (`--broker URL --group NAME`).

use std::net::SocketAddr;

use clap::Args;
use eventsource_runtime::console::Console;

use crate::exit::CliError;
use crate::status::operated;
use crate::store::Stores;

/// Serve the console page: status and lag refreshing, parked events, dead letters, a
/// stream browser, causation trees linked to their traces.
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// Where to listen: loopback unless `--allow-remote` (port 0: any free port, printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Allow a `--listen` address other than loopback (put TLS in front: the tokens travel
    /// in a header). Needs `--read-token` and a `--host` for each name it is reached by.
    #[arg(long)]
    pub allow_remote: bool,
    /// A name or address the console is reached by besides loopback ones (repeatable; the
    /// `Host` a browser sends, its port aside): others are refused, so that a page on a
    /// name that resolves to the console (DNS rebinding) reads nothing.
    #[arg(long = "host", value_name = "NAME")]
    pub hosts: Vec<String>,
    /// The token the page's reads need (`Authorization: Bearer`; the admin token reads
    /// too); without it reads need none. Required with `--allow-remote`.
    #[arg(long, env = "EVENTSOURCE_READ_TOKEN", hide_env_values = true)]
    pub read_token: Option<String>,
    /// The token the page's actions need (`Authorization: Bearer`); without it the console
    /// has no actions.
    #[arg(long, env = "EVENTSOURCE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// No actions at all, even with a token.
    #[arg(long)]
    pub read_only: bool,
    /// A trace link per event: `{trace_id}` is replaced (e.g.
    /// `http://localhost:16686/trace/{trace_id}`).
    #[arg(long, env = "EVENTSOURCE_TRACE_URL")]
    pub trace_url: Option<String>,
    /// The broker of `--group` (`amqp://...`, `kafka://...`, `nats://...`, as
    /// `eventsource dead-letters` takes it).
    #[arg(long, env = "EVENTSOURCE_BROKER", hide_env_values = true)]
    pub broker: Option<String>,
    /// A consumer group whose dead letters the page lists, requeues and purges (repeatable;
    /// needs `--broker`).
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// The bus's prefix, when the service set one (RabbitMQ exchange, Kafka topic prefix,
    /// NATS subject prefix).
    #[arg(long, env = "EVENTSOURCE_BUS_PREFIX")]
    pub prefix: Option<String>,
    /// The NATS stream, when the service set one.
    #[arg(long, env = "EVENTSOURCE_NATS_STREAM")]
    pub stream: Option<String>,
    /// Another service's store whose events causation trees take in too (repeatable;
    /// PostgreSQL ones in the same `--schema`), as `eventsource causation --also-store`.
    #[arg(long = "also-store", value_name = "STORE")]
    pub also_stores: Vec<String>,
}

pub async fn run(stores: &Stores, schema: &str, args: &ConsoleArgs) -> Result<(), CliError> {
    if !args.listen.ip().is_loopback() && !args.allow_remote {
        return Err(CliError::Usage(format!(
            "{} is not a loopback address: other machines could reach the console. Give \
             --allow-remote to mean it (with TLS in front), or listen on 127.0.0.1",
            args.listen
        )));
    }
    if args.allow_remote && (args.read_token.is_none() || args.hosts.is_empty()) {
        return Err(CliError::Usage(
            "--allow-remote needs --read-token (or EVENTSOURCE_READ_TOKEN: others could read \
             every event) and --host NAME for each name or address the console is reached by"
                .to_owned(),
        ));
    }
    let setting =
        |error: eventsource_runtime::console::ConsoleError| CliError::Usage(error.to_string());
    let mut console = Console::new(operated(stores))
        .read_only(args.read_only)
        .allowed_hosts(&args.hosts);
    if let Some(token) = &args.read_token {
        console = console
            .read_token("reader", token.as_str())
            .map_err(setting)?;
    }
    if let Some(template) = &args.trace_url {
        console = console.trace_url(template.as_str()).map_err(setting)?;
    }
    if let Some(token) = &args.admin_token {
        console = console
            .admin_token("admin", token.as_str())
            .map_err(setting)?;
    }
    for target in &args.also_stores {
        console = console.also_store(Stores::open_target(target, schema).await?.events);
    }
    console = brokers::with_dead_letters(console, args).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|error| CliError::Usage(format!("cannot listen on {}: {error}", args.listen)))?;
    let address = listener
        .local_addr()
        .map_err(|error| CliError::Usage(format!("cannot listen on {}: {error}", args.listen)))?;
    let mode = match (&args.admin_token, args.read_only) {
        (_, true) => "read-only",
        (None, false) => "read-only: no admin token",
        (Some(_), false) => "actions need the admin token",
    };
    eprintln!("eventsource console on http://{address}/ ({mode})");
    logs::init();
    let app = console
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .await
        .map_err(|error| CliError::Usage(format!("the console stopped: {error}")))
}

/// Consumer groups' dead letters, on the broker `--broker` names.
#[cfg(feature = "broker")]
mod brokers {
    use super::{CliError, Console, ConsoleArgs};

    /// The console given each `--group`'s dead letters, once the broker said it knows the
    /// group (a typo is not found, exit 3, as `eventsource dead-letters` says it; nothing
    /// is declared for it).
    pub async fn with_dead_letters(
        mut console: Console,
        args: &ConsoleArgs,
    ) -> Result<Console, CliError> {
        if args.groups.is_empty() {
            return Ok(console);
        }
        let Some(url) = &args.broker else {
            return Err(CliError::Usage(
                "--group needs --broker (or EVENTSOURCE_BROKER)".to_owned(),
            ));
        };
        for group in &args.groups {
            let (_, queue) = crate::dead_letters::open_group(
                url,
                group,
                args.prefix.as_deref(),
                args.stream.as_deref(),
            )
            .await?;
            console = console.boxed_dead_letters(queue);
        }
        Ok(console)
    }
}

#[cfg(not(feature = "broker"))]
mod brokers {
    use super::{CliError, Console, ConsoleArgs};

    pub async fn with_dead_letters(
        console: Console,
        args: &ConsoleArgs,
    ) -> Result<Console, CliError> {
        if args.groups.is_empty() {
            return Ok(console);
        }
        Err(CliError::Usage(
            "this eventsource was built without a broker: install it with --features \
             cli,rabbitmq (or kafka, or nats) for --group"
                .to_owned(),
        ))
    }
}

/// Each action's log line on stderr (`eventsource` targets only).
#[cfg(feature = "tracing")]
mod logs {
    use tracing_subscriber::layer::{Layer as _, SubscriberExt as _};
    use tracing_subscriber::util::SubscriberInitExt as _;

    pub fn init() {
        let only_ours = tracing_subscriber::filter::filter_fn(|metadata| {
            metadata.target().starts_with("eventsource")
                && *metadata.level() <= tracing::Level::INFO
        });
        let lines = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(only_ours);
        let _ = tracing_subscriber::registry().with(lines).try_init();
    }
}

#[cfg(not(feature = "tracing"))]
mod logs {
    pub fn init() {}
}
