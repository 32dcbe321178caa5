//! Replay cost: the derived `apply_event` against a hand-written `match` over the same
//! 1M events, plus the aggregate root's checked replay.
//!
//! `cargo bench --bench replay`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use eventsource_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deposited {
    pub amount: i64,
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Withdrawn {
    pub amount: i64,
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frozen;
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unfrozen;

#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "Account", events(Deposited, Withdrawn, Frozen, Unfrozen))]
pub struct Account {
    balance: i64,
    frozen: bool,
    transactions: u64,
}

impl Apply<Deposited> for Account {
    fn apply(&mut self, e: &Deposited) {
        self.balance += e.amount;
        self.transactions += 1;
    }
}
impl Apply<Withdrawn> for Account {
    fn apply(&mut self, e: &Withdrawn) {
        self.balance -= e.amount;
        self.transactions += 1;
    }
}
impl Apply<Frozen> for Account {
    fn apply(&mut self, _: &Frozen) {
        self.frozen = true;
    }
}
impl Apply<Unfrozen> for Account {
    fn apply(&mut self, _: &Unfrozen) {
        self.frozen = false;
    }
}

/// What a user would write without the derive: one `match` with the transitions inline.
fn apply_by_hand(state: &mut Account, event: &AccountEvent) {
    match event {
        AccountEvent::Deposited(e) => {
            state.balance += e.amount;
            state.transactions += 1;
        }
        AccountEvent::Withdrawn(e) => {
            state.balance -= e.amount;
            state.transactions += 1;
        }
        AccountEvent::Frozen(_) => state.frozen = true,
        AccountEvent::Unfrozen(_) => state.frozen = false,
    }
}

const EVENTS: usize = 1_000_000;

fn history() -> Vec<AccountEvent> {
    // A deterministic, branchy mix so neither side benefits from a single hot arm.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..EVENTS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 8 {
                0..=3 => Deposited {
                    amount: (x % 1000) as i64,
                }
                .into(),
                4..=5 => Withdrawn {
                    amount: (x % 500) as i64,
                }
                .into(),
                6 => Frozen.into(),
                _ => Unfrozen.into(),
            }
        })
        .collect()
}

fn replay(c: &mut Criterion) {
    let events = history();
    let mut group = c.benchmark_group("replay_1M");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(30);

    group.bench_function("derived_apply", |b| {
        b.iter(|| {
            let mut state = Account::default();
            for event in black_box(&events) {
                state.apply_event(event);
            }
            black_box(state)
        });
    });
    group.bench_function("hand_written_match", |b| {
        b.iter(|| {
            let mut state = Account::default();
            for event in black_box(&events) {
                apply_by_hand(&mut state, event);
            }
            black_box(state)
        });
    });
    group.bench_function("aggregate_root_checked_replay", |b| {
        b.iter(|| {
            let mut root = AggregateRoot::<Account>::new("acc");
            root.replay((1..).zip(black_box(&events))).unwrap();
            black_box(root)
        });
    });
    group.finish();

    // Sanity: both paths agree.
    let (mut a, mut b) = (Account::default(), Account::default());
    events.iter().for_each(|e| a.apply_event(e));
    events.iter().for_each(|e| apply_by_hand(&mut b, e));
    assert_eq!(
        (a.balance, a.frozen, a.transactions),
        (b.balance, b.frozen, b.transactions)
    );
}

criterion_group!(benches, replay);
criterion_main!(benches);
