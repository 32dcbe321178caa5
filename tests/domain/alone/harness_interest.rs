//! `tracing`'s per-callsite interest cache cannot hide spans from a capture (issue 11).
//!
//! The race, made deterministic: a capture is alive (so the binary has registered one
//! subscriber), then a thread with no capture of its own reaches a `#[traced]` function and
//! a `tracing` span first. While a single scoped subscriber had ever been registered,
//! `tracing` asked that thread's own default (none) and cached "never" for both callsites
//! for the whole process, and the capture then missed them. Alone in its binary on purpose:
//! a second live capture would make `tracing` ask every registered subscriber and hide the
//! race.

use eventsource_runtime::testing::capture;

#[eventsource_runtime::traced(name = "cart.repository.load")]
fn load_cart() -> u32 {
    tracing::info_span!("cart.store.read").in_scope(|| 1)
}

#[test]
fn a_thread_without_a_capture_reaching_callsites_first_hides_nothing() {
    let spans_capture = capture();
    std::thread::spawn(load_cart).join().unwrap();
    assert_eq!(load_cart(), 1);
    let spans = spans_capture.spans();
    // This test's spans, and not the other thread's.
    spans.assert_shape(
        "
        cart.repository.load
          cart.store.read
        ",
    );
}
