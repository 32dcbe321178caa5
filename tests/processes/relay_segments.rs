//! The relay split into segments across real processes (issue 47): the `distributed`
//! example's producer stores the orders in PostgreSQL (traced, nothing published), then
//! three relay processes (`--relay-only --relay-segments 16`, one event per batch, the
//! segments claimed in PostgreSQL) publish them to a real broker together while one
//! consumer process (never killed) handles them in the groups `confirmations`, `shipping`
//! and `history`. Once a quarter of the events are out and the segments the second relay
//! holds are partly published, it is killed (SIGKILL), events of its segments still
//! unpublished; the two others take its segments over after the claim timeout and exit once
//! every segment is published. Counted by event id from what the consumer printed and
//! exported:
//!
//! - none lost: every stored event handled by each of its groups (`tests/common/faults/`'s
//!   tally; the idempotent confirmation once), and seen by `history-seen`;
//! - at least once, only where the kill allows it: an event delivered more than once is one
//!   of the killed relay's segments, after the checkpoint that segment had saved at the
//!   kill (what the relay that took it over published again);
//! - each aggregate's events in version order: the first arrival of each event, per
//!   aggregate, goes 1, 2, ... (a re-sent duplicate of an event already seen is ignored);
//! - the consumers' traces unchanged: every consume span is a live delivery in the trace
//!   stored with its event (the command's), its parent the publish span of one of the relays
//!   (missing only when the killed relay published it and died before exporting it), whose
//!   parent is the append span that stored the event (as `tests/common/processes.rs` checks
//!   for one relay).
//!
//! Needs `DATABASE_URL` and `EVENTSOURCE_AMQP_URL` (`EVENTSOURCE_KAFKA_BROKERS` for the Kafka
//! case); skipped visibly without them, unless the matching `EVENTSOURCE_REQUIRE_*=1`. Every
//! wait polls the processes' output, the database or the collector with a bound.

use eventsource_test_support::faults;
use eventsource_test_support::otlp;
use eventsource_test_support::postgres;
use eventsource_test_support::processes;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::faults::{Bounds, Consumers, Process, Stored};
use crate::otlp::{AttrValue, Span};
use crate::postgres::TestDb;
use crate::processes::{BrokerKind, Setup};
use eventsource_runtime::postgres::{PostgresCheckpointStore, PostgresEventStore};
use eventsource_runtime::projection::checkpoint::CheckpointStore as _;
use eventsource_runtime::projection::segments::SegmentClaims as _;
use eventsource_runtime::relay;
use eventsource_runtime::sqlx;
use eventsource_runtime::store::{EventStore as _, Segment, WithStoreTelemetry};
use eventsource_runtime::telemetry::attributes as attr;
use tokio::runtime::Runtime;
use uuid::Uuid;

const SEGMENTS: u32 = 16;
const RELAYS: usize = 3;
/// The relay killed: `relay-2`.
const VICTIM: usize = 2;
/// Long enough that a live relay on a loaded machine keeps its claims; the killed relay's
/// segments wait this long.
const CLAIM_TIMEOUT_MS: &str = "4000";

/// A stored event, as the test knows it.
#[derive(Debug)]
struct Event {
    event_type: String,
    aggregate: String,
    version: u64,
    position: u64,
    /// Its segment's index (of [`SEGMENTS`]).
    segment: u32,
    /// Its stored trace context: the command's trace, and the append span it continues.
    trace: String,
    parent: String,
}

/// A segment of the relay, as the claims store has it.
#[derive(Debug)]
struct SegmentState {
    index: u32,
    owner: Option<String>,
    expired: bool,
    checkpoint: u64,
}

/// The producer's store, in the test's schema: its events and the relay's segments.
struct Log<'r> {
    runtime: &'r Runtime,
    checkpoints: PostgresCheckpointStore,
    events: BTreeMap<Uuid, Event>,
}

impl<'r> Log<'r> {
    fn read(runtime: &'r Runtime, url: &str, schema: &str) -> Self {
        runtime.block_on(async {
            let store = PostgresEventStore::connect(url)
                .await
                .expect("the store")
                .with_schema(schema)
                .expect("a schema name")
                .enable_tracing(false);
            // The store's own segments (PostgreSQL hashes the streams in SQL).
            let mut segments = HashMap::new();
            for segment in Segment::all(SEGMENTS) {
                let read = store.read_segment(segment, 0, usize::MAX).await;
                for event in read.expect("a segment's events").iter() {
                    segments.insert(event.event_id, segment.index());
                }
            }
            let read = store.read_all(0, usize::MAX).await.expect("the events");
            let mut events = BTreeMap::new();
            for event in read.into_events() {
                let context = event
                    .metadata
                    .traceparent()
                    .expect("a stored trace context");
                let parts: Vec<&str> = context.split('-').collect();
                assert_eq!(parts.len(), 4, "a W3C traceparent: {context}");
                let known = Event {
                    event_type: event.event_type.to_string(),
                    aggregate: event.aggregate_id().to_owned(),
                    version: event.version,
                    position: event.position,
                    segment: segments[&event.event_id],
                    trace: parts[1].to_ascii_lowercase(),
                    parent: parts[2].to_ascii_lowercase(),
                };
                events.insert(event.event_id, known);
            }
            Self {
                runtime,
                checkpoints: store.checkpoint_store(),
                events,
            }
        })
    }

    /// What `tests/common/faults/` tallies against.
    fn stored(&self) -> Stored {
        let of = |kind: &str| -> BTreeSet<Uuid> {
            let events = self.events.iter();
            events
                .filter(|(_, e)| e.event_type == kind)
                .map(|(id, _)| *id)
                .collect()
        };
        let stored = Stored {
            placed: of("OrderPlaced"),
            shipped: of("OrderShipped"),
            last: self.events.values().map(|e| e.position).max().unwrap_or(0),
        };
        assert_eq!(stored.len(), self.events.len(), "orders placed and shipped");
        stored
    }

    /// Every segment's owner and checkpoint (none before the first relay split the log).
    fn segments(&self) -> Vec<SegmentState> {
        self.runtime.block_on(async {
            let name = relay::DEFAULT_NAME;
            let owners = self.checkpoints.owners(name).await.expect("the claims");
            let mut states = Vec::new();
            for owner in owners {
                let checkpoint_name = owner.segment.checkpoint_name(name);
                let checkpoint = self.checkpoints.load(&checkpoint_name).await;
                states.push(SegmentState {
                    index: owner.segment.index(),
                    owner: owner.owner,
                    expired: owner.expired,
                    checkpoint: checkpoint.expect("a checkpoint"),
                });
            }
            states
        })
    }

    /// The events of the segments `which` picks, at or below their checkpoints and after.
    fn progress(
        &self,
        states: &[SegmentState],
        which: impl Fn(&SegmentState) -> bool,
    ) -> (usize, usize) {
        let checkpoints: BTreeMap<u32, u64> = states
            .iter()
            .filter(|s| which(s))
            .map(|s| (s.index, s.checkpoint))
            .collect();
        let (mut done, mut left) = (0, 0);
        for event in self.events.values() {
            match checkpoints.get(&event.segment) {
                Some(checkpoint) if event.position <= *checkpoint => done += 1,
                Some(_) => left += 1,
                None => {}
            }
        }
        (done, left)
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Relay process `n` (`relay-{n}`, service `orders-relay-{n}`): one worker of the relay
/// over [`SEGMENTS`] segments, one event per batch.
fn start_relay(setup: &Setup, dir: &Path, url: &str, schema: &str, n: usize) -> Process {
    let name = format!("relay-{n}");
    let args = format!(
        "--store {url} --store-schema {schema} --relay-only --relay-batch 1 --relay-segments \
         {SEGMENTS} --worker-name {name} --claim-timeout-ms {CLAIM_TIMEOUT_MS}"
    );
    let args: Vec<&str> = args.split_whitespace().collect();
    let command = setup.command("producer", &format!("orders-relay-{n}"), &args);
    Process::spawn(command, &name, dir)
}

/// The segments a relay process said it held at some time (`relay holding [3/16@1 ...]`).
fn ever_held(relay: &Process) -> BTreeSet<u32> {
    let lists = relay.seen.iter().filter_map(|line| {
        let list = line.strip_prefix("relay holding [")?.strip_suffix(']')?;
        Some(list.split_whitespace().filter_map(|claim| {
            let (index, _) = claim.split_once('/')?;
            index.parse().ok()
        }))
    });
    lists.flatten().collect()
}

/// Every delivery to the `history` group, in order: `history seen {aggregate} v{version}
/// [message {id}]`.
fn history_seen(consumers: &Consumers<'_>) -> Vec<(String, u64, Uuid)> {
    let parse = |line: &str| {
        let rest = line.strip_prefix("history seen ")?;
        let (aggregate, rest) = rest.split_once(" v")?;
        let (version, rest) = rest.split_once(" [message ")?;
        let id = Uuid::parse_str(rest.strip_suffix(']')?).ok()?;
        Some((aggregate.to_owned(), version.parse().ok()?, id))
    };
    consumers
        .lines()
        .filter_map(|(_, line)| parse(line))
        .collect()
}

/// The three relays publish the stored orders over [`SEGMENTS`] segments; the second is
/// killed mid-publish. See the module.
fn segmented_relays_one_killed_mid_publish(kind: BrokerKind, orders: usize, bounds: Bounds) {
    let test = "relay-segments";
    let Some(setup) = Setup::new(test, kind) else {
        return;
    };
    let runtime = runtime();
    let Some(db) = runtime.block_on(TestDb::open(test)) else {
        return;
    };
    let url = std::env::var("DATABASE_URL").expect("TestDb::open read it");
    let schema = db.schema();
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("es-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory");
    let produce = format!("--orders {orders} --store {url} --store-schema {schema} --no-relay");
    let produce: Vec<&str> = produce.split_whitespace().collect();
    let produced = setup.produce(&produce);
    assert!(
        produced.contains(&format!("stored {orders} orders")),
        "{produced}"
    );
    let log = Log::read(&runtime, &url, &schema);
    let stored = log.stored();
    let total = stored.len();

    let groups = [
        "--groups",
        "confirmations,shipping,history",
        "--processed",
        &url,
    ];
    let mut consumers = Consumers::new(&setup, &dir, &groups);
    consumers.start();
    let mut relays: Vec<Process> = (1..=RELAYS)
        .map(|n| start_relay(&setup, &dir, &url, &schema, n))
        .collect();

    // Killed once a quarter of the events are out and its own segments are under way.
    let victim = format!("relay-{VICTIM}");
    let holds = |s: &SegmentState| s.owner.as_deref() == Some(victim.as_str()) && !s.expired;
    let deadline = Instant::now() + bounds.progress;
    loop {
        let states = log.segments();
        let (published, _) = log.progress(&states, |_| true);
        let (done, left) = log.progress(&states, holds);
        if published >= total / 4 && done > 0 && left > 0 {
            break;
        }
        for relay in &mut relays {
            assert!(
                relay.running(),
                "{test}: {} exited{}",
                relay.name,
                relay.errors()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{test}: {victim} never held segments half published within {:?}: {published} of \
             {total} published; {states:?}",
            bounds.progress
        );
        consumers.pump(Duration::from_millis(10));
    }
    relays[VICTIM - 1].kill();
    let killed_at = Instant::now();
    let at_kill = log.segments();
    let (done, left) = log.progress(&at_kill, holds);
    let (published, _) = log.progress(&at_kill, |_| true);
    assert!(
        relays[VICTIM - 1].was_killed() && left > 0,
        "{test}: {victim} was to be killed mid-publish: {:?}, {left} events of its segments left",
        relays[VICTIM - 1].status()
    );
    // What the relays that take its segments over publish again: the events after the
    // checkpoints its segments had saved.
    let killed_segments: BTreeMap<u32, u64> = at_kill
        .iter()
        .filter(|s| s.owner.as_deref() == Some(victim.as_str()))
        .map(|s| (s.index, s.checkpoint))
        .collect();
    let may_come_again: BTreeSet<Uuid> = log
        .events
        .iter()
        .filter(|(_, e)| {
            killed_segments
                .get(&e.segment)
                .is_some_and(|c| e.position > *c)
        })
        .map(|(id, _)| *id)
        .collect();
    eprintln!(
        "{test}: {victim} killed holding segments {:?} ({done} of their events published, \
         {left} left); {published} of {total} published",
        killed_segments.keys().collect::<Vec<_>>()
    );

    // The others take its segments over, publish the rest and exit.
    let last = stored.last;
    let up_to = format!("published every stored event, up to position {last}");
    for relay in relays.iter_mut().filter(|r| r.name != victim) {
        let status = relay.wait_exit(bounds.recovery.saturating_sub(killed_at.elapsed()));
        assert!(
            status.is_some_and(|s| s.success()),
            "{test}: {} carries on after the kill and exits: {status:?}{}",
            relay.name,
            relay.errors()
        );
        assert!(relay.seen.contains(&up_to), "{:?}", relay.seen);
    }
    let published_all = killed_at.elapsed();
    consumers.wait_until(
        &format!("{test}: every event handled"),
        &stored,
        bounds.recovery.saturating_sub(killed_at.elapsed()),
        |tally| tally.handled(&stored) == total,
    );
    let history_deadline = killed_at + bounds.recovery;
    let seen = |consumers: &Consumers<'_>| {
        let ids: BTreeSet<Uuid> = history_seen(consumers).iter().map(|d| d.2).collect();
        ids.len()
    };
    while seen(&consumers) < total {
        assert!(
            Instant::now() < history_deadline,
            "{test}: the history group did not see every event within {:?}",
            bounds.recovery
        );
        consumers.pump(Duration::from_millis(100));
    }
    let handled_all = killed_at.elapsed();
    consumers.stop();
    let verdict = consumers.check(test, &stored);
    assert_eq!(verdict.confirmations_again_after_kill, 0);

    // ---- none lost, again only where the kill allows, each aggregate in order ----
    let mut times: BTreeMap<Uuid, usize> = BTreeMap::new();
    let mut first: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let deliveries = history_seen(&consumers);
    for (aggregate, version, id) in &deliveries {
        let event = log
            .events
            .get(id)
            .unwrap_or_else(|| panic!("{test}: the history saw {id}, never stored"));
        assert_eq!((&event.aggregate, event.version), (aggregate, *version));
        let seen = times.entry(*id).or_default();
        *seen += 1;
        if *seen == 1 {
            first.entry(&event.aggregate).or_default().push(*version);
        }
    }
    let missing: Vec<&Uuid> = log
        .events
        .keys()
        .filter(|id| !times.contains_key(id))
        .collect();
    assert!(missing.is_empty(), "{test}: never delivered: {missing:?}");
    let again: BTreeSet<Uuid> = times
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| *id)
        .collect();
    let unexplained: Vec<(&Uuid, u32, u64)> = again
        .difference(&may_come_again)
        .map(|id| (id, log.events[id].segment, log.events[id].position))
        .collect();
    assert!(
        unexplained.is_empty(),
        "{test}: delivered again (id, segment, position), though not published after a \
         checkpoint of the killed relay's segments: {unexplained:?}; at the kill: \
         {at_kill:?}; the relays said: {:?}",
        relays.iter().map(|r| &r.seen).collect::<Vec<_>>()
    );
    for (aggregate, versions) in &first {
        let expected: Vec<u64> = (1..=versions.len() as u64).collect();
        assert_eq!(versions, &expected, "{test}: {aggregate}, first deliveries");
    }

    // ---- the traces: the command's, through one relay's publish, to the consumer ----
    let killed_held = ever_held(&relays[VICTIM - 1]);
    let (consumed, unexported) = check_traces(test, &setup, &log, &killed_held);
    eprintln!(
        "{test} ({kind:?}): {total} events ({orders} orders) over {SEGMENTS} segments and \
         {RELAYS} relay processes, {victim} killed mid-publish: every relay done {published_all:?} \
         and every event handled {handled_all:?} after the kill ({:?} in all); none lost; \
         {} events delivered again to the history group ({} could be: the killed relay's \
         segments after their checkpoints); {} aggregates each in version order; {consumed} \
         consume spans, each in its command's trace under a relay's publish span ({unexported} \
         under one the killed relay never exported); CRM updates again {}, shipping notices \
         again {}",
        started.elapsed(),
        again.len(),
        may_come_again.len(),
        first.len(),
        verdict.crm_duplicates,
        verdict.shipping_duplicates,
    );
    runtime.block_on(async {
        let ids: Vec<Uuid> = log.events.keys().copied().collect();
        sqlx::query("DELETE FROM event_history WHERE event_id = ANY($1)")
            .bind(&ids)
            .execute(db.admin())
            .await
            .expect("the history cleaned");
        db.cleanup().await;
    });
    setup.clean();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Checks every consume span against the stored trace context of its event (see the
/// module); the consume spans, and those whose publish span the killed relay (which held
/// `killed_held` at some time) did not export.
fn check_traces(
    test: &str,
    setup: &Setup,
    log: &Log<'_>,
    killed_held: &BTreeSet<u32>,
) -> (usize, usize) {
    let groups = |event: &Event| match event.event_type.as_str() {
        "OrderPlaced" => ["history", "confirmations"],
        _ => ["history", "shipping"],
    };
    let message = |span: &Span| Uuid::parse_str(span.str(attr::MESSAGING_MESSAGE_ID)).ok();
    // Every exporter flushed at its process's exit; the collector may still be reading.
    let deadline = Instant::now() + Duration::from_secs(30);
    let spans = loop {
        let spans = setup.spans();
        let consumed: BTreeSet<(Uuid, &str)> = spans
            .iter()
            .filter(|s| s.name == attr::SPAN_BUS_CONSUME)
            // The broker's name of the group (`{prefix}.confirmations`: Kafka's group id,
            // RabbitMQ's queue), by its short name.
            .filter_map(|s| {
                let group = s.str(attr::MESSAGING_CONSUMER_GROUP_NAME);
                Some((message(s)?, group.rsplit('.').next()?))
            })
            .collect();
        let complete = log.events.iter().all(|(id, event)| {
            groups(event)
                .iter()
                .all(|group| consumed.contains(&(*id, *group)))
        });
        if complete {
            break spans;
        }
        assert!(
            Instant::now() < deadline,
            "{test}: the collector never got a consume span of every event in each of its \
             groups: {} of {}",
            consumed.len(),
            log.events.len() * 2
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let by_id: HashMap<(&str, &str), &Span> = spans
        .iter()
        .map(|s| ((s.trace_id.as_str(), s.span_id.as_str()), s))
        .collect();
    let commands: BTreeSet<&str> = spans
        .iter()
        .filter(|s| s.service == "orders-producer" && s.name.starts_with("command."))
        .map(|s| s.trace_id.as_str())
        .collect();
    let (mut consumed, mut unexported) = (0, 0);
    for consume in spans.iter().filter(|s| s.name == attr::SPAN_BUS_CONSUME) {
        let id = message(consume).expect("a message id");
        let event = &log.events[&id];
        let mode = consume.attributes.get(attr::DELIVERY_MODE);
        assert_eq!(
            mode,
            Some(&AttrValue::Str(attr::DELIVERY_LIVE.into())),
            "{id}"
        );
        let trace = consume.trace_id.to_ascii_lowercase();
        assert_eq!(
            trace, event.trace,
            "{test}: {id}'s consume span, in its command's trace"
        );
        assert!(
            commands.contains(consume.trace_id.as_str()),
            "{test}: {id}'s command span"
        );
        let append = by_id.get(&(consume.trace_id.as_str(), event.parent.as_str()));
        assert_eq!(
            append.map(|s| (s.name.as_str(), s.service.as_str())),
            Some((attr::SPAN_STORE_APPEND, "orders-producer")),
            "{test}: {id} stored by the producer's append"
        );
        consumed += 1;
        let publish = by_id.get(&(consume.trace_id.as_str(), consume.parent_span_id.as_str()));
        let Some(publish) = publish else {
            assert!(
                killed_held.contains(&event.segment),
                "{test}: {id}'s publish span missing, though the killed relay never held \
                 segment {}",
                event.segment
            );
            unexported += 1;
            continue;
        };
        assert_eq!(
            publish.name,
            attr::SPAN_BUS_PUBLISH,
            "{test}: {id}'s consume parent"
        );
        assert!(
            publish.service.starts_with("orders-relay-"),
            "{}",
            publish.service
        );
        assert_eq!(
            publish.parent_span_id.to_ascii_lowercase(),
            event.parent,
            "{test}: {id}'s publish span, under the append that stored it"
        );
    }
    (consumed, unexported)
}

const RABBITMQ: Bounds = Bounds {
    progress: Duration::from_secs(60),
    recovery: Duration::from_secs(90),
};

#[test]
fn relay_processes_over_segments_one_killed_mid_publish_lose_nothing_rabbitmq() {
    let _one = faults::one_at_a_time();
    segmented_relays_one_killed_mid_publish(BrokerKind::RabbitMq, 400, RABBITMQ);
}

/// Kafka: a consumer group's first join, and a dead member's session, take longer.
const KAFKA: Bounds = Bounds {
    progress: Duration::from_secs(75),
    recovery: Duration::from_secs(90),
};

#[test]
fn relay_processes_over_segments_one_killed_mid_publish_lose_nothing_kafka() {
    let _one = faults::one_at_a_time();
    segmented_relays_one_killed_mid_publish(BrokerKind::Kafka, 400, KAFKA);
}
