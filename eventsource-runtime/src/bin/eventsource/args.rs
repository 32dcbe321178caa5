//! The command line's arguments (clap).

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Operate an eventsource service's store: projections, events, causation trees.
///
/// Exit codes: 0 done; 1 the store failed or cannot be reached; 2 usage (bad arguments or
/// values, a position past the head); 3 not found (an unknown projection, no such event);
/// 4 refused (a worker holds what the command would change).
#[derive(Debug, Parser)]
#[command(name = "eventsource", version)]
pub struct Cli {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON instead of text (every read).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Which store to open.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The store: `postgres://user:password@host:5432/database` or `sqlite:path/to/file.db`
    /// (else `EVENTSOURCE_STORE`, else `DATABASE_URL`).
    #[arg(long, global = true, env = "EVENTSOURCE_STORE", hide_env_values = true)]
    pub store: Option<String>,
    /// The PostgreSQL schema the service's tables are in.
    #[arg(
        long,
        global = true,
        env = "EVENTSOURCE_SCHEMA",
        default_value = "public"
    )]
    pub schema: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every projection, relay and split projection the store knows: checkpoint, lag, lease
    /// or segment owners, parked events.
    Status(StatusArgs),
    /// Events: a stream's, the log's from a position, or a correlation's.
    Events(EventsQuery),
    /// The causation tree of a correlation id, or of the correlation of an event (marked).
    Causation(CausationQuery),
    /// Change a projection's checkpoint.
    #[command(subcommand)]
    Projection(ProjectionCommand),
    /// A projection's parked events.
    #[command(subcommand)]
    Parked(ParkedCommand),
    /// A consumer group's dead letters on a broker (RabbitMQ, Kafka, NATS): list, move
    /// back, purge. Needs no store.
    #[command(subcommand)]
    DeadLetters(DeadLettersCommand),
    /// Create or upgrade the store's schema (run as the owner role).
    Migrate,
    /// Print the SQL granting ROLE what the runtime needs on the schema (PostgreSQL).
    Grants(GrantsArgs),
    /// Serve the console page (loopback; actions need --admin-token).
    Console(ConsoleArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Also a running service's own health report, from its readiness endpoint
    /// (`http://host:port/path`, serving `HealthReport` as JSON).
    #[arg(long, env = "EVENTSOURCE_HEALTH_URL")]
    pub health_url: Option<String>,
}

/// One of `--stream`, `--from` (alone) or `--correlation`.
#[derive(Debug, Args)]
pub struct EventsQuery {
    /// A stream, `TYPE/ID` (e.g. `Order/o-1`).
    #[arg(long, conflicts_with = "correlation")]
    pub stream: Option<String>,
    /// The log from this global position on (with `--stream`: from this version on).
    #[arg(long, conflicts_with = "correlation")]
    pub from: Option<u64>,
    /// Every event of this correlation id.
    #[arg(long)]
    pub correlation: Option<String>,
    /// At most this many events (1 or more).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
    /// A trace link per event: `{trace_id}` is replaced (e.g.
    /// `http://localhost:16686/trace/{trace_id}`).
    #[arg(long, env = "EVENTSOURCE_TRACE_URL")]
    pub trace_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct CausationQuery {
    /// A correlation id, or an event's id (UUID): that event's correlation, the event marked.
    #[arg(value_name = "ID")]
    pub correlation: String,
    /// ID is an event's id (not tried as a correlation id first).
    #[arg(long)]
    pub event: bool,
    /// How to print the tree (`--json` is `--format json`).
    #[arg(long, value_enum, default_value_t = TreeFormat::Text)]
    pub format: TreeFormat,
    /// A trace link per event (Mermaid `click`, DOT `URL`): `{trace_id}` is replaced.
    #[arg(long, env = "EVENTSOURCE_TRACE_URL")]
    pub trace_url: Option<String>,
    /// Another service's store to take the correlation's events from too (repeatable;
    /// PostgreSQL ones in the same `--schema`): one tree across services.
    #[arg(long = "also-store", value_name = "STORE")]
    pub also_stores: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TreeFormat {
    Text,
    Json,
    Mermaid,
    Dot,
}

#[derive(Debug, Subcommand)]
pub enum ProjectionCommand {
    /// Move a projection's checkpoint (back for a replay, 0 for a rebuild in place), as
    /// the holder of its lease or of all its segments: refused while a worker holds one.
    Reset(ResetArgs),
    /// Start a rebuild beside the running projection: a new name whose checkpoint is 0, for
    /// the projection's handler deployed under that name to replay the store while the old
    /// one keeps serving. Refused if NEW exists or a worker already holds it.
    Rebuild(RebuildArgs),
    /// Split a split projection's segments again, into a multiple of their count, without a
    /// rebuild: each new segment starts from the checkpoint of the one that held its
    /// streams. Refused while a worker holds a segment (PostgreSQL).
    Split(SplitArgs),
    /// Retire a projection no runner runs any more (the old name after a rebuild, a name
    /// given by mistake): delete its checkpoints and parked events, so that `status` and the
    /// console stop listing it. Refused while a runner or worker holds it.
    Retire(RetireArgs),
}

#[derive(Debug, Args)]
pub struct RetireArgs {
    /// The projection (or relay) to retire.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct SplitArgs {
    /// The split projection.
    pub name: String,
    /// The new segment count: a multiple of the current one (e.g. twice it).
    #[arg(long, value_parser = clap::value_parser!(u32).range(2..))]
    pub into: u32,
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// The projection (or relay) to rebuild.
    pub name: String,
    /// The new projection's name (e.g. `orders-v2`).
    #[arg(long = "as", value_name = "NEW")]
    pub new_name: String,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// The projection (or relay).
    pub name: String,
    /// The new checkpoint: the runner resumes after this position.
    #[arg(long)]
    pub to: u64,
}

#[derive(Debug, Subcommand)]
pub enum ParkedCommand {
    /// The projection's parked events.
    List {
        /// The projection (a segment's checkpoint name, `NAME[i/n]`, for a split one).
        name: String,
    },
    /// Ask the projection's running runner to retry a parked event (every one without
    /// --position) on its next poll: once the row is repaired or the handler mended, it
    /// hands the event over again and unparks it, or parks it again with the new error.
    Retry {
        /// The projection (a segment's checkpoint name, `NAME[i/n]`, for a split one).
        name: String,
        /// The parked event's position (else every parked event of the projection).
        #[arg(long)]
        position: Option<u64>,
    },
    /// Forget a parked event: the projection will not see it.
    Skip {
        /// The projection.
        name: String,
        /// The parked event's position.
        #[arg(long)]
        position: u64,
    },
}

#[derive(Debug, Args)]
pub struct GrantsArgs {
    /// The runtime role.
    pub role: String,
}

/// Which consumer group's dead letters, on which broker.
#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// The broker: `amqp://user:password@host:5672/%2f` (or `amqps://`), `kafka://host:9092`
    /// (query parameters are librdkafka settings: `?security.protocol=sasl_ssl&sasl.username=..`),
    /// `nats://host:4222` (or `tls://`).
    #[arg(long, env = "EVENTSOURCE_BROKER", hide_env_values = true)]
    pub broker: String,
    /// The consumer group, as the service names it (`bus.consumer_group("NAME")`).
    #[arg(long)]
    pub group: String,
    /// The bus's prefix, when the service set one: the RabbitMQ exchange, the Kafka topic
    /// prefix, the NATS subject prefix.
    #[arg(long, env = "EVENTSOURCE_BUS_PREFIX")]
    pub prefix: Option<String>,
    /// The NATS stream, when the service set one.
    #[arg(long, env = "EVENTSOURCE_NATS_STREAM")]
    pub stream: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// The group's dead letters, oldest first, left in place.
    List {
        #[command(flatten)]
        broker: BrokerArgs,
        /// At most this many (1 or more).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
    },
    /// Move every dead letter back to the group, for the handlers that failed on it, with a
    /// fresh budget of deliveries.
    Requeue {
        #[command(flatten)]
        broker: BrokerArgs,
    },
    /// Delete every dead letter of the group.
    Purge {
        #[command(flatten)]
        broker: BrokerArgs,
    },
}

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
