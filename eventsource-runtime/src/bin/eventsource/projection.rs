//! `eventsource projection reset|split|rebuild|retire`: the operations are the library's
//! (`operate::reset`, `split`, `rebuild`, `retire`); here they are parsed and printed. On a
//! store whose leases and claims live in the service's process (SQLite) the command says
//! that it cannot see them.

use eventsource_runtime::operate;

use crate::args::{ProjectionCommand, RebuildArgs, ResetArgs, RetireArgs, SplitArgs};
use crate::exit::CliError;
use crate::output;
use eventsource_runtime::operate::OpenedStore;

pub async fn run(
    store: &OpenedStore,
    command: ProjectionCommand,
    json: bool,
) -> Result<(), CliError> {
    let name = match &command {
        ProjectionCommand::Reset(ResetArgs { name, .. })
        | ProjectionCommand::Retire(RetireArgs { name }) => Some(name),
        ProjectionCommand::Rebuild(_) | ProjectionCommand::Split(_) => None,
    };
    if let Some(name) = name
        && !store.leases_shared
    {
        warn_unseen_workers(name);
    }
    let stores = &store.stores;
    match command {
        ProjectionCommand::Reset(args) => reset(stores, &args, json).await,
        ProjectionCommand::Split(args) => split(stores, &args, json).await,
        ProjectionCommand::Rebuild(args) => rebuild(stores, &args, json).await,
        ProjectionCommand::Retire(args) => retire(stores, &args, json).await,
    }
}

/// Says that the store's leases and segment claims live in the service's process (SQLite),
/// where nothing here can see them.
fn warn_unseen_workers(name: &str) {
    eprintln!(
        "eventsource: note: this store keeps leases and segment claims in the service's \
         process: make sure no worker of `{name}` runs"
    );
}

async fn reset(stores: &operate::Stores, args: &ResetArgs, json: bool) -> Result<(), CliError> {
    let reset = operate::reset(stores, &args.name, args.to).await?;
    if json {
        return output::json(&reset);
    }
    let mut text = String::new();
    for moved in &reset.checkpoints {
        text.push_str(&format!(
            "{}: checkpoint {} -> {}\n",
            moved.name, moved.from, reset.to
        ));
    }
    output::text(&text)
}

async fn split(stores: &operate::Stores, args: &SplitArgs, json: bool) -> Result<(), CliError> {
    let split = operate::split(stores, &args.name, args.into).await?;
    if json {
        return output::json(&split);
    }
    let (name, from, count) = (&split.projection, split.from, split.to);
    let mut text = format!("{name}: {from} -> {count} segments (start its workers with {count})\n");
    for checkpoint in &split.checkpoints {
        text.push_str(&format!("  {} from {}\n", checkpoint.name, checkpoint.from));
    }
    output::text(&text)
}

async fn rebuild(stores: &operate::Stores, args: &RebuildArgs, json: bool) -> Result<(), CliError> {
    let rebuild = operate::rebuild(stores, &args.name, &args.new_name).await?;
    if json {
        return output::json(&rebuild);
    }
    let (name, new, head) = (&rebuild.projection, &rebuild.rebuilt_as, rebuild.head);
    let workers = match rebuild.segments {
        Some(count) => format!(" (its workers may run with {count} segments, or another count)"),
        None => String::new(),
    };
    output::text(&format!(
        "{new}: created beside {name}, checkpoint 0: {head} event(s) to replay.\n\
         Next: deploy the projection's handler under the name `{new}` (its `name()`, a new \
         read model){workers}; it replays the store from the start while `{name}` keeps \
         running. When `eventsource status` shows `{new}` with no lag, switch readers to it, \
         then stop `{name}`.\n"
    ))
}

async fn retire(stores: &operate::Stores, args: &RetireArgs, json: bool) -> Result<(), CliError> {
    let retired = operate::retire(stores, &args.name).await?;
    if json {
        return output::json(&retired);
    }
    let what = match retired.segments {
        Some(count) => format!("{count} segments"),
        None => "its checkpoint".to_owned(),
    };
    output::text(&format!(
        "{}: retired ({what} and its parked events deleted)\n",
        retired.projection
    ))
}
