//! Where `telemetry::set_attribute` goes when a service's span may be off: to its own span or
//! nowhere, never to the caller.

use super::*;

/// A service whose span may be off, calling a traced function and opening a span of its
/// own: `telemetry::set_attribute` goes to the span it is called in, never to the caller
/// of a switched-off body.
pub struct Reminders {
    enable_tracing: bool,
}

impl Reminders {
    #[traced(name = "reminders.send", enabled = self.enable_tracing)]
    pub async fn send(&self) -> u32 {
        telemetry::set_attribute("reminders.before", "set");
        let sent = remind_one().await;
        async { telemetry::set_attribute("user.attr", 1_i64) }
            .instrument(tracing::info_span!("user.step"))
            .await;
        tokio::task::yield_now().await;
        telemetry::set_attribute("reminders.after", "set");
        sent
    }

    #[traced(name = "reminders.count", enabled = self.enable_tracing)]
    pub fn count(&self) -> u32 {
        telemetry::set_attribute("reminders.counted", "set");
        tracing::info_span!("user.sync").in_scope(|| telemetry::set_attribute("user.sync", 2_i64));
        2
    }
}

#[traced(name = "reminders.one")]
async fn remind_one() -> u32 {
    tokio::task::yield_now().await;
    telemetry::set_attribute("one.attr", 1_i64);
    1
}

#[tokio::test]
async fn set_attribute_goes_to_its_own_span_or_nowhere() {
    let capture = capture();
    // Off: the body's own attributes are dropped; the inner spans keep theirs.
    let quiet = Reminders {
        enable_tracing: false,
    };
    let total = async { quiet.send().await + quiet.count() }
        .instrument(tracing::info_span!("caller"))
        .await;
    assert_eq!(total, 3);
    let spans = capture.spans();
    assert_eq!(
        child_names(&spans, "caller"),
        ["reminders.one", "user.step", "user.sync"],
        "{}",
        spans.tree()
    );
    assert_eq!(keys(&spans, "caller"), Vec::<String>::new());
    assert_eq!(keys(&spans, "reminders.one"), ["one.attr"]);
    assert_eq!(keys(&spans, "user.step"), ["user.attr"]);
    assert_eq!(keys(&spans, "user.sync"), ["user.sync"]);

    // On: each attribute on its own span.
    capture.clear();
    let traced = Reminders {
        enable_tracing: true,
    };
    let total = async { traced.send().await + traced.count() }
        .instrument(tracing::info_span!("caller"))
        .await;
    assert_eq!(total, 3);
    let spans = capture.spans();
    assert_eq!(
        child_names(&spans, "caller"),
        ["reminders.send", "reminders.count"]
    );
    assert_eq!(
        child_names(&spans, "reminders.send"),
        ["reminders.one", "user.step"]
    );
    assert_eq!(
        keys(&spans, "reminders.send"),
        ["reminders.after", "reminders.before"]
    );
    assert_eq!(keys(&spans, "reminders.count"), ["reminders.counted"]);
    assert_eq!(keys(&spans, "reminders.one"), ["one.attr"]);
    assert_eq!(keys(&spans, "user.sync"), ["user.sync"]);
    assert_eq!(keys(&spans, "caller"), Vec::<String>::new());
}
