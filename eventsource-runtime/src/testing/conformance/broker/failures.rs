//! Failures: a failing handler is retried, alone, then dead-lettered, and handled once moved
//! back; dead letters are purged; what cannot be decoded, or is a retry for a handler the
//! group no longer has, is dead-lettered with the reason; a graceful stop finishes the
//! handler in flight and settles its message.

use crate::bus::DeadLetterQueue as _;
use crate::bus::RunnableGroup as _;
use crate::bus::Subscribe as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::trace::{SpanId, Status};
use tracing::Instrument as _;

use super::trace::PARENT;
use super::{
    BrokerFixture, Mailer, RawMessage, RawRetry, Running, counting, dead_letters_reach, event_type,
    order_message, stored_event, until,
};
use crate::bus::{EventBus as _, HandlerError, handler_fn, wire};
use crate::telemetry::attributes as attr;
use crate::testing::{MetricCapture, Value, attribute, capture};

/// A handler failing on every delivery the group allows is retried alone (the group's
/// other handler ran once), its message dead-lettered with the handler, the attempts and
/// the last error (and counted); moved back, it is handled once more and nothing is left.
/// Each retry is a new trace linked to the publish span.
pub async fn retried_then_dead_lettered_then_moved_back<F: BrokerFixture>(
    fixture: &F,
    metrics: &MetricCapture,
) {
    let capture = capture();
    let bus = fixture.bus();
    // Three deliveries in all; the first three calls fail.
    let delays = [Duration::from_millis(30), Duration::from_millis(60)];
    let group = fixture.group(&bus, "mailer", &delays);
    let mails = counting(&group, "send-confirmation", 3);
    let steady = counting(&group, "audit", 0);
    let running = Running::start(&group).await;

    let event_type = event_type();
    let event = stored_event("o-1", &event_type);
    bus.publish(std::slice::from_ref(&event))
        .instrument(tracing::info_span!(PARENT))
        .await
        .expect("published");
    until(fixture, "three deliveries", || {
        mails.load(Ordering::SeqCst) == 3
    })
    .await;
    dead_letters_reach(fixture, &group, 1).await;
    assert_eq!(
        steady.load(Ordering::SeqCst),
        1,
        "only the failed handler again"
    );

    let listed = group.dead_letters().list(10).await.expect("listed");
    assert_eq!(listed.len(), 1);
    let letter = listed[0].as_failed().expect("a failed letter");
    assert_eq!(letter.message.message_id, event.event_id);
    assert_eq!(letter.handler, "send-confirmation");
    assert_eq!(letter.attempts, 3);
    assert!(letter.error.contains("call 2"), "{}", letter.error);
    let dead_lettered = [
        (attr::MESSAGING_SYSTEM, fixture.system()),
        (attr::METRIC_ATTR_EVENT_TYPE, event_type.as_str()),
    ];
    until(fixture, "the dead letter counted", || {
        metrics.total(attr::METRIC_BUS_MESSAGES_DEAD_LETTERED, &dead_lettered) == 1
    })
    .await;
    assert_eq!(
        group.dead_letters().count().await.expect("counted"),
        1,
        "listing leaves them there"
    );

    // Moved back: the handler (now working) gets it, alone, and nothing is left.
    assert_eq!(group.dead_letters().requeue().await.expect("moved"), 1);
    until(fixture, "the fourth call", || {
        mails.load(Ordering::SeqCst) == 4
    })
    .await;
    running.stop().await;
    assert_eq!(group.dead_letters().count().await.expect("counted"), 0);
    assert_eq!(steady.load(Ordering::SeqCst), 1);

    // The retries are new roots linked to the publish span.
    let spans = capture.spans();
    let publish = spans.get(attr::SPAN_BUS_PUBLISH);
    let consumes = spans.all(attr::SPAN_BUS_CONSUME);
    assert_eq!(consumes.len(), 4, "{}", spans.tree());
    let live = consumes
        .iter()
        .filter(|c| c.parent_span_id == publish.span_context.span_id())
        .count();
    assert_eq!(live, 1, "one live delivery");
    let retries: Vec<_> = consumes
        .iter()
        .filter(|c| c.parent_span_id == SpanId::INVALID)
        .collect();
    assert_eq!(retries.len(), 3);
    for retry in retries {
        assert!(
            retry
                .links
                .iter()
                .any(|l| l.span_context.span_id() == publish.span_context.span_id()),
            "linked to the publish span"
        );
        assert_eq!(
            attribute(retry, attr::DELIVERY_MODE),
            Some(&Value::String(attr::DELIVERY_REDELIVERY.into()))
        );
    }
}

/// Purging deletes every dead letter, and says how many.
pub async fn purge_empties_the_dead_letters<F: BrokerFixture>(fixture: &F) {
    let bus = fixture.bus();
    let group = fixture.group(&bus, "mailer", &[]);
    let _calls = counting(&group, "always-fails", usize::MAX);
    let running = Running::start(&group).await;
    let event_type = event_type();
    let events = [
        stored_event("o-1", &event_type),
        stored_event("o-2", &event_type),
    ];
    bus.publish(&events).await.expect("published");
    dead_letters_reach(fixture, &group, 2).await;
    running.stop().await;
    assert_eq!(group.dead_letters().purge().await.expect("purged"), 2);
    assert_eq!(group.dead_letters().count().await.expect("counted"), 0);
    assert!(
        group
            .dead_letters()
            .list(10)
            .await
            .expect("listed")
            .is_empty()
    );
}

/// A message whose body is not an event goes to the dead letters with the reason and its
/// body as it was; no handler runs.
pub async fn undecodable_message_is_dead_lettered_with_the_reason<F: BrokerFixture>(fixture: &F) {
    let (bus, mailer) = Mailer::start(fixture).await;
    let group = &mailer.group;
    let event_type = event_type();
    fixture
        .send_raw(&bus, group, order_message(&event_type, b"{ not an event"))
        .await;
    dead_letters_reach(fixture, group, 1).await;
    mailer.running.stop().await;
    assert_eq!(mailer.calls.load(Ordering::SeqCst), 0);
    let listed = group.dead_letters().list(10).await.expect("listed");
    assert_eq!(listed.len(), 1, "listed, with its reason");
    let letter = listed[0].as_undecodable().expect("an undecodable letter");
    assert_eq!(letter.body, b"{ not an event");
    assert!(
        letter.reason.contains("undecodable message body"),
        "{}",
        letter.reason
    );
    assert_eq!(
        group.dead_letters().count().await.expect("counted"),
        1,
        "listing leaves it there"
    );
}

/// A retry for a handler the group no longer has (renamed by a deploy) is dead-lettered
/// naming it, not acknowledged; no other handler runs, and the consume span says why.
pub async fn retry_for_an_unknown_handler_is_dead_lettered<F: BrokerFixture>(fixture: &F) {
    let capture = capture();
    let (bus, mailer) = Mailer::start(fixture).await;
    let group = &mailer.group;
    // A retry written before a deploy renamed the handler `send-mail`.
    let event_type = event_type();
    let event = stored_event("o-1", &event_type);
    let body = wire::encode(&event).expect("encoded");
    fixture
        .send_raw(
            &bus,
            group,
            RawMessage {
                retry: Some(RawRetry {
                    attempt: 2,
                    handlers: &["send-mail"],
                }),
                ..order_message(&event_type, &body)
            },
        )
        .await;
    dead_letters_reach(fixture, group, 1).await;
    mailer.running.stop().await;
    assert_eq!(
        group.dead_letters().count().await.expect("counted"),
        1,
        "dead-lettered, not acknowledged"
    );
    assert_eq!(
        mailer.calls.load(Ordering::SeqCst),
        0,
        "no other handler ran"
    );
    let listed = group.dead_letters().list(10).await.expect("listed");
    let letter = listed[0].as_failed().expect("a failed letter");
    assert_eq!(letter.message.message_id, event.event_id);
    assert_eq!(letter.handler, "send-mail");
    assert!(
        letter.error.contains("no handler named `send-mail`"),
        "{}",
        letter.error
    );
    let spans = capture.spans();
    let consume = spans.get(attr::SPAN_BUS_CONSUME);
    assert!(
        matches!(&consume.status, Status::Error { description } if description.contains("send-mail")),
        "{:?}",
        consume.status
    );
}

/// Stopping a group lets the handler in flight finish and settles its message: the group
/// started again gets only what was published after.
pub async fn graceful_stop_finishes_the_handler_in_flight<F: BrokerFixture>(fixture: &F) {
    let bus = fixture.bus();
    let group = fixture.group(&bus, "mailer", &[Duration::from_millis(50)]);
    let started = Arc::new(tokio::sync::Notify::new());
    let finished = Arc::new(AtomicUsize::new(0));
    {
        let (started, finished) = (Arc::clone(&started), Arc::clone(&finished));
        group
            .dispatcher()
            .subscribe(handler_fn("slow", move |_event| {
                let (started, finished) = (Arc::clone(&started), Arc::clone(&finished));
                async move {
                    started.notify_one();
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    finished.fetch_add(1, Ordering::SeqCst);
                    Ok::<(), HandlerError>(())
                }
            }));
    }
    let running = Running::start(&group).await;
    let event_type = event_type();
    bus.publish(&[stored_event("o-1", &event_type)])
        .await
        .expect("published");
    tokio::time::timeout(fixture.patience(), started.notified())
        .await
        .expect("the handler started");
    running.stop().await;
    assert_eq!(
        finished.load(Ordering::SeqCst),
        1,
        "finished before stopping"
    );

    // Settled: the group started again gets only the next message.
    let again = fixture.group(&bus, "mailer", &[Duration::from_millis(50)]);
    let calls = counting(&again, "count", 0);
    let running = Running::start(&again).await;
    bus.publish(&[stored_event("o-2", &event_type)])
        .await
        .expect("published");
    until(fixture, "the next message", || {
        calls.load(Ordering::SeqCst) >= 1
    })
    .await;
    running.stop().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "only the new message");
}
