//! The `distributed` example's relay: what the producer's store holds, published to the
//! broker by one relay over the whole store, or by one worker of a relay split into
//! segments (`--relay-segments`, the segments claimed in PostgreSQL); until it caught up,
//! or (`--follow`) until SIGTERM or SIGINT.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use eventsource_runtime::bus::EventBus;
use eventsource_runtime::health::HealthRegistry;
use eventsource_runtime::postgres::PostgresEventStore;
use eventsource_runtime::projection::segments::{Claim, DEFAULT_CLAIM_TIMEOUT, SegmentClaims};
use eventsource_runtime::relay::{Relay, SegmentedRelay};
use eventsource_runtime::store::WithStoreTelemetry;
use eventsource_runtime::telemetry::secrets::redact_url;

use super::databases::Stores;
use super::{AnyError, Options, Role, shutdown_signal};

/// The relay options that do not go together, in one line.
pub(crate) fn check(options: &Options) -> Result<(), AnyError> {
    let segmented_only = options.worker_name.is_some() || options.claim_timeout_ms.is_some();
    if options.relay_segments.is_none() && segmented_only {
        return Err(
            "--worker-name and --claim-timeout-ms are for a relay split into \
                    segments: add --relay-segments N"
                .into(),
        );
    }
    if options.follow && options.role != Role::Producer {
        return Err(
            "--follow keeps a producer's relay running: use it with --role producer \
                    (--role both stops once every event was handled)"
                .into(),
        );
    }
    Ok(())
}

/// Publishes what `stores` hold on `bus`: the whole store, or this process's segments.
pub(crate) async fn relay(
    options: &Options,
    stores: Stores,
    bus: Arc<dyn EventBus>,
) -> Result<(), AnyError> {
    let Some(segments) = options.relay_segments else {
        return whole(options, stores, bus).await;
    };
    let Some(postgres) = stores.postgres else {
        return Err(format!(
            "--relay-segments {segments}: the segments are claimed in PostgreSQL: it needs \
             --store postgres://..., not {}",
            redact_url(&options.store)
        )
        .into());
    };
    segmented(options, postgres, bus, segments).await
}

/// One relay over the whole store (one at a time: the checkpoint store's lease).
async fn whole(options: &Options, stores: Stores, bus: Arc<dyn EventBus>) -> Result<(), AnyError> {
    let relay = Relay::new(stores.events, stores.checkpoints, bus).batch_size(options.relay_batch);
    let health = HealthRegistry::new();
    health.watch(&relay);
    if options.follow {
        println!("relaying until SIGTERM or SIGINT");
        relay.run(shutdown_signal()).await?;
        println!("relay stopped at position {}", relay.checkpoint().await?);
    } else {
        let position = relay.run_until_caught_up().await?;
        println!("published every stored event, up to position {position}");
    }
    println!("{}", health.report().await);
    Ok(())
}

/// One worker of a relay split into `count` segments, until every segment (whoever holds
/// it) published what was stored when it started, or SIGTERM or SIGINT.
async fn segmented(
    options: &Options,
    postgres: PostgresEventStore,
    bus: Arc<dyn EventBus>,
    count: u32,
) -> Result<(), AnyError> {
    // Its reads untraced: every segment polls the log, which would fill the traces; the
    // publish spans, children of the commands' stored contexts, tell the story.
    let store = postgres.enable_tracing(false);
    let checkpoints = store.checkpoint_store();
    let claims: Arc<dyn SegmentClaims> = Arc::new(checkpoints.clone());
    let timeout = options
        .claim_timeout_ms
        .map_or(DEFAULT_CLAIM_TIMEOUT, Duration::from_millis);
    let mut worker = Relay::new(Arc::new(store.clone()), Arc::new(checkpoints), bus)
        .batch_size(options.relay_batch)
        .segmented(claims, count)
        .claim_timeout(timeout);
    if let Some(name) = &options.worker_name {
        worker = worker.worker_name(name.clone());
    }
    println!(
        "relay worker started: {count} segments, claim timeout {} ms",
        timeout.as_millis()
    );
    // The position every segment published up to, once caught up.
    let reached = OnceLock::new();
    let stop = async {
        if options.follow {
            return shutdown_signal().await;
        }
        tokio::select! {
            () = shutdown_signal() => {}
            head = worker.caught_up() => {
                let _ = reached.set(head);
            }
        }
    };
    tokio::select! {
        outcome = worker.run(stop) => outcome?,
        never = print_holdings(&worker) => match never {},
    }
    match reached.get() {
        Some(head) => println!("published every stored event, up to position {head}"),
        None => println!("relay worker stopped"),
    }
    Ok(())
}

/// Prints the segments this worker holds each time they change (`segment@epoch`).
async fn print_holdings(worker: &SegmentedRelay) -> Infallible {
    let mut last: Option<Vec<Claim>> = None;
    loop {
        let held = worker.held();
        if last.as_ref() != Some(&held) {
            let list: Vec<String> = held
                .iter()
                .map(|claim| format!("{}@{}", claim.segment, claim.epoch))
                .collect();
            println!("relay holding [{}]", list.join(" "));
            last = Some(held);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
