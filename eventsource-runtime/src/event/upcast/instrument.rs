//! Upcasting's telemetry: the `eventsource.events.upcast` counter, and what a load, a
//! runner's batch or read, or a consumed message says on its span of the events it upcast.

use std::future::Future;

use super::Upcasters;
use crate::event::EventEnvelope;
use crate::telemetry::attributes as attr;
use crate::telemetry::otel::{Span, metrics};
use crate::telemetry::values::Attr;

static EVENTS_UPCAST: metrics::Counter = metrics::Counter::new(
    attr::METRIC_EVENTS_UPCAST,
    "{event}",
    "Stored events brought up to their type's current schema version",
);

/// The upcasts of a load, a batch or one decode, by stored event type and from/to version:
/// added to `eventsource.events.upcast` when dropped, once per kind (a replay of a million
/// upcast events records a few measurements, not a million).
#[derive(Debug, Default)]
pub(crate) struct UpcastCounts {
    kinds: Vec<(Box<str>, u32, u32, u64)>,
}

impl UpcastCounts {
    /// One stored event of `event_type` upcast from version `from` to `to`.
    pub(super) fn add(&mut self, event_type: &str, from: u32, to: u32) {
        let kind = self
            .kinds
            .iter_mut()
            .find(|(t, f, v, _)| *f == from && *v == to && &**t == event_type);
        match kind {
            Some((.., count)) => *count += 1,
            None => self.kinds.push((event_type.into(), from, to, 1)),
        }
    }
}

impl Drop for UpcastCounts {
    fn drop(&mut self) {
        for (event_type, from, to, count) in &self.kinds {
            EVENTS_UPCAST.add(
                *count,
                [
                    (attr::METRIC_ATTR_EVENT_TYPE, Attr::Str(event_type)),
                    (attr::METRIC_ATTR_UPCAST_FROM, Attr::int(*from)),
                    (attr::METRIC_ATTR_UPCAST_TO, Attr::int(*to)),
                ],
            );
        }
    }
}

/// The events a span's work upcast: how many, and from which stored versions.
#[derive(Debug, Default)]
pub(crate) struct UpcastTally {
    count: u64,
    /// Distinct, ascending.
    from_versions: Vec<i64>,
}

impl UpcastTally {
    /// Counts one event, when it was upcast from `from`.
    #[inline]
    pub(crate) fn add(&mut self, from: Option<u32>) {
        if let Some(from) = from {
            self.count += 1;
            let from = i64::from(from);
            if let Err(at) = self.from_versions.binary_search(&from) {
                self.from_versions.insert(at, from);
            }
        }
    }

    /// Says so on `span`, when anything was upcast.
    pub(crate) fn record(&self, span: &Span) {
        if self.count > 0 {
            span.set(attr::UPCAST_COUNT, Attr::int(self.count));
            span.set(attr::UPCAST_FROM_VERSIONS, Attr::Ints(&self.from_versions));
        }
    }
}

tokio::task_local! {
    /// The upcasters of the reader whose reads run in this task (a projection runner's).
    static READER: Upcasters;
}

/// Runs `reads` as a reader whose events `upcasters` upcast once read: the store's read
/// spans within say how many of the events they read will be (as a load's span does of
/// the events it replayed), so that a projection whose own spans are off still tells.
pub(crate) async fn reading_for<F: Future>(upcasters: Upcasters, reads: F) -> F::Output {
    if upcasters.is_empty() {
        return reads.await;
    }
    READER.scope(upcasters, reads).await
}

/// Says on `span`, a read's, how many of `events` its reader upcasts, and from which
/// versions (nothing outside [`reading_for`], or when nothing is upcast).
pub(crate) fn record_read_upcasts(span: &Span, events: &[EventEnvelope]) {
    if !span.is_recording() {
        return;
    }
    let _ = READER.try_with(|upcasters| {
        let mut upcasts = UpcastTally::default();
        for event in events {
            let version = event.schema_version;
            upcasts.add(
                upcasters
                    .upcasts(&event.event_type, version)
                    .then_some(version),
            );
        }
        upcasts.record(span);
    });
}
