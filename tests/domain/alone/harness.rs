//! The `testing` harness itself (issue 11): what a capture sees from other threads and
//! other tests, one metric capture at a time, and what each assertion says when it fails.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use eventsource_runtime::testing::{
    CapturedSpans, SpanKind, Value, capture, capture_metrics, event_attribute, given,
};

/// The panic message of `f`.
#[track_caller]
fn failure(f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("the assertion should fail");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

fn checkout_trace() -> CapturedSpans {
    let spans_capture = capture();
    tracing::info_span!("checkout", cart.id = "cart-1", lines = 2).in_scope(|| {
        tracing::info_span!("load").in_scope(|| {});
        tracing::info_span!("save", version = 3).in_scope(|| {
            tracing::info!(rows = 1, "written");
        });
    });
    spans_capture.spans()
}

// ---- what a capture sees --------------------------------------------------------------------

#[test]
fn parallel_captures_see_only_their_own_spans() {
    let start = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                let spans_capture = capture();
                start.wait();
                for _ in 0..50 {
                    tracing::info_span!("work", worker = i).in_scope(|| {});
                }
                let spans = spans_capture.spans();
                assert_eq!(spans.len(), 50);
                assert_eq!(spans.with_attribute("worker", i).len(), 50);
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[eventsource_runtime::traced]
async fn background(
    started: tokio::sync::oneshot::Sender<()>,
    release: tokio::sync::oneshot::Receiver<()>,
) {
    let _ = started.send(());
    let _ = release.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_ended_on_a_worker_is_captured_and_open_ones_are_named() {
    let spans_capture = capture();
    let (started, is_started) = tokio::sync::oneshot::channel();
    let (release, wait) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(background(started, wait));
    is_started.await.unwrap();
    let early = spans_capture.spans();
    assert!(early.is_empty());
    assert_eq!(early.open().len(), 1);
    assert_eq!(early.open()[0].name, "background");
    assert!(early.open()[0].other_thread);
    let message = failure(|| {
        let _ = early.get("background");
    });
    assert!(
        message.contains(
            "still running when the spans were read (use `wait_spans`): [\"background\"]"
        ),
        "{message}"
    );
    release.send(()).unwrap();
    task.await.unwrap();
    let spans = spans_capture.wait_spans(Duration::from_secs(10));
    assert_eq!(spans.names(), ["background"]);
    assert!(spans.open().is_empty());
}

#[test]
fn wait_spans_names_what_never_ended() {
    let spans_capture = capture();
    let stuck = tracing::info_span!("stuck");
    let entered = stuck.enter();
    let message = failure(|| {
        let _ = spans_capture.wait_spans(Duration::from_millis(50));
    });
    assert!(
        message.contains("spans of this test still running after 50ms: [\"stuck\"]"),
        "{message}"
    );
    drop(entered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_spawned_on_worker_threads_belong_to_the_test() {
    let spans_capture = capture();
    let tasks: Vec<_> = (0..14)
        .map(|i| {
            tokio::spawn(async move {
                tracing::info_span!("job", n = i).in_scope(|| {});
                std::thread::current().id()
            })
        })
        .collect();
    let mut threads = Vec::new();
    for task in tasks {
        threads.push(task.await.unwrap());
    }
    let spans = spans_capture.spans();
    assert_eq!(spans.all("job").len(), 14, "{}", spans.tree());
    assert!(threads.iter().all(|t| *t != std::thread::current().id()));
}

// ---- metrics ----------------------------------------------------------------------------------

#[test]
fn metric_captures_take_turns() {
    let start = Arc::new(Barrier::new(2));
    let threads: Vec<_> = [3_u64, 5]
        .into_iter()
        .map(|n| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                let metrics = capture_metrics();
                let counter = opentelemetry::global::meter("harness")
                    .u64_counter("harness.turns")
                    .build();
                for _ in 0..n {
                    counter.add(1, &[]);
                    std::thread::sleep(Duration::from_millis(2));
                }
                metrics.total("harness.turns", &[])
            })
        })
        .collect();
    let totals: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(totals, [3, 5]);
}

#[test]
fn a_second_metric_capture_on_the_same_thread_says_why() {
    let message = failure(|| {
        let _first = capture_metrics();
        let _second = capture_metrics();
    });
    assert!(
        message.contains(
            "is still alive (on this thread, it would never be dropped while this one waits)"
        ) && message.contains("tests/domain/alone/harness.rs:"),
        "{message}"
    );
}

// ---- lookups and assertions ------------------------------------------------------------------

#[test]
fn get_of_a_repeated_name_says_how_many() {
    let spans_capture = capture();
    for _ in 0..3 {
        tracing::info_span!("retry").in_scope(|| {});
    }
    let spans = spans_capture.spans();
    let message = failure(|| {
        let _ = spans.get("retry");
    });
    assert!(
        message.starts_with("3 spans named `retry`, `get` wants exactly one: use `all`, `first`"),
        "{message}"
    );
    assert!(spans.first("retry").is_some());
    assert_eq!(spans.matching(|s| s.name.starts_with("re")).len(), 3);
}

#[test]
fn assert_attribute_names_the_span_and_lists_its_attributes() {
    let spans = checkout_trace();
    let checkout = spans.get("checkout");
    spans.assert_attribute(checkout, "cart.id", "cart-1");
    spans.assert_attribute(checkout, "lines", 2);
    let wrong_type = failure(|| spans.assert_attribute(checkout, "lines", "2"));
    assert_eq!(
        wrong_type,
        "span `checkout`: expected lines=\"2\" (string), found 2 (integer)\n  \
         its attributes: cart.id=cart-1 lines=2"
    );
    let missing = failure(|| spans.assert_attribute(checkout, "aggregate.id", "cart-1"));
    assert!(missing.contains("found no such attribute"), "{missing}");
}

#[test]
fn descendants_absence_and_events() {
    let spans = checkout_trace();
    spans.assert_descendant_of("load", "checkout");
    spans.assert_no_span("payment");
    let message = failure(|| spans.assert_descendant_of("checkout", "load"));
    assert!(
        message.starts_with("`checkout` is not below `load`; captured:"),
        "{message}"
    );
    let message = failure(|| spans.assert_no_span("save"));
    assert!(
        message.starts_with("expected no span named `save`, found 1"),
        "{message}"
    );
    assert_eq!(
        event_attribute(spans.get("save"), "written", "rows"),
        Some(&Value::I64(1))
    );
}

#[test]
fn assert_error_reads_status_and_exception() {
    #[eventsource_runtime::traced(err)]
    fn pay() -> Result<(), std::io::Error> {
        Err(std::io::Error::other("card declined"))
    }
    let spans_capture = capture();
    let _ = pay();
    tracing::info_span!("fine").in_scope(|| {});
    let spans = spans_capture.spans();
    spans.assert_error(spans.get("pay"), "std::io::error::Error", "card declined");
    spans.assert_ok(spans.get("fine"));
    let message = failure(|| spans.assert_error(spans.get("pay"), "std::io::error::Error", "x"));
    assert!(
        message.contains("expected exception \"std::io::error::Error\": \"x\", found \"std::io::error::Error\": \"card declined\""),
        "{message}"
    );
    let message = failure(|| spans.assert_error(spans.get("fine"), "E", "m"));
    assert!(
        message.starts_with("span `fine`: expected status ERROR, found Unset"),
        "{message}"
    );
}

#[test]
fn links_are_named_by_span() {
    let spans_capture = capture();
    let stored = tracing::info_span!("append");
    stored.in_scope(|| {});
    let other = tracing::info_span!("unrelated");
    other.in_scope(|| {});
    let linked = tracing::info_span!(parent: None, "projection");
    linked.follows_from(&stored);
    drop((stored, other, linked));
    let spans = spans_capture.spans();
    spans.assert_linked_root("projection", "append");
    assert!(spans.tree().contains("projection [internal] -> append"));
    let message = failure(|| spans.assert_linked_root("projection", "unrelated"));
    assert!(
        message.starts_with("`projection` has no link to `unrelated`; it links to [\"append\"]"),
        "{message}"
    );
}

#[test]
fn assert_shape_passes_on_the_written_tree() {
    let spans = checkout_trace();
    spans.assert_shape(
        "
        # kinds and chosen attributes only where they matter
        checkout [internal] cart.id=cart-1 lines=2
          save version=3
          load
        ",
    );
    assert_eq!(spans.get("load").span_kind, SpanKind::Internal);
}

#[test]
fn assert_shape_shows_a_readable_diff() {
    let spans = checkout_trace();
    let message = failure(|| {
        spans.assert_shape(
            "
            checkout [client] cart.id=cart-2
              load
              audit
            ",
        );
    });
    let diff = message
        .split("\n\ncaptured:")
        .next()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        diff,
        "the captured spans do not have the expected shape (- expected, + captured):\n\
         - checkout [client] cart.id=cart-2\n\
         + checkout [internal] cart.id=cart-1\n\
         \x20   load\n\
         -   audit\n\
         +   save [internal]",
        "{message}"
    );
    let message = failure(|| spans.assert_shape("checkout [sideways]"));
    assert_eq!(
        message,
        "assert_shape: cannot read the expected shape, line 1: unknown kind `[sideways]`: \
         one of [\"internal\", \"client\", \"server\", \"producer\", \"consumer\"]"
    );
}

#[test]
fn tree_with_attributes_shows_full_keys() {
    let spans = checkout_trace();
    assert_eq!(
        spans.tree_with_attributes(),
        "checkout [internal] cart.id=cart-1 lines=2\n  load [internal]\n  save [internal] version=3\n"
    );
}

// ---- given/when/then --------------------------------------------------------------------------

#[test]
fn then_error_needs_no_partial_eq() {
    use eventsource_runtime::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Locked;
    #[derive(Debug, Default, Aggregate)]
    #[aggregate(type = "Till", events(Locked))]
    pub struct Till {
        locked: bool,
    }
    impl Apply<Locked> for Till {
        fn apply(&mut self, _: &Locked) {
            self.locked = true;
        }
    }
    #[derive(Debug, thiserror::Error)]
    enum TillError {
        #[error("the till is locked")]
        Locked,
        #[error("drawer stuck")]
        Io(#[source] std::io::Error),
    }
    let refuse = |till: &Till| -> Result<Vec<TillEvent>, TillError> {
        if till.locked {
            Err(TillError::Locked)
        } else {
            Err(TillError::Io(std::io::Error::other("stuck")))
        }
    };
    let state = given::<Till>([Locked.into()])
        .when_fn(refuse)
        .then_error(TillError::Locked);
    assert!(state.locked);
    given::<Till>([])
        .when_fn(refuse)
        .then_error_message("drawer stuck");
    let message = failure(|| {
        given::<Till>([])
            .when_fn(refuse)
            .then_error(TillError::Locked);
    });
    assert!(
        message.starts_with("expected the error Locked, but the command failed with Io(Custom"),
        "{message}"
    );
}
