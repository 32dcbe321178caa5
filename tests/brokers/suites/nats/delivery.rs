//! Delivery: a retry taken over by a group started again, batch mode, a message not
//! acknowledged in time, recovery bounded by the ack wait.

use super::*;

// ---- failures: retries, dead letters -------------------------------------------------------

#[tokio::test]
async fn a_failed_handler_is_retried_alone_by_a_group_started_again() {
    let Some(server) = Server::open("retry_restart") else {
        return;
    };
    let bus = server.bus();
    // A long delay: the group stops while the retry waits, another one takes it.
    let group = server.group(&bus, "mailer", &[1500]);
    let mails = counting(&group, "send-confirmation", 1);
    let steady = counting(&group, "audit", 0);
    let running = Running::start(&group).await;
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus.clone());
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    until("the first delivery", || mails.load(Ordering::SeqCst) == 1).await;
    running.stop().await;

    let again = server.group(&bus, "mailer", &[1500]);
    let mails_again = counting(&again, "send-confirmation", 0);
    let steady_again = counting(&again, "audit", 0);
    let running = Running::start(&again).await;
    until("the retry", || mails_again.load(Ordering::SeqCst) == 1).await;
    running.stop().await;
    assert_eq!(steady.load(Ordering::SeqCst), 1);
    assert_eq!(
        steady_again.load(Ordering::SeqCst),
        0,
        "only the failed handler"
    );
    server.clean().await;
}

#[tokio::test]
async fn batch_mode_hands_messages_pulled_together_to_one_consume_span() {
    let Some(server) = Server::open("batch") else {
        return;
    };
    let capture = capture();
    let bus = server.bus();
    let group = server.group(&bus, "mailer", &[50]).batch(10);
    // The first call fails: its message alone is retried.
    let calls = counting(&group, "send-confirmation", 1);
    group.declare().await.unwrap();
    let orders = CommandService::<Order>::new(InMemoryEventStore::new());
    let mut events = Vec::new();
    for id in ["o-1", "o-2", "o-3"] {
        events.extend(
            orders
                .execute(sample_order(id, "ada"))
                .await
                .unwrap()
                .events,
        );
    }
    bus.publish(&events).await.unwrap();
    let running = Running::start(&group).await;
    until("three messages and a retry", || {
        calls.load(Ordering::SeqCst) == 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    running.stop().await;
    assert_eq!(calls.load(Ordering::SeqCst), 4);

    let spans = capture.spans();
    let consumes = named(&spans, CONSUME);
    let batches: Vec<_> = consumes
        .iter()
        .filter(|c| attribute(c, attr::DELIVERY_MODE) == Some(&string(attr::DELIVERY_BATCH)))
        .collect();
    let counted: i64 = batches
        .iter()
        .map(
            |c| match attribute(c, attr::MESSAGING_BATCH_MESSAGE_COUNT) {
                Some(Value::I64(n)) => *n,
                other => panic!("a batch count, got {other:?}"),
            },
        )
        .sum();
    assert_eq!(counted, 3, "{}", spans.tree());
    assert!(
        batches.iter().any(|c| c.links.len() > 1),
        "{}",
        spans.tree()
    );
    for batch in &batches {
        assert_eq!(batch.parent_span_id, SpanId::INVALID, "a new root");
    }
    let retries = consumes
        .iter()
        .filter(|c| attribute(c, attr::DELIVERY_MODE) == Some(&string(attr::DELIVERY_REDELIVERY)))
        .count();
    assert_eq!(retries, 1, "{}", spans.tree());
    server.clean().await;
}

// ---- redelivery: not acknowledged in time ----------------------------------------------------

#[tokio::test]
async fn a_message_not_acknowledged_comes_back_as_a_linked_root_and_is_handled_once() {
    let Some(server) = Server::open("redelivered") else {
        return;
    };
    let capture = capture();
    let bus = server.bus();
    let group = server
        .group(&bus, "mailer", &[50])
        .ack_wait(Duration::from_millis(500));
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let sending = handler_fn("send-confirmation", move |_event| {
        seen.fetch_add(1, Ordering::SeqCst);
        async { Ok::<(), HandlerError>(()) }
    });
    group.subscribe(Idempotent::new(sending, InMemoryProcessedMessages::new()));
    group.declare().await.unwrap();

    // Published twice (a relay restarted before its checkpoint): JetStream keeps one.
    let orders = CommandService::<Order>::new(InMemoryEventStore::new());
    let events = orders
        .execute(sample_order("o-1", "ada"))
        .await
        .unwrap()
        .events;
    bus.publish(&events).await.unwrap();
    bus.publish(&events).await.unwrap();

    // A consumer of the group takes it and dies without acknowledging it.
    let js = server.jetstream().await;
    let stream = js.get_stream(&server.stream).await.unwrap();
    let consumer: jetstream::consumer::PullConsumer =
        stream.get_consumer(group.consumer_name()).await.unwrap();
    let mut batch = consumer.fetch().max_messages(10).messages().await.unwrap();
    let mut taken = 0;
    while let Some(message) = batch.next().await {
        message.unwrap();
        taken += 1;
    }
    assert_eq!(taken, 1, "the duplicate was dropped");
    drop(batch);

    let running = Running::start(&group).await;
    until("handled", || calls.load(Ordering::SeqCst) == 1).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    running.stop().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "handled once");

    let spans = capture.spans();
    let publishes = named(&spans, PUBLISH);
    let consume = spans.get(CONSUME);
    assert_eq!(consume.parent_span_id, SpanId::INVALID, "a new root");
    assert!(
        consume.links.iter().any(|l| publishes
            .iter()
            .any(|p| p.span_context.span_id() == l.span_context.span_id())),
        "linked to the publish span"
    );
    assert_eq!(
        attribute(consume, attr::DELIVERY_MODE),
        Some(&string(attr::DELIVERY_REDELIVERY))
    );
    server.clean().await;
}

// ---- recovery: bounded by the ack wait, not by the handlers --------------------------------

/// Publishes `count` `OrderPlaced` events with ids of their own; returns the ids.
async fn publish_orders(bus: &NatsBus, count: usize) -> Vec<uuid::Uuid> {
    let events: Vec<EventEnvelope> = (0..count).map(|_| order_placed("o-1")).collect();
    bus.publish(&events).await.expect("published");
    events.iter().map(|event| event.event_id).collect()
}

/// A handler that records each event id it is called with, after `work(call)`.
fn recording(
    group: &ConsumerGroup,
    work: impl Fn(usize) -> Duration + Send + Sync + 'static,
) -> Arc<std::sync::Mutex<Vec<uuid::Uuid>>> {
    let handled = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&handled);
    let calls = Arc::new(AtomicUsize::new(0));
    group.subscribe_fn("send-confirmation", move |event| {
        let takes = work(calls.fetch_add(1, Ordering::SeqCst));
        let seen = Arc::clone(&seen);
        let id = event.event_id;
        async move {
            tokio::time::sleep(takes).await;
            seen.lock().unwrap().push(id);
            Ok::<(), HandlerError>(())
        }
    });
    handled
}

/// Whether every id of `expected` was handled, each once.
fn each_once(handled: &[uuid::Uuid], expected: &[uuid::Uuid]) -> bool {
    let mut handled = handled.to_vec();
    let mut expected = expected.to_vec();
    handled.sort_unstable();
    expected.sort_unstable();
    handled == expected
}

#[tokio::test]
async fn a_dead_consumers_messages_reach_the_others_within_seconds_by_default() {
    let Some(server) = Server::open("dead_consumer") else {
        return;
    };
    let bus = server.bus();
    let group = server.group(&bus, "mailer", &[50]);
    let handled = recording(&group, |_| Duration::ZERO);
    group.declare().await.unwrap();
    let ids = publish_orders(&bus, 24).await;

    // A consumer of the group takes a prefetch of messages and dies without a word: until
    // JetStream hands them on, the group may have no more than that unacknowledged.
    let js = server.jetstream().await;
    let stream = js.get_stream(&server.stream).await.unwrap();
    let consumer: jetstream::consumer::PullConsumer =
        stream.get_consumer(group.consumer_name()).await.unwrap();
    let prefetch = usize::from(eventsource_runtime::nats::DEFAULT_PREFETCH);
    let mut batch = consumer
        .fetch()
        .max_messages(prefetch)
        .messages()
        .await
        .unwrap();
    let mut taken = 0;
    while let Some(message) = batch.next().await {
        message.unwrap();
        taken += 1;
    }
    assert_eq!(taken, prefetch);
    drop(batch);
    let died = std::time::Instant::now();

    let running = Running::start(&group).await;
    // The default ack wait and a pull request's expiry, with room for a loaded machine.
    let bound = Duration::from_secs(10);
    while handled.lock().unwrap().len() < ids.len() && died.elapsed() < bound {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let recovered_in = died.elapsed();
    running.stop().await;
    assert!(
        each_once(&handled.lock().unwrap(), &ids),
        "every message handled once within {bound:?} of the consumer's death \
         ({} of {} after {recovered_in:?})",
        handled.lock().unwrap().len(),
        ids.len()
    );
    server.clean().await;
}

#[tokio::test]
async fn handlers_slower_than_the_ack_wait_keep_their_messages_and_those_waiting() {
    let Some(server) = Server::open("slow_handlers") else {
        return;
    };
    let bus = server.bus();
    let ack_wait = Duration::from_millis(600);
    let group = server
        .group(&bus, "mailer", &[50])
        .ack_wait(ack_wait)
        .prefetch(4);
    // The first handling takes twice the ack wait; the others wait their turn longer still.
    let handled = recording(&group, move |call| {
        if call == 0 {
            ack_wait * 2
        } else {
            ack_wait / 2
        }
    });
    group.declare().await.unwrap();
    let ids = publish_orders(&bus, 4).await;
    let running = Running::start(&group).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while handled.lock().unwrap().len() < ids.len() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.stop().await;

    assert!(
        each_once(&handled.lock().unwrap(), &ids),
        "each handled once: {:?} of {ids:?}",
        handled.lock().unwrap()
    );
    let js = server.jetstream().await;
    let stream = js.get_stream(&server.stream).await.unwrap();
    let mut consumer: jetstream::consumer::PullConsumer =
        stream.get_consumer(group.consumer_name()).await.unwrap();
    let info = consumer.info().await.unwrap();
    assert_eq!(
        (info.num_redelivered, info.num_ack_pending),
        (0, 0),
        "nothing was handed on or left unacknowledged"
    );
    server.clean().await;
}
