//! Histograms that can answer a P95: a known spread of command durations and projection lags
//! is recorded, the exported buckets are read back, and the quantiles are interpolated as
//! Prometheus's `histogram_quantile` does; P50, P95 and P99 are within a factor of 2 of the
//! true values (with the SDK's default boundaries, made for milliseconds, every one of them
//! read about 4.75 s).
//!
//! A test binary of its own: the meter provider is global.

use std::time::{Duration, Instant};

use eventsource_runtime::event::NewEvent;
use eventsource_runtime::prelude::*;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::{HistogramBuckets, capture_metrics};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Worked {
    pub micros: u64,
}

#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "Timer", events(Worked))]
pub struct Timer;

impl Apply<Worked> for Timer {
    fn apply(&mut self, _: &Worked) {}
}

/// Work that takes `micros` microseconds of the command's time.
pub struct Work {
    pub id: String,
    pub micros: u64,
}

#[command_handler(aggregate_id = cmd.id)]
fn work(_: &Timer, cmd: Work) -> Result<Vec<TimerEvent>, std::convert::Infallible> {
    // Busy, not asleep: a sleep's granularity is a millisecond.
    let until = Instant::now() + Duration::from_micros(cmd.micros);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
    Ok(vec![Worked { micros: cmd.micros }.into()])
}

/// A projection whose lag is measured.
#[derive(Default)]
struct Watch;

#[eventsource_runtime::projection]
impl Watch {
    fn on_worked(&mut self, _: &Worked) {}
}

/// The `q` quantile of `buckets`, as Prometheus's `histogram_quantile` computes it: the
/// bucket holding the rank, then linear interpolation inside it (from 0 for the first
/// bucket); a rank in the bucket above the last bound is that bound.
fn histogram_quantile(q: f64, buckets: &HistogramBuckets) -> f64 {
    let total: u64 = buckets.counts.iter().sum();
    let rank = q * total as f64;
    let mut below = 0_u64;
    for (i, &count) in buckets.counts.iter().enumerate() {
        if (below + count) as f64 >= rank && count > 0 {
            let Some(&upper) = buckets.bounds.get(i) else {
                return *buckets.bounds.last().expect("bounds");
            };
            let lower = if i == 0 { 0.0 } else { buckets.bounds[i - 1] };
            return lower + (upper - lower) * (rank - below as f64) / count as f64;
        }
        below += count;
    }
    f64::NAN
}

/// The `q` quantile of `values` (nearest rank).
fn true_quantile(q: f64, values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn within_a_factor_of_two(what: &str, buckets: &HistogramBuckets, values: &[f64]) {
    for q in [0.5, 0.95, 0.99] {
        let estimated = histogram_quantile(q, buckets);
        let truth = true_quantile(q, values);
        let ratio = estimated / truth;
        assert!(
            (0.5..=2.0).contains(&ratio),
            "{what} P{}: histogram_quantile reads {estimated} s, the true value is {truth} s \
             (buckets {buckets:?})",
            q * 100.0
        );
    }
}

#[tokio::test]
async fn command_durations_and_projection_lags_answer_quantiles_in_their_own_range() {
    let metrics = capture_metrics();

    // A hundred commands of 0.2 ms of work and five of 50 ms, each timed from outside.
    let service = CommandService::<Timer>::new(InMemoryEventStore::new());
    let mut durations = Vec::new();
    for (i, micros) in std::iter::repeat_n(200, 100)
        .chain(std::iter::repeat_n(50_000, 5))
        .enumerate()
    {
        let started = Instant::now();
        service
            .execute(Work {
                id: format!("timer-{i}"),
                micros,
            })
            .await
            .unwrap();
        durations.push(started.elapsed().as_secs_f64());
    }
    let commands = metrics
        .histogram_buckets(attr::METRIC_COMMAND_DURATION, &[("command.type", "Work")])
        .expect("command durations recorded");
    assert_eq!(commands.counts.iter().sum::<u64>(), 105);
    within_a_factor_of_two("cqrs.command.duration", &commands, &durations);

    // Lags from 7 ms to 20 minutes: events stamped that long ago, then projected.
    let store = InMemoryEventStore::new();
    let stream = Repository::<Timer>::stream("lagging");
    let events: Vec<NewEvent> = (0..100)
        .map(|_| NewEvent::from_event(&TimerEvent::from(Worked { micros: 0 })).unwrap())
        .collect();
    let mut appended = store
        .append(&stream, ExpectedVersion::NoStream, events)
        .await
        .unwrap()
        .events;
    let ago = |seconds: f64| chrono::Duration::microseconds((seconds * 1e6) as i64);
    let lags: Vec<f64> = std::iter::repeat_n(0.007, 90)
        .chain(std::iter::repeat_n(3.0, 8))
        .chain(std::iter::repeat_n(1_200.0, 2))
        .collect();
    let now = chrono::Utc::now();
    for (event, lag) in appended.iter_mut().zip(&lags) {
        event.timestamp = now - ago(*lag);
    }
    let registry = ProjectionRegistry::new();
    registry.register(Watch);
    assert!(registry.deliver(&appended).await.is_empty());
    let lag = metrics
        .histogram_buckets(attr::METRIC_PROJECTION_LAG, &[("projection.name", "Watch")])
        .expect("lags recorded");
    assert_eq!(lag.counts.iter().sum::<u64>(), 100);
    within_a_factor_of_two("cqrs.projection.lag", &lag, &lags);
}
