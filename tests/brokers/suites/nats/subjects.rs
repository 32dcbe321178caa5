//! Subjects: what a group is bound to, the documented span keys, a message of another
//! aggregate type on an events subject.

use super::*;

#[tokio::test]
async fn a_group_bound_by_patterns_gets_only_the_matching_events() {
    let Some(server) = Server::open("patterns") else {
        return;
    };
    let bus = server.bus();
    // Two patterns: JetStream 2.9 filters by one subject, the group by the rest.
    let placed = server
        .group(&bus, "placed", &[50])
        .bind("Order.OrderPlaced")
        .bind("Cart.*");
    let shipped = server.group(&bus, "shipped", &[50]).bind("*.OrderShipped");
    let placed_calls = counting(&placed, "count", 0);
    let shipped_calls = counting(&shipped, "count", 0);
    let running = [
        Running::start(&placed).await,
        Running::start(&shipped).await,
    ];
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus);
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    let shipment = ShipOrder {
        order_id: "o-1".into(),
        carrier: "ups".into(),
    };
    orders.execute(shipment).await.unwrap();
    until("each group got its event", || {
        placed_calls.load(Ordering::SeqCst) == 1 && shipped_calls.load(Ordering::SeqCst) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for group in running {
        group.stop().await;
    }
    assert_eq!(placed_calls.load(Ordering::SeqCst), 1);
    assert_eq!(shipped_calls.load(Ordering::SeqCst), 1);
    server.clean().await;
}

#[tokio::test]
async fn a_group_declared_again_with_other_patterns_takes_them() {
    let Some(server) = Server::open("rebind") else {
        return;
    };
    let bus = server.bus();
    server
        .group(&bus, "mailer", &[50])
        .bind("Order.OrderShipped")
        .declare()
        .await
        .unwrap();
    let group = server
        .group(&bus, "mailer", &[50])
        .bind("Order.OrderPlaced");
    let calls = counting(&group, "count", 0);
    let running = Running::start(&group).await;
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus);
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    until("the placed order", || calls.load(Ordering::SeqCst) == 1).await;
    running.stop().await;
    server.clean().await;
}

// ---- the contract ------------------------------------------------------------------------------

#[tokio::test]
async fn the_nats_spans_carry_the_documented_keys_and_no_other() {
    let Some(server) = Server::open("contract") else {
        return;
    };
    let contract = include_str!("../../../../docs/telemetry.md");
    // Every key the contract names, in backticks.
    let documented: std::collections::BTreeSet<&str> = contract
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| word.contains('.') && !word.contains(' '))
        .collect();
    let capture = capture();
    let bus = server.bus();
    let group = server.group(&bus, "mailer", &[50]);
    let calls = counting(&group, "send-confirmation", 1);
    let running = Running::start(&group).await;
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus);
    orders.execute(sample_order("o-1", "ada")).await.unwrap();
    until("a failure, then the retry", || {
        calls.load(Ordering::SeqCst) == 2
    })
    .await;
    running.stop().await;

    let spans = capture.spans();
    let mut seen = std::collections::BTreeSet::new();
    for name in [PUBLISH, CONSUME, HANDLE] {
        for span in named(&spans, name) {
            assert_eq!(
                attribute(span, attr::MESSAGING_SYSTEM).is_some(),
                name != HANDLE
            );
            for kv in &span.attributes {
                let key = kv.key.as_str().to_owned();
                assert!(
                    documented.contains(key.as_str()),
                    "`{key}` on `{name}` is not in docs/telemetry.md"
                );
                seen.insert(key);
            }
        }
    }
    for key in [
        attr::MESSAGING_DESTINATION_NAME,
        attr::MESSAGING_CONSUMER_GROUP_NAME,
        attr::MESSAGING_MESSAGE_ID,
        attr::DELIVERY_ATTEMPT,
        attr::SERVER_ADDRESS,
    ] {
        assert!(documented.contains(key), "`{key}` documented");
        assert!(seen.contains(key), "`{key}` seen on the NATS spans");
    }
    server.clean().await;
}

/// A message on an `Order` subject whose event belongs to another aggregate type (a
/// producer of another kind published it there) is skipped, counted with
/// `reason=misrouted` and logged, as Kafka skips such a record on its topic; the message
/// after it is handled.
#[tokio::test]
async fn a_message_of_another_aggregate_type_on_an_events_subject_is_skipped_and_counted() {
    let Some(server) = Server::open("misrouted") else {
        return;
    };
    let bus = server.bus();
    let group = server.group(&bus, "mailer", &[50]);
    let handled = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&handled);
    group.subscribe_fn("send-confirmation", move |event| {
        seen.lock().unwrap().push(event.event_id);
        async { Ok::<(), HandlerError>(()) }
    });
    let running = Running::start(&group).await;
    let mut misrouted = order_placed("o-1");
    misrouted.stream = StreamId::new("Customer", "c-1");
    misrouted.event_type = "CustomerRegistered".into();
    let subject = server.subject("OrderPlaced");
    raw(
        &server,
        subject.clone(),
        HeaderMap::new(),
        wire::encode(&misrouted).unwrap(),
    )
    .await;
    let placed = order_placed("o-1");
    raw(
        &server,
        subject.clone(),
        HeaderMap::new(),
        wire::encode(&placed).unwrap(),
    )
    .await;
    until("the message after it handled", || {
        !handled.lock().unwrap().is_empty()
    })
    .await;
    running.stop().await;
    assert_eq!(*handled.lock().unwrap(), [placed.event_id]);
    assert_eq!(
        METRICS.total(
            attr::METRIC_BUS_MESSAGES_SKIPPED,
            &[
                (attr::MESSAGING_SYSTEM, "nats"),
                (attr::MESSAGING_DESTINATION_NAME, subject.as_str()),
                (attr::METRIC_ATTR_SKIP_REASON, "misrouted"),
            ],
        ),
        1
    );
    server.clean().await;
}
