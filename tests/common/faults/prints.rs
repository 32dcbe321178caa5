//! What the consumer processes printed, tallied by event id, and the store they read.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use eventsource_runtime::prelude::*;
use eventsource_runtime::projection::checkpoint::CheckpointStore as _;
use eventsource_runtime::relay;
use eventsource_runtime::sqlite::SqliteEventStore;
use uuid::Uuid;

use super::Process;

// ---- what the consumers printed ---------------------------------------------------------

/// A line a consumer prints for a message, with the message (= event) id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Print {
    /// `confirmation sent ...`: the idempotent handler ran.
    Confirmation,
    /// `updating the crm ...`: the CRM update started (the confirmation is recorded).
    CrmStarted,
    /// `crm updated ...`: the `confirmations` group's last handler finished.
    CrmUpdated,
    /// `shipping notified ...`: the `shipping` group's handler finished.
    Shipping,
}

impl Print {
    pub(super) const ALL: [Self; 4] = [
        Self::Confirmation,
        Self::CrmStarted,
        Self::CrmUpdated,
        Self::Shipping,
    ];

    pub(super) fn parse(line: &str) -> Option<(Self, Uuid)> {
        let kind = Self::ALL
            .into_iter()
            .find(|kind| line.starts_with(kind.prefix()))?;
        let (_, id) = line.rsplit_once("[message ")?;
        let id = Uuid::parse_str(id.strip_suffix(']')?).ok()?;
        Some((kind, id))
    }

    pub(super) fn prefix(self) -> &'static str {
        match self {
            Self::Confirmation => "confirmation sent",
            Self::CrmStarted => "updating the crm",
            Self::CrmUpdated => "crm updated",
            Self::Shipping => "shipping notified",
        }
    }
}

/// Every message line of every consumer: for each kind of line and message id, which
/// consumers (numbered from 1, in start order) printed it, once per print.
#[derive(Debug, Default)]
pub struct Tally {
    pub(super) prints: BTreeMap<Print, BTreeMap<Uuid, Vec<usize>>>,
}

impl Tally {
    pub(super) fn note(&mut self, consumer: usize, line: &str) {
        if let Some((kind, id)) = Print::parse(line) {
            self.prints
                .entry(kind)
                .or_default()
                .entry(id)
                .or_default()
                .push(consumer);
        }
    }

    pub(super) fn by(&self, kind: Print) -> impl Iterator<Item = (&Uuid, &Vec<usize>)> {
        self.prints.get(&kind).into_iter().flatten()
    }

    pub(super) fn printed(&self, kind: Print, id: &Uuid) -> usize {
        self.prints
            .get(&kind)
            .and_then(|ids| ids.get(id))
            .map_or(0, Vec::len)
    }

    /// The placed orders handled: confirmed and their CRM update finished.
    pub fn placed_done(&self, stored: &Stored) -> usize {
        stored
            .placed
            .iter()
            .filter(|id| {
                self.printed(Print::Confirmation, id) > 0 && self.printed(Print::CrmUpdated, id) > 0
            })
            .count()
    }

    /// The shipped orders whose notice went out.
    pub fn shipped_done(&self, stored: &Stored) -> usize {
        stored
            .shipped
            .iter()
            .filter(|id| self.printed(Print::Shipping, id) > 0)
            .count()
    }

    pub fn handled(&self, stored: &Stored) -> usize {
        self.placed_done(stored) + self.shipped_done(stored)
    }

    pub fn complete(&self, stored: &Stored) -> bool {
        self.handled(stored) == stored.len()
    }

    /// How many prints of `kind` came more than once: the extra ones.
    pub(super) fn extra(&self, kind: Print) -> usize {
        self.by(kind)
            .map(|(_, by)| by.len().saturating_sub(1))
            .sum()
    }

    /// What each of `consumers` printed: for each kind, how many lines, and how many of
    /// them again (a message some consumer had printed that line for before).
    pub(super) fn per_consumer(&self, consumers: usize) -> String {
        let mut rows = Vec::new();
        for consumer in 1..=consumers {
            let cells: Vec<String> = [Print::Confirmation, Print::CrmUpdated, Print::Shipping]
                .into_iter()
                .map(|kind| {
                    let (mut all, mut again) = (0, 0);
                    for (_, by) in self.by(kind) {
                        for (n, _) in by.iter().enumerate().filter(|(_, c)| **c == consumer) {
                            all += 1;
                            if n > 0 {
                                again += 1;
                            }
                        }
                    }
                    format!("{all} {} ({again} again)", kind.prefix())
                })
                .collect();
            rows.push(format!("consumer {consumer}: {}", cells.join(", ")));
        }
        rows.join("; ")
    }
}

/// The events the producer stored (its store is the outbox), by type.
#[derive(Debug)]
pub struct Stored {
    pub placed: BTreeSet<Uuid>,
    pub shipped: BTreeSet<Uuid>,
    /// The position of the last one.
    pub last: u64,
}

impl Stored {
    /// How many events were stored.
    pub fn len(&self) -> usize {
        self.placed.len() + self.shipped.len()
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads the producer's SQLite store (`sqlite:PATH`).
    pub fn read(store: &str) -> Self {
        runtime().block_on(async {
            let store = SqliteEventStore::connect(store).await.expect("the store");
            let events = store
                .read_all(0, usize::MAX)
                .await
                .expect("the stored events")
                .into_events();
            let ids = |event_type: &str| -> BTreeSet<Uuid> {
                events
                    .iter()
                    .filter(|e| e.event_type == event_type)
                    .map(|e| e.event_id)
                    .collect()
            };
            let stored = Self {
                placed: ids("OrderPlaced"),
                shipped: ids("OrderShipped"),
                last: events.last().map_or(0, |e| e.position),
            };
            assert_eq!(stored.len(), events.len(), "only orders placed and shipped");
            stored
        })
    }
}

/// The relay's checkpoint in the producer's SQLite store: the last position the broker
/// confirmed.
pub fn relay_checkpoint(store: &str) -> u64 {
    runtime().block_on(async {
        let store = SqliteEventStore::connect(store).await.expect("the store");
        store
            .checkpoint_store()
            .load(relay::DEFAULT_NAME)
            .await
            .expect("the relay's checkpoint")
    })
}

/// Polls the relay's checkpoint until it reached `mark` (fails after `within`, or if the
/// relay exits first).
pub(super) fn wait_for_checkpoint(
    test: &str,
    relay: &mut Process,
    store: &str,
    mark: u64,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    let mut checkpoint = relay_checkpoint(store);
    while checkpoint < mark {
        assert!(
            relay.running() && Instant::now() < deadline,
            "{test}: {} at {checkpoint}, not past {mark} within {within:?} ({:?}){}",
            relay.name,
            relay.status(),
            relay.errors()
        );
        std::thread::sleep(Duration::from_millis(5));
        checkpoint = relay_checkpoint(store);
    }
}

pub(super) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}
