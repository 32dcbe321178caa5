//! `eventsource console`: the operator's page (`eventsource_runtime::console`) served on
//! loopback, over the store `--store` names (and, for causation trees, other services'
//! stores: `--also-store`) and, with a broker's feature, consumer groups' dead letters
//! (`--broker URL --group NAME`).

use std::net::SocketAddr;

use eventsource_runtime::console::Console;

use crate::args::ConsoleArgs;
use crate::exit::CliError;
use eventsource_runtime::operate::OpenedStore;

pub async fn run(store: &OpenedStore, schema: &str, args: &ConsoleArgs) -> Result<(), CliError> {
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
    let mut console = Console::new(store.stores.clone())
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
        console = console.also_store(crate::store::open_also(target, schema).await?.stores.events);
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
