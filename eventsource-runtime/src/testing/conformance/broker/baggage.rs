//! W3C baggage across the broker: what a flow's first span carries reaches the handler of
//! every hop as it was, byte for byte, however many services it crosses.

use crate::bus::Subscribe as _;
use std::sync::{Arc, Mutex};

use opentelemetry::Context;
use opentelemetry::baggage::BaggageExt as _;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::{BrokerFixture, Running, event_type, stored_event, until};
use crate::bus::{EventBus as _, HandlerError, handler_fn};
use crate::telemetry::current_context;
use crate::testing::capture;
use crate::testing::conformance::baggage::{Entries, baggage, entries, flow_context};

/// Baggage set on the span a flow starts under reaches the handler of each of three hops
/// unchanged ([`VALUES`](crate::testing::conformance::baggage::VALUES)): the handler of the first message publishes the second under its own span,
/// and so on (three services passing an order along, say). Each handler reads the baggage
/// from its current context, as an application does.
pub async fn baggage_survives_three_hops<F: BrokerFixture>(fixture: &F) {
    let _capture = capture();
    let bus = fixture.bus();
    let group = fixture.group(&bus, "hops", &[std::time::Duration::from_millis(50)]);
    let hops: Arc<[String; 3]> = Arc::new([event_type(), event_type(), event_type()]);
    let seen: Arc<Mutex<Vec<(usize, Entries)>>> = Arc::default();
    {
        let (hops, seen, bus) = (Arc::clone(&hops), Arc::clone(&seen), bus.clone());
        group
            .dispatcher()
            .subscribe(handler_fn("pass-it-on", move |event| {
                let hop = hops.iter().position(|t| *t == *event.event_type);
                // Read where the handler starts: its span is the current one.
                let read = entries(&current_context());
                let (hops, seen, bus) = (Arc::clone(&hops), Arc::clone(&seen), bus.clone());
                async move {
                    let Some(hop) = hop else {
                        return Ok::<_, HandlerError>(());
                    };
                    seen.lock().expect("the hops seen").push((hop, read));
                    if let Some(next) = hops.get(hop + 1) {
                        let next = stored_event(&format!("o-{}", hop + 2), next);
                        bus.publish(std::slice::from_ref(&next))
                            .await
                            .map_err(|error| HandlerError::new(error.to_string()))?;
                    }
                    Ok(())
                }
            }));
    }
    let running = Running::start(&group).await;

    let start = tracing::info_span!("conformance.baggage");
    let _ = start.set_parent(flow_context());
    let first = stored_event("o-1", &hops[0]);
    bus.publish(std::slice::from_ref(&first))
        .instrument(start)
        .await
        .expect("published");
    until(fixture, "the third hop was handled", || {
        seen.lock().expect("the hops seen").len() == 3
    })
    .await;
    running.stop().await;

    let expected = entries(&Context::new().with_baggage(baggage()));
    let mut seen = std::mem::take(&mut *seen.lock().expect("the hops seen"));
    seen.sort_by_key(|(hop, _)| *hop);
    for (hop, read) in &seen {
        assert_eq!(read, &expected, "the baggage handler {} read", hop + 1);
    }
    assert_eq!(
        seen.iter().map(|(hop, _)| *hop).collect::<Vec<_>>(),
        [0, 1, 2],
        "each hop once"
    );
}
