//! Replay cost: the derived `apply_event` against a hand-written `match` over the same
//! 1M events, plus the aggregate root's checked replay (`replay_1M`); and what upcasting
//! costs a load (`replay_upcast_1M`): `Repository::load` of one 1M-event stream from the
//! in-memory store, the events stored at the current version (no upcaster), against the
//! same events stored at version 1 with a 1 -> 2 step on every one.
//!
//! `cargo bench --bench replay`; one group: `cargo bench --bench replay -- replay_upcast_1M`.

use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use eventsource_runtime::event::NewEvent;
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

/// The same aggregate twice: as code that never changed its event (`plain`), and as code
/// whose event was stored at version 1 and is read at version 2 (`upcasting`). An event type
/// belongs to one event set, hence two modules.
mod plain {
    use super::*;

    /// Version 2, the only one ever stored here.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Credited {
        pub cents: i64,
        pub currency: String,
        pub reference: String,
    }

    #[derive(Debug, Default, Aggregate)]
    #[aggregate(type = "Wallet", events(Credited(version = 2)))]
    pub struct Wallet {
        pub balance: i64,
        pub credits: u64,
    }

    impl Apply<Credited> for Wallet {
        fn apply(&mut self, e: &Credited) {
            self.balance += e.cents;
            self.credits += 1;
        }
    }
}

mod upcasting {
    use eventsource_runtime::event::upcast::Upcasters;
    use serde_json::Value;

    use super::*;

    /// Version 2: version 1 called `cents` `amount`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Credited {
        pub cents: i64,
        pub currency: String,
        pub reference: String,
    }

    /// One step, renaming the field.
    fn wallet_upcasters() -> Upcasters {
        Upcasters::new().step("Credited", 1, |payload: &mut Value| {
            let fields = payload.as_object_mut().ok_or("not an object")?;
            let amount = fields.remove("amount").ok_or("no amount")?;
            fields.insert("cents".to_owned(), amount);
            Ok::<_, &str>(())
        })
    }

    #[derive(Debug, Default, Aggregate)]
    #[aggregate(
        type = "Wallet",
        events(Credited(version = 2)),
        upcasters = wallet_upcasters
    )]
    pub struct Wallet {
        pub balance: i64,
        pub credits: u64,
    }

    impl Apply<Credited> for Wallet {
        fn apply(&mut self, e: &Credited) {
            self.balance += e.cents;
            self.credits += 1;
        }
    }
}

mod converting {
    use eventsource_runtime::event::upcast::Upcasters;

    use super::*;

    /// Version 1's shape, as stored.
    #[derive(Deserialize)]
    struct CreditedV1 {
        amount: i64,
        currency: String,
        reference: String,
    }

    /// Version 2: version 1 called `cents` `amount`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Credited {
        pub cents: i64,
        pub currency: String,
        pub reference: String,
    }

    /// One typed conversion, renaming the field.
    fn wallet_upcasters() -> Upcasters {
        Upcasters::new().convert("Credited", 1, |old: CreditedV1| {
            Ok::<_, &str>(Credited {
                cents: old.amount,
                currency: old.currency,
                reference: old.reference,
            })
        })
    }

    #[derive(Debug, Default, Aggregate)]
    #[aggregate(
        type = "Wallet",
        events(Credited(version = 2)),
        upcasters = wallet_upcasters
    )]
    pub struct Wallet {
        pub balance: i64,
        pub credits: u64,
    }

    impl Apply<Credited> for Wallet {
        fn apply(&mut self, e: &Credited) {
            self.balance += e.cents;
            self.credits += 1;
        }
    }
}

/// A store holding one stream `Wallet-w-1` of [`EVENTS`] `Credited` events written raw at
/// `version`, the amount under `amount_field`.
fn wallet_store(
    runtime: &tokio::runtime::Runtime,
    version: u32,
    amount_field: &str,
) -> InMemoryEventStore {
    let store = InMemoryEventStore::new();
    let stream = StreamId::new("Wallet", "w-1");
    runtime.block_on(async {
        for chunk in (0..EVENTS).collect::<Vec<_>>().chunks(100_000) {
            let events = chunk
                .iter()
                .map(|&i| {
                    let mut payload = serde_json::Map::new();
                    payload.insert(amount_field.to_owned(), (i % 1000).into());
                    payload.insert("currency".to_owned(), "EUR".into());
                    payload.insert("reference".to_owned(), format!("inv-{i:07}").into());
                    NewEvent::new("Credited", version, serde_json::Value::Object(payload))
                })
                .collect();
            store
                .append(&stream, ExpectedVersion::Any, events)
                .await
                .expect("appended");
        }
    });
    store
}

/// The median of the per-iteration times criterion's calls measured, warm-up included.
fn median(times: &Mutex<Vec<Duration>>) -> Option<Duration> {
    let mut times = times.lock().unwrap().clone();
    times.sort_unstable();
    times.get(times.len() / 2).copied()
}

fn replay_upcast(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    // No cache: every load replays the whole stream.
    let current =
        Repository::<plain::Wallet>::new(wallet_store(&runtime, 2, "cents")).with_cache(0);
    let old_store = wallet_store(&runtime, 1, "amount");
    let old = Repository::<upcasting::Wallet>::new(old_store.clone()).with_cache(0);
    let converted = Repository::<converting::Wallet>::new(old_store).with_cache(0);

    // Sanity: both read the same history, and the old one was upcast.
    let a = runtime.block_on(current.load("w-1")).expect("loaded");
    let b = runtime.block_on(old.load("w-1")).expect("loaded");
    let d = runtime.block_on(converted.load("w-1")).expect("loaded");
    assert_eq!(
        (a.state().balance, a.state().credits, a.version()),
        (b.state().balance, b.state().credits, b.version())
    );
    assert_eq!(
        (a.state().balance, a.state().credits, a.version()),
        (d.state().balance, d.state().credits, d.version())
    );
    assert_eq!(b.state().credits, EVENTS as u64);
    drop((a, b, d));

    let mut group = c.benchmark_group("replay_upcast_1M");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(15));
    let no_upcaster = Mutex::new(Vec::new());
    let one_step = Mutex::new(Vec::new());
    let one_conversion = Mutex::new(Vec::new());
    group.bench_function("no_upcaster", |bench| {
        bench.iter_custom(|iterations| {
            let start = Instant::now();
            for _ in 0..iterations {
                black_box(runtime.block_on(current.load("w-1")).expect("loaded"));
            }
            let elapsed = start.elapsed();
            no_upcaster
                .lock()
                .unwrap()
                .push(elapsed / iterations as u32);
            elapsed
        });
    });
    group.bench_function("one_step_each", |bench| {
        bench.iter_custom(|iterations| {
            let start = Instant::now();
            for _ in 0..iterations {
                black_box(runtime.block_on(old.load("w-1")).expect("loaded"));
            }
            let elapsed = start.elapsed();
            one_step.lock().unwrap().push(elapsed / iterations as u32);
            elapsed
        });
    });
    group.bench_function("one_conversion_each", |bench| {
        bench.iter_custom(|iterations| {
            let start = Instant::now();
            for _ in 0..iterations {
                black_box(runtime.block_on(converted.load("w-1")).expect("loaded"));
            }
            let elapsed = start.elapsed();
            one_conversion
                .lock()
                .unwrap()
                .push(elapsed / iterations as u32);
            elapsed
        });
    });
    group.finish();

    // The ratio, from the same run (when the filter ran both).
    let plain = median(&no_upcaster);
    for (what, times) in [
        ("one JSON step (`step`)", &one_step),
        ("one typed conversion (`convert`)", &one_conversion),
    ] {
        if let (Some(plain), Some(upcast)) = (plain, median(times)) {
            println!(
                "replay_upcast_1M: no upcaster {plain:.2?}, {what} on every event {upcast:.2?} \
                 (median per load): {:.2}x (goal: at most 1.5x)",
                upcast.as_secs_f64() / plain.as_secs_f64()
            );
        }
    }
}

criterion_group!(benches, replay, replay_upcast);
criterion_main!(benches);
