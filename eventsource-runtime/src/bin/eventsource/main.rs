//! `eventsource`: the operator's command line. It reads and changes what a service keeps in
//! its store (PostgreSQL or SQLite) through the runtime's public API only: the projections'
//! checkpoints, leases, segment claims and parked events, the events and their causation
//! trees; and its consumer groups' dead letters on its broker. See
//! `docs/guide/operating.md`.
//!
//! Exit codes (`exit.rs`): 0 done, 1 the store or broker failed or cannot be reached, 2 usage (bad
//! arguments or values), 3 not found, 4 refused (a worker holds what it would change).

mod args;
mod causation;
mod console;
mod dead_letters;
mod events;
mod exit;
mod output;
mod parked;
mod projection;
mod schema;
mod service_health;
mod status;
mod store;

use std::process::ExitCode;

use clap::Parser as _;

use args::{Cli, Command};
use exit::CliError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return exit::report(&CliError::Runtime(error)),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => exit::report(&error),
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    if let Command::Grants(grants) = &cli.command {
        // Prints SQL only: no connection needed.
        return schema::grants(&cli.store, grants);
    }
    if let Command::DeadLetters(command) = cli.command {
        // A broker's: no store needed.
        return dead_letters::run(command, cli.json).await;
    }
    let store = store::open(&cli.store).await?;
    if !matches!(cli.command, Command::Migrate) {
        store.found().await?;
    }
    let json = cli.json;
    match cli.command {
        Command::Status(args) => status::run(&store, &args, json).await,
        Command::Events(query) => events::run(&store, &query, json).await,
        Command::Causation(query) => causation::run(&store, &cli.store.schema, &query, json).await,
        Command::Projection(command) => projection::run(&store, command, json).await,
        Command::Parked(command) => parked::run(&store, command, json).await,
        Command::Migrate => schema::migrate(&store).await,
        Command::Console(args) => console::run(&store, &cli.store.schema, &args).await,
        Command::Grants(_) | Command::DeadLetters(_) => Ok(()),
    }
}
