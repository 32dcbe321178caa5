//! Throughput at scale (issue 36, parts 2 and 3), each store beside the plain SQL that does
//! the same work, in one run:
//!
//! - `append_1000`: one append of 1,000 events to a new stream, by the store with tracing
//!   off, with tracing on (eventsource's layer over an exporter that drops every span), and
//!   by plain SQL: the same rows, serialized the same way, in one transaction (SQLite:
//!   multi-row `INSERT`s; PostgreSQL: one `INSERT ... SELECT FROM unnest(...)`);
//! - `load_stream`: a repository load, without snapshot, of a stream of 100,000 events
//!   (1,000,000 with `SCALE_EVENTS=1000000`), against a raw read of the same rows (every
//!   column, streamed) with each payload decoded into the event type and applied; beside
//!   them `EventStore::load` of the whole stream (the store's decoding, no paging).
//!
//! `SCALE_ONLY=append` or `SCALE_ONLY=load` runs one of the two.
//!
//! Before criterion's own groups, an interleaved pass (`SCALE_ROUNDS`, default 9, rounds of
//! every variant in turn) prints the median ratios, and for the loads the peak resident
//! memory above the process's before the load (VmHWM, reset through `/proc/self/clear_refs`
//! after glibc's `malloc_trim` has returned the memory earlier work freed).
//!
//! `DATABASE_URL=postgres://postgres@127.0.0.1:5432/eventsource_test cargo bench --bench scale`
//! (PostgreSQL is skipped with a note when `DATABASE_URL` is unset.)

mod common;
#[path = "scale/setup.rs"]
mod setup;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;

use setup::{Db, peak_above, reset_peak};

/// Events per append.
const APPEND_EVENTS: u64 = 1_000;

/// The long stream's length: 100k, or `SCALE_EVENTS`.
fn stream_events() -> u64 {
    std::env::var("SCALE_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000)
}

fn rounds() -> usize {
    std::env::var("SCALE_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(9)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Which parts run: `SCALE_ONLY=append` or `load` (both by default).
fn runs(part: &str) -> bool {
    std::env::var("SCALE_ONLY").map_or(true, |only| only == part)
}

/// The interleaved pass: every variant once per round, medians, ratios.
fn ratios(rt: &Runtime, dbs: &[Db], events: u64) {
    let rounds = rounds();
    for db in dbs.iter().filter(|_| runs("append")) {
        let (mut off, mut on, mut plain) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            plain.push(rt.block_on(db.append_plain(APPEND_EVENTS)));
            off.push(rt.block_on(db.append_store(APPEND_EVENTS, false)));
            on.push(db.append_traced(rt, APPEND_EVENTS));
        }
        let (off, on, plain) = (median(off), median(on), median(plain));
        println!(
            "scale: append_1000 {}: store/plain SQL {:.2}x tracing off, {:.2}x tracing on \
             (on/off {:.2}x); medians of {rounds}: plain {plain:?}, off {off:?}, on {on:?}",
            db.name(),
            plain.as_secs_f64() / off.as_secs_f64(),
            plain.as_secs_f64() / on.as_secs_f64(),
            off.as_secs_f64() / on.as_secs_f64(),
        );
    }
    for db in dbs.iter().filter(|_| runs("load")) {
        let stream = rt.block_on(db.fill(events));
        let (mut repo, mut raw, mut repo_peak, mut raw_peak) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut whole, mut whole_peak) = (Vec::new(), Vec::new());
        for _ in 0..rounds.min(9) {
            let base = reset_peak();
            raw.push(rt.block_on(db.load_raw(&stream, events)));
            raw_peak.push(peak_above(base));
            let base = reset_peak();
            repo.push(rt.block_on(db.load_repository(&stream, events)));
            repo_peak.push(peak_above(base));
            let base = reset_peak();
            whole.push(rt.block_on(db.load_store(&stream, events)));
            whole_peak.push(peak_above(base));
        }
        let (repo, raw, whole) = (median(repo), median(raw), median(whole));
        repo_peak.sort_unstable();
        raw_peak.sort_unstable();
        whole_peak.sort_unstable();
        println!(
            "scale: load_stream {} of {events}: raw read+decode/repository {:.2}x \
             ({:.2} us/event repository, {:.2} raw); peak RSS above the start: \
             repository {} KiB, raw {} KiB; EventStore::load whole {:.2} us/event, {} KiB",
            db.name(),
            raw.as_secs_f64() / repo.as_secs_f64(),
            repo.as_secs_f64() * 1e6 / events as f64,
            raw.as_secs_f64() * 1e6 / events as f64,
            repo_peak[repo_peak.len() / 2],
            raw_peak[raw_peak.len() / 2],
            whole.as_secs_f64() * 1e6 / events as f64,
            whole_peak[whole_peak.len() / 2],
        );
        // Right after the full load: the snapshot load of part 3's SQLite oddity.
        let snapshot_load = rt.block_on(db.snapshot_load_after_full(&stream));
        if let Some((first, second)) = snapshot_load {
            println!(
                "scale: {}: a snapshot load right after a full load {first:?}, the next {second:?}",
                db.name()
            );
        }
    }
}

fn scale(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut dbs = vec![rt.block_on(Db::sqlite())];
    dbs.extend(rt.block_on(Db::postgres()));
    let events = stream_events();
    ratios(&rt, &dbs, events);

    let mut group = c.benchmark_group("append_1000");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for db in dbs.iter().filter(|_| runs("append")) {
        group.bench_function(format!("{}/plain_sql", db.name()), |b| {
            b.iter_custom(|n| {
                (0..n)
                    .map(|_| rt.block_on(db.append_plain(APPEND_EVENTS)))
                    .sum()
            })
        });
        group.bench_function(format!("{}/store_tracing_off", db.name()), |b| {
            b.iter_custom(|n| {
                (0..n)
                    .map(|_| rt.block_on(db.append_store(APPEND_EVENTS, false)))
                    .sum()
            })
        });
        group.bench_function(format!("{}/store_tracing_on", db.name()), |b| {
            b.iter_custom(|n| (0..n).map(|_| db.append_traced(&rt, APPEND_EVENTS)).sum())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("load_stream");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5));
    for db in dbs.iter().filter(|_| runs("load")) {
        let stream = rt.block_on(db.fill(events));
        group.bench_function(format!("{}/raw_read_decode", db.name()), |b| {
            b.iter_custom(|n| {
                (0..n)
                    .map(|_| rt.block_on(db.load_raw(&stream, events)))
                    .sum()
            })
        });
        group.bench_function(format!("{}/repository", db.name()), |b| {
            b.iter_custom(|n| {
                (0..n)
                    .map(|_| rt.block_on(db.load_repository(&stream, events)))
                    .sum()
            })
        });
    }
    group.finish();

    for db in dbs {
        rt.block_on(db.close());
    }
}

criterion_group!(benches, scale);
criterion_main!(benches);
