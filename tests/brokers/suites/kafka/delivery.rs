//! Delivery: a poison record that does not block its partition, a batch with a link per record,
//! a consumer that died mid-record, graceful stops (the record in hand, a retry waiting).

use super::*;

#[tokio::test]
async fn a_poison_record_does_not_block_its_partition() {
    let Some(broker) = Broker::open("poison") else {
        return;
    };
    let bus = broker.bus().with_partitions(1);
    let group = broker.group(&bus, "mailer", &[30_000]);
    let handled = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&handled);
    group.subscribe_fn("picky", move |event: EventEnvelope| {
        let seen = Arc::clone(&seen);
        async move {
            if event.aggregate_id() == "poison" {
                return Err(HandlerError::new("cannot handle this one"));
            }
            seen.lock().unwrap().push(event.aggregate_id().to_owned());
            Ok(())
        }
    });
    let running = Running::start(&group).await;
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus);
    for id in ["poison", "a", "b"] {
        orders.execute(sample_order(id, "ada")).await.unwrap();
    }
    // The records after it are handled long before its 30 s retry is due.
    until("the records after the poison one", || {
        handled.lock().unwrap().len() == 2
    })
    .await;
    running.stop().await;
    assert_eq!(*handled.lock().unwrap(), ["a", "b"]);
}

// ---- batches, crashes, stops -----------------------------------------------------------------

#[tokio::test]
async fn a_batch_is_one_consume_span_with_a_link_per_record() {
    let Some(broker) = Broker::open("batch") else {
        return;
    };
    let capture = capture();
    let bus = broker.bus().with_partitions(1);
    // Three orders published before the group starts: ready together.
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus.clone());
    for id in ["o-1", "o-2", "o-3"] {
        orders.execute(sample_order(id, "ada")).await.unwrap();
    }
    let group = broker.group(&bus, "reporting", &[50]).batch(10);
    let calls = counting(&group, "report", 0);
    let running = Running::start(&group).await;
    until("three records handled", || {
        calls.load(Ordering::SeqCst) == 3
    })
    .await;
    running.stop().await;

    let spans = capture.spans();
    let publishes = named(&spans, PUBLISH);
    let consumes = named(&spans, CONSUME);
    assert_eq!(consumes.len(), 1, "one batch: {}", spans.tree());
    let batch = consumes[0];
    assert_eq!(batch.parent_span_id, SpanId::INVALID, "a new root");
    assert_eq!(
        attribute(batch, attr::MESSAGING_BATCH_MESSAGE_COUNT),
        Some(&Value::I64(3))
    );
    assert_eq!(batch.links.len(), 3);
    for publish in publishes {
        assert!(linked_to(batch, publish), "a link per record");
    }
    assert_eq!(named(&spans, HANDLE).len(), 3);
}

#[tokio::test]
async fn a_record_its_consumer_died_on_comes_back_as_a_redelivery_and_the_rest_as_first_deliveries()
{
    let Some(broker) = Broker::open("crash") else {
        return;
    };
    let capture = capture();
    let bus = broker.bus().with_partitions(1);
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus.clone());
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    orders.execute(sample_order("o-2", "bob")).await.unwrap();

    // The first consumer hangs in its handler on the first record, and is killed there.
    let stuck = broker.group(&bus, "mailer", &[50]);
    let started = Arc::new(AtomicUsize::new(0));
    let entered = Arc::clone(&started);
    stuck.subscribe_fn("send-confirmation", move |_| {
        entered.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<(), HandlerError>(())
        }
    });
    let first = Running::start(&stuck).await;
    until("the first record started", || {
        started.load(Ordering::SeqCst) == 1
    })
    .await;
    // The `started` mark is committed on the group's cadence (up to `commit_interval`).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !started_mark_kept(&bus, &stuck).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the record in hand was never marked as started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.kill().await;
    let killed_at = std::time::SystemTime::now();

    // The next consumer of the group (the first one's session must time out first).
    let next = broker.group(&bus, "mailer", &[50]);
    let calls = counting(&next, "send-confirmation", 0);
    let second = Running::start(&next).await;
    until("both records handled", || calls.load(Ordering::SeqCst) == 2).await;
    second.stop().await;

    let spans = capture.spans();
    let publishes = named(&spans, PUBLISH);
    // The killed consumer's consume span ended when its task was dropped; the next
    // consumer's are those that ended after the kill.
    let completed: Vec<_> = named(&spans, CONSUME)
        .into_iter()
        .filter(|c| c.end_time > killed_at)
        .collect();
    assert_eq!(completed.len(), 2, "nothing lost: {}", spans.tree());
    let redelivered: Vec<_> = completed
        .iter()
        .filter(|c| c.parent_span_id == SpanId::INVALID)
        .collect();
    assert_eq!(
        redelivered.len(),
        1,
        "the record in the killed handler: {}",
        spans.tree()
    );
    assert_eq!(
        attribute(redelivered[0], attr::DELIVERY_MODE),
        Some(&string(attr::DELIVERY_REDELIVERY))
    );
    assert!(publishes.iter().any(|p| linked_to(redelivered[0], p)));
    let first_deliveries = completed
        .iter()
        .filter(|c| {
            publishes
                .iter()
                .any(|p| c.parent_span_id == p.span_context.span_id())
        })
        .count();
    assert_eq!(
        first_deliveries, 1,
        "the record nobody started: a first delivery"
    );
}

/// Whether the broker returns the `started` mark the killed consumer committed.
async fn started_mark_kept(bus: &KafkaBus, group: &ConsumerGroup) -> bool {
    use eventsource_runtime::kafka::rdkafka::consumer::{BaseConsumer, Consumer as _};
    let brokers = std::env::var("EVENTSOURCE_KAFKA_BROKERS").unwrap();
    let consumer: BaseConsumer = eventsource_runtime::kafka::rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", group.group_id())
        .create()
        .unwrap();
    let topic = bus.topic_of("Order");
    tokio::task::spawn_blocking(move || {
        let mut list = eventsource_runtime::kafka::rdkafka::TopicPartitionList::new();
        list.add_partition(&topic, 0);
        let committed = consumer
            .committed_offsets(list, Duration::from_secs(10))
            .unwrap();
        let entry = committed.find_partition(&topic, 0).unwrap();
        entry.metadata() == "eventsource:started"
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_graceful_stop_finishes_the_record_in_hand_and_leaves_the_rest_as_first_deliveries() {
    let Some(broker) = Broker::open("graceful") else {
        return;
    };
    let capture = capture();
    let bus = broker.bus().with_partitions(1);
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus.clone());
    for id in ["o-1", "o-2", "o-3"] {
        orders.execute(sample_order(id, "ada")).await.unwrap();
    }
    let slow = broker.group(&bus, "mailer", &[50]);
    let calls = Arc::new(AtomicUsize::new(0));
    let entered = Arc::new(AtomicUsize::new(0));
    let done = Arc::clone(&calls);
    let starting = Arc::clone(&entered);
    slow.subscribe_fn("send-confirmation", move |_| {
        let done = Arc::clone(&done);
        starting.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            done.fetch_add(1, Ordering::SeqCst);
            Ok::<(), HandlerError>(())
        }
    });
    let first = Running::start(&slow).await;
    until("the first record in hand", || {
        entered.load(Ordering::SeqCst) == 1
    })
    .await;
    first.stop().await;
    let finished = calls.load(Ordering::SeqCst);
    assert!(finished >= 1, "the record in hand finished");

    let next = broker.group(&bus, "mailer", &[50]);
    let rest = counting(&next, "send-confirmation", 0);
    let second = Running::start(&next).await;
    until("the rest handled", || {
        finished + rest.load(Ordering::SeqCst) == 3
    })
    .await;
    second.stop().await;
    let spans = capture.spans();
    for consume in named(&spans, CONSUME) {
        assert_eq!(
            attribute(consume, attr::DELIVERY_MODE),
            Some(&string(attr::DELIVERY_LIVE)),
            "nothing failed, nothing reads as a retry: {}",
            spans.tree()
        );
    }
}

#[tokio::test]
async fn a_graceful_stop_while_a_retry_waits_out_its_delay_keeps_the_retry() {
    let Some(broker) = Broker::open("stop-retry") else {
        return;
    };
    let bus = broker.bus().with_partitions(1);
    let first = broker.group(&bus, "mailer", &[6000]);
    let calls = counting(&first, "flaky", 1);
    let running = Running::start(&first).await;
    bus.publish(&[order_placed("o-1")]).await.unwrap();
    until("the first delivery failed", || {
        calls.load(Ordering::SeqCst) == 1
    })
    .await;
    // The copy is in the retry topic: its consumer takes it and waits out the delay.
    tokio::time::sleep(Duration::from_secs(3)).await;
    running.stop().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "not due yet");

    let next = broker.group(&bus, "mailer", &[6000]);
    let again = counting(&next, "flaky", 0);
    let running = Running::start(&next).await;
    until("the retry handled after the restart", || {
        again.load(Ordering::SeqCst) == 1
    })
    .await;
    running.stop().await;
}
