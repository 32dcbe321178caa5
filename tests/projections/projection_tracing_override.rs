//! The process-wide projection switch overrides each projection's own `enable_tracing`.
//! In a test binary of its own: the switch is global.

use eventsource_test_support::domain;

use domain::{Order, OrderPlaced, sample_order};
use eventsource_runtime::prelude::*;
use eventsource_runtime::telemetry::toggles;
use eventsource_runtime::testing::capture;

/// Not traced by its own switch.
#[derive(Debug, Default)]
struct Quiet {
    seen: usize,
}

#[projection]
impl Quiet {
    fn placed(&mut self, _: &OrderPlaced) {
        self.seen += 1;
    }
}

/// Traced by its own switch.
#[derive(Debug, Default)]
struct Loud;

#[projection(enable_tracing = true)]
impl Loud {
    fn placed(&mut self, _: &OrderPlaced) {}
}

#[tokio::test]
async fn the_process_switch_overrides_the_projection_switch() {
    let capture = capture();
    let orders = CommandService::<Order>::new(InMemoryEventStore::new());
    let quiet = orders.register(Quiet::default());
    orders.register(Loud);

    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    let spans = capture.spans();
    assert!(spans.all("projection.Quiet").is_empty(), "{}", spans.tree());
    assert_eq!(spans.all("projection.Loud").len(), 1);

    capture.clear();
    toggles::set_projection_tracing(Some(true));
    orders.execute(sample_order("o-2", "ada")).await.unwrap();
    let spans = capture.spans();
    assert_eq!(spans.all("projection.Quiet").len(), 1, "{}", spans.tree());
    assert_eq!(spans.all("projection.Loud").len(), 1);
    spans.assert_linked_root("projection.Quiet", "eventsource.event_store.append");

    capture.clear();
    toggles::set_projection_tracing(Some(false));
    orders.execute(sample_order("o-3", "ada")).await.unwrap();
    let spans = capture.spans();
    assert!(spans.all("projection.Quiet").is_empty(), "{}", spans.tree());
    assert!(spans.all("projection.Loud").is_empty(), "{}", spans.tree());

    toggles::set_projection_tracing(None);
    assert_eq!(quiet.lock().await.seen, 3, "delivered whatever the switch");
}
