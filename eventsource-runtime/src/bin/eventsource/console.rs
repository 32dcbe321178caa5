//! `eventsource console`: the operator's page (`eventsource_runtime::console`) served on
//! loopback, over the store `--store` names and, with the `rabbitmq` feature, consumer
//! groups' dead letters.

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
    /// Allow a `--listen` address other than loopback (put TLS in front: the admin token
    /// travels in a header).
    #[arg(long)]
    pub allow_remote: bool,
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
    /// The RabbitMQ broker of `--dead-letter-group` (`amqp://user:password@host/vhost`).
    #[arg(long, env = "EVENTSOURCE_AMQP_URL", hide_env_values = true)]
    pub dead_letter_broker: Option<String>,
    /// A consumer group whose dead letters the page lists, requeues and purges
    /// (repeatable; needs `--dead-letter-broker`).
    #[arg(long = "dead-letter-group", value_name = "GROUP")]
    pub dead_letter_groups: Vec<String>,
}

pub async fn run(stores: &Stores, args: &ConsoleArgs) -> Result<(), CliError> {
    if !args.listen.ip().is_loopback() && !args.allow_remote {
        return Err(CliError::Usage(format!(
            "{} is not a loopback address: other machines could reach the console. Give \
             --allow-remote to mean it (with TLS in front), or listen on 127.0.0.1",
            args.listen
        )));
    }
    let setting =
        |error: eventsource_runtime::console::ConsoleError| CliError::Usage(error.to_string());
    let mut console = Console::new(operated(stores)).read_only(args.read_only);
    if let Some(template) = &args.trace_url {
        console = console.trace_url(template.as_str()).map_err(setting)?;
    }
    if let Some(token) = &args.admin_token {
        console = console
            .admin_token("admin", token.as_str())
            .map_err(setting)?;
    }
    console = brokers::with_dead_letters(console, args)?;
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

/// Consumer groups' dead letters on RabbitMQ.
#[cfg(feature = "rabbitmq")]
mod brokers {
    use eventsource_runtime::rabbitmq::RabbitMqBus;

    use super::{CliError, Console, ConsoleArgs};

    pub fn with_dead_letters(
        mut console: Console,
        args: &ConsoleArgs,
    ) -> Result<Console, CliError> {
        if args.dead_letter_groups.is_empty() {
            return Ok(console);
        }
        let Some(url) = &args.dead_letter_broker else {
            return Err(CliError::Usage(
                "--dead-letter-group needs --dead-letter-broker amqp://...".to_owned(),
            ));
        };
        let bus = RabbitMqBus::new(url).map_err(|error| CliError::Usage(error.to_string()))?;
        for group in &args.dead_letter_groups {
            console = console.dead_letters(bus.consumer_group(group).dead_letters());
        }
        Ok(console)
    }
}

#[cfg(not(feature = "rabbitmq"))]
mod brokers {
    use super::{CliError, Console, ConsoleArgs};

    pub fn with_dead_letters(console: Console, args: &ConsoleArgs) -> Result<Console, CliError> {
        if args.dead_letter_groups.is_empty() {
            return Ok(console);
        }
        Err(CliError::Usage(
            "this eventsource was built without RabbitMQ: install it with --features \
             cli,rabbitmq for --dead-letter-group"
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
