//! What a consumer group takes from its topics: a record of another aggregate type skipped and
//! counted, three members each getting a share of every topic.

use super::*;

/// A record on the group's own topic whose event belongs to another aggregate type (a
/// producer of another kind wrote it there) is skipped, counted with `reason=misrouted`
/// and logged, as NATS skips a message on another event's subject; the record after it
/// is handled. An event the group does not bind is counted with `reason=not_bound`.
#[tokio::test]
async fn a_record_of_another_aggregate_type_on_the_groups_topic_is_skipped_and_counted() {
    let Some(broker) = Broker::open("misrouted") else {
        return;
    };
    let bus = broker.bus().with_partitions(1);
    let group = bus
        .consumer_group("mailer")
        .bind("Order.OrderPlaced")
        .retry_delays([Duration::from_millis(50)]);
    let handled = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&handled);
    group.subscribe_fn("send-confirmation", move |event| {
        seen.lock().unwrap().push(event.event_id);
        async { Ok::<(), HandlerError>(()) }
    });
    let running = Running::start(&group).await;
    bus.declare(["Order"]).await.unwrap();
    let mut misrouted = order_placed("c-1");
    misrouted.stream = StreamId::new("Customer", "c-1");
    misrouted.event_type = "CustomerRegistered".into();
    raw(&bus, "c-1", &[], &wire::encode(&misrouted).unwrap()).await;
    let mut shipped = order_placed("o-1");
    shipped.event_type = "OrderShipped".into();
    raw(&bus, "o-1", &[], &wire::encode(&shipped).unwrap()).await;
    let placed = order_placed("o-1");
    raw(&bus, "o-1", &[], &wire::encode(&placed).unwrap()).await;
    until("the record after them handled", || {
        !handled.lock().unwrap().is_empty()
    })
    .await;
    running.stop().await;
    assert_eq!(
        *handled.lock().unwrap(),
        [placed.event_id],
        "only the bound one"
    );
    let topic = bus.topic_of("Order");
    let skipped = |reason: &'static str| {
        METRICS.total(
            attr::METRIC_BUS_MESSAGES_SKIPPED,
            &[
                (attr::MESSAGING_SYSTEM, "kafka"),
                (attr::MESSAGING_DESTINATION_NAME, topic.as_str()),
                (attr::METRIC_ATTR_SKIP_REASON, reason),
            ],
        )
    };
    assert_eq!(skipped("misrouted"), 1);
    assert_eq!(skipped("not_bound"), 1);
}

/// Three members of one group, started together, reading every aggregate type's topic
/// (`bind("#")`: a busy one and a quiet one, six partitions each), each get a share of the
/// busy topic: every member handles a part of the stream, and every record is handled
/// (counted by event id), whichever group protocol they join with
/// (`EVENTSOURCE_KAFKA_GROUP_PROTOCOL`). An assignor that balances all partitions together
/// (`cooperative-sticky`, the broker's `uniform`) gave one member the quiet topic only.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_members_of_a_group_each_get_a_share_of_every_topic() {
    let Some(broker) = Broker::open("share") else {
        return;
    };
    const ORDERS: usize = 300;
    let bus = broker.bus().with_partitions(6);
    bus.declare(["Account", "Order"]).await.unwrap();
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus.clone());
    for n in 0..ORDERS {
        orders
            .execute(sample_order(&format!("o-{n}"), "ada"))
            .await
            .unwrap();
    }
    let handled: Vec<Arc<std::sync::Mutex<std::collections::HashSet<uuid::Uuid>>>> =
        (0..3).map(|_| Arc::default()).collect();
    let mut running = Vec::new();
    for seen in &handled {
        let group = bus
            .consumer_group("sharing")
            .bind("#")
            .retry_delays([Duration::from_millis(50)]);
        let seen = Arc::clone(seen);
        group.subscribe_fn("record", move |event| {
            seen.lock().unwrap().insert(event.event_id);
            // Slow enough that the three have joined before the stream is handled.
            async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok::<(), HandlerError>(())
            }
        });
        running.push(Running::start(&group).await);
    }
    let all = || {
        handled
            .iter()
            .flat_map(|seen| seen.lock().unwrap().iter().copied().collect::<Vec<_>>())
            .collect::<std::collections::HashSet<_>>()
    };
    until("every record handled", || all().len() == ORDERS).await;
    for member in running {
        member.stop().await;
    }
    let each: Vec<usize> = handled
        .iter()
        .map(|seen| seen.lock().unwrap().len())
        .collect();
    assert!(
        each.iter().all(|n| *n > 0),
        "each member handled a part: {each:?}"
    );
}
