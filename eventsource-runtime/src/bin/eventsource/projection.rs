//! `eventsource projection reset NAME --to POSITION`: moves a projection's checkpoint as the
//! holder of its lease (or of every segment of a split one), refusing while a worker holds
//! it; a position past the head, or an unknown projection, changes nothing. `projection
//! split` splits a split projection's segments again; `projection retire` deletes one no
//! runner runs any more (`operate::retire`); `projection rebuild` is in `rebuild.rs`.

use std::time::Duration;

use eventsource_runtime::projection::segments::{Claim, Resplit, SegmentClaims};
use eventsource_runtime::store::Segment;
use eventsource_runtime::store::StoreError;
use serde::Serialize;

use crate::args::{ProjectionCommand, ResetArgs, RetireArgs, SplitArgs};
use crate::exit::CliError;
use crate::known::Known;
use crate::output;
use crate::status::operated;
use crate::store::Stores;

/// The worker name the command line claims segments under.
const CLI_WORKER: &str = "eventsource-cli";

/// How long the command line's claims last if it dies holding them.
const CLI_CLAIM_TIMEOUT: Duration = Duration::from_secs(30);

/// What a reset did.
#[derive(Debug, Serialize)]
struct Reset {
    projection: String,
    /// Each checkpoint reset (the projection's, or each segment's) and where it was.
    checkpoints: Vec<Moved>,
    to: u64,
}

#[derive(Debug, Serialize)]
struct Moved {
    name: String,
    from: u64,
}

pub async fn run(stores: &Stores, command: ProjectionCommand, json: bool) -> Result<(), CliError> {
    match command {
        ProjectionCommand::Split(args) => split(stores, &args, json).await,
        ProjectionCommand::Rebuild(args) => crate::rebuild::run(stores, &args, json).await,
        ProjectionCommand::Retire(args) => retire(stores, &args, json).await,
        ProjectionCommand::Reset(args) => {
            let reset = reset(stores, &args).await?;
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
    }
}

async fn reset(stores: &Stores, args: &ResetArgs) -> Result<Reset, CliError> {
    let name = args.name.as_str();
    let known = Known::read(stores).await?;
    known.whole(name, "reset")?;
    let Known { records, splits } = known;
    let head = stores.head().await?;
    if args.to > head {
        return Err(CliError::Usage(format!(
            "position {} is past the store's head ({head}): nothing changed",
            args.to
        )));
    }
    let position_of = |checkpoint: &str| {
        records
            .iter()
            .find(|r| r.projection == checkpoint)
            .map_or(0, |r| r.position)
    };
    let checkpoints = match splits.get(name) {
        Some(&count) => reset_split(stores, name, count, args.to, &position_of).await?,
        None => {
            let from = position_of(name);
            reset_whole(stores, name, args.to).await?;
            vec![Moved {
                name: name.to_owned(),
                from,
            }]
        }
    };
    Ok(Reset {
        projection: name.to_owned(),
        checkpoints,
        to: args.to,
    })
}

/// `projection retire NAME`.
async fn retire(stores: &Stores, args: &RetireArgs, json: bool) -> Result<(), CliError> {
    if !stores.leases_shared {
        warn_unseen_workers(&args.name);
    }
    let retired = eventsource_runtime::operate::retire(&operated(stores), &args.name).await?;
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

/// Says that the store's leases and claims live in the service's process (SQLite), where
/// nothing here can see them.
fn warn_unseen_workers(name: &str) {
    eprintln!(
        "eventsource: note: this store keeps leases and segment claims in the service's \
         process: make sure no worker of `{name}` runs"
    );
}

/// Resets a projection that runs whole, holding its lease.
async fn reset_whole(stores: &Stores, name: &str, to: u64) -> Result<(), CliError> {
    let checkpoints = &*stores.checkpoints;
    if !stores.leases_shared {
        warn_unseen_workers(name);
    }
    let lease = checkpoints
        .try_acquire(name)
        .await
        .map_err(CliError::store(format!(
            "cannot take the lease on `{name}`"
        )))?;
    let Some(lease) = lease else {
        let holder = checkpoints
            .lease_holder(name)
            .await
            .ok()
            .flatten()
            .map_or_else(|| "another worker".to_owned(), |holder| holder.to_string());
        return Err(CliError::Refused(format!(
            "projection `{name}` is held by {holder}: stop it first; nothing changed"
        )));
    };
    let reset = checkpoints.reset_leased(&*lease, name, to).await;
    lease.release().await;
    reset.map_err(CliError::store(format!("cannot reset `{name}`")))
}

/// Resets every segment of a split projection, holding all of them: refused while a worker
/// holds one (its claim not expired).
async fn reset_split(
    stores: &Stores,
    name: &str,
    count: u32,
    to: u64,
    position_of: &dyn Fn(&str) -> u64,
) -> Result<Vec<Moved>, CliError> {
    let segments: Vec<Segment> = (0..count).filter_map(|i| Segment::new(i, count)).collect();
    let Some(claims) = &stores.claims else {
        warn_unseen_workers(name);
        return reset_checkpoints(stores, name, &segments, to, position_of).await;
    };
    let held = claims
        .claim(name, CLI_WORKER, segments.len(), CLI_CLAIM_TIMEOUT)
        .await
        .map_err(CliError::store(format!(
            "cannot claim the segments of `{name}`"
        )))?;
    let mine: Vec<Claim> = held.iter().map(|claimed| claimed.claim).collect();
    if mine.len() < segments.len() {
        let busy = busy_segments(&**claims, name).await;
        release(&**claims, name, &mine).await;
        return Err(CliError::Refused(format!(
            "projection `{name}` is held by its workers ({busy}): stop them first; nothing changed"
        )));
    }
    let result = reset_checkpoints(stores, name, &segments, to, position_of).await;
    release(&**claims, name, &mine).await;
    result
}

/// Resets each segment's checkpoint (while the command line holds every segment, where
/// the claims are kept across processes).
async fn reset_checkpoints(
    stores: &Stores,
    name: &str,
    segments: &[Segment],
    to: u64,
    position_of: &dyn Fn(&str) -> u64,
) -> Result<Vec<Moved>, CliError> {
    let mut moved = Vec::new();
    for &segment in segments {
        let checkpoint = segment.checkpoint_name(name);
        let from = position_of(&checkpoint);
        stores
            .checkpoints
            .reset(&checkpoint, to)
            .await
            .map_err(CliError::store(format!("cannot reset `{checkpoint}`")))?;
        moved.push(Moved {
            name: checkpoint,
            from,
        });
    }
    Ok(moved)
}

/// `0/4 by worker-a (epoch 3), ...`: the segments other workers hold.
async fn busy_segments(claims: &dyn SegmentClaims, name: &str) -> String {
    let Ok(owners) = claims.owners(name).await else {
        return "owners unknown".to_owned();
    };
    let busy: Vec<String> = owners
        .iter()
        .filter(|o| !o.expired && o.owner.as_deref().is_some_and(|w| w != CLI_WORKER))
        .map(|o| {
            let owner = o.owner.as_deref().unwrap_or("?");
            format!("{} by {owner} (epoch {})", o.segment, o.epoch)
        })
        .collect();
    busy.join(", ")
}

async fn release(claims: &dyn SegmentClaims, name: &str, mine: &[Claim]) {
    // A claim not given back expires after CLI_CLAIM_TIMEOUT: nothing more to do on error.
    let _ = claims.release(name, CLI_WORKER, mine).await;
    let _ = claims.leave(name, CLI_WORKER).await;
}

/// What a split did.
#[derive(Debug, Serialize)]
struct Split {
    projection: String,
    from: u32,
    to: u32,
    /// Each new segment's checkpoint.
    checkpoints: Vec<Moved>,
}

/// `projection split NAME --into COUNT`.
async fn split(stores: &Stores, args: &SplitArgs, json: bool) -> Result<(), CliError> {
    let (name, count) = (args.name.as_str(), args.into);
    let Some(claims) = &stores.claims else {
        return Err(CliError::Usage(format!(
            "this store keeps segment claims in the service's process: rebuild `{name}` under \
             a new name with {count} segments instead"
        )));
    };
    let outcome = match claims.resplit(name, count).await {
        Err(StoreError::Unsupported { .. }) => {
            return Err(CliError::Usage(format!(
                "this store cannot split `{name}` again: rebuild it under a new name instead"
            )));
        }
        outcome => outcome.map_err(CliError::store(format!("cannot split `{name}`")))?,
    };
    let from = match outcome {
        Resplit::Done { from } => from,
        Resplit::Held(owners) => {
            let held: Vec<String> = owners
                .iter()
                .map(|o| {
                    let owner = o.owner.as_deref().unwrap_or("?");
                    format!("{} by {owner} (epoch {})", o.segment, o.epoch)
                })
                .collect();
            return Err(CliError::Refused(format!(
                "projection `{name}` is held by its workers ({}): stop them first; nothing changed",
                held.join(", ")
            )));
        }
        Resplit::NotSplit => {
            return Err(CliError::NotFound(format!(
                "`{name}` is not split into segments in this store"
            )));
        }
        Resplit::NotAMultiple { recorded } => {
            return Err(CliError::Usage(format!(
                "`{name}` has {recorded} segments: give a multiple of {recorded} above it; \
                 nothing changed"
            )));
        }
        _ => return Err(CliError::Usage(format!("`{name}` was not split again"))),
    };
    let mut checkpoints = Vec::new();
    for index in 0..count {
        let Some(segment) = Segment::new(index, count) else {
            continue;
        };
        let checkpoint = segment.checkpoint_name(name);
        let from = stores
            .checkpoints
            .load(&checkpoint)
            .await
            .map_err(CliError::store(format!("cannot read `{checkpoint}`")))?;
        checkpoints.push(Moved {
            name: checkpoint,
            from,
        });
    }
    let split = Split {
        projection: name.to_owned(),
        from,
        to: count,
        checkpoints,
    };
    if json {
        return output::json(&split);
    }
    let mut text = format!("{name}: {from} -> {count} segments (start its workers with {count})\n");
    for checkpoint in &split.checkpoints {
        text.push_str(&format!("  {} from {}\n", checkpoint.name, checkpoint.from));
    }
    output::text(&text)
}
