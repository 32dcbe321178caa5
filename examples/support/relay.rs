//! The `distributed` example's relay: what the producer's store holds, published to the
//! broker by one relay over the whole store, or by one worker of a relay split into
//! segments (`--relay-segments`, the segments claimed in PostgreSQL); until it caught up,
//! or (`--follow`) until SIGTERM or SIGINT.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use eventsource_runtime::bus::EventBus;
use eventsource_runtime::health::HealthRegistry;
use eventsource_runtime::postgres::PostgresEventStore;
use eventsource_runtime::projection::segments::{Claim, DEFAULT_CLAIM_TIMEOUT, SegmentClaims};
use eventsource_runtime::relay::{Relay, SegmentedRelay};
use eventsource_runtime::store::{EventStore, StoreError};
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
    let head = store.head_position().await?.unwrap_or(0);
    println!(
        "relay worker started: {count} segments, claim timeout {} ms",
        timeout.as_millis()
    );
    let caught_up = AtomicBool::new(false);
    let stop = async {
        if options.follow {
            return shutdown_signal().await;
        }
        tokio::select! {
            () = shutdown_signal() => {}
            () = published_up_to(&worker, &store, head) => caught_up.store(true, Ordering::SeqCst),
        }
    };
    tokio::select! {
        outcome = worker.run(stop) => outcome?,
        never = print_holdings(&worker) => match never {},
    }
    if caught_up.load(Ordering::SeqCst) {
        println!("published every stored event, up to position {head}");
    } else {
        println!("relay worker stopped");
    }
    Ok(())
}

/// Returns once every segment published the events stored up to `head`.
async fn published_up_to(worker: &SegmentedRelay, store: &dyn EventStore, head: u64) {
    // A store that fails now is retried by the worker's runners as by this check.
    while !all_published(worker, store, head).await.unwrap_or(false) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether no segment has an event at or below `head` after its checkpoint (none before
/// the first worker split the relay).
async fn all_published(
    worker: &SegmentedRelay,
    store: &dyn EventStore,
    head: u64,
) -> Result<bool, StoreError> {
    let segments = worker.segments().await?;
    if segments.is_empty() {
        return Ok(false);
    }
    for status in segments {
        let next = store
            .read_segment(status.segment, status.checkpoint + 1, 1)
            .await?;
        if next.first().is_some_and(|event| event.position <= head) {
            return Ok(false);
        }
    }
    Ok(true)
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
