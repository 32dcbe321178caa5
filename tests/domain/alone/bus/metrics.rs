//! The bus metrics: the contract's names, units and attributes.

use super::*;

#[tokio::test]
async fn the_bus_metrics_have_the_contract_names_units_and_attributes() {
    let _global = GLOBAL.read().await;
    let metrics = &*METRICS;
    let _capture = capture();
    let bus = InMemoryEventBus::new()
        .with_destination("metrics-orders")
        .with_max_deliveries(2);
    let calls = Arc::new(AtomicUsize::new(0));
    bus.subscribe(failing("metrics-flaky", usize::MAX, &calls));
    let seen = Recorder::default();
    seen.subscribe(&bus, "metrics-audit");
    let orders = CommandService::<Order>::new(InMemoryEventStore::new()).with_bus(bus);
    orders.execute(place("o-1")).await.unwrap();

    let here = [(attr::MESSAGING_DESTINATION_NAME, "metrics-orders")];
    assert_eq!(metrics.total(attr::METRIC_BUS_MESSAGES_PUBLISHED, &here), 1);
    assert_eq!(
        metrics.total(
            attr::METRIC_BUS_MESSAGES_PUBLISHED,
            &[
                (attr::MESSAGING_DESTINATION_NAME, "metrics-orders"),
                (attr::MESSAGING_SYSTEM, "in_memory"),
                (attr::METRIC_ATTR_EVENT_TYPE, "OrderPlaced"),
            ]
        ),
        1
    );
    // The live delivery and one redelivery.
    assert_eq!(metrics.total(attr::METRIC_BUS_MESSAGES_CONSUMED, &here), 2);
    let flaky = [(attr::METRIC_ATTR_HANDLER_NAME, "metrics-flaky")];
    assert_eq!(metrics.total(attr::METRIC_BUS_HANDLER_DURATION, &flaky), 2);
    let audit = [
        (attr::METRIC_ATTR_HANDLER_NAME, "metrics-audit"),
        (attr::METRIC_ATTR_EVENT_TYPE, "OrderPlaced"),
    ];
    assert_eq!(metrics.total(attr::METRIC_BUS_HANDLER_DURATION, &audit), 1);

    for (name, unit) in [
        (attr::METRIC_BUS_MESSAGES_PUBLISHED, "{message}"),
        (attr::METRIC_BUS_MESSAGES_CONSUMED, "{message}"),
        (attr::METRIC_BUS_HANDLER_DURATION, "s"),
    ] {
        assert_eq!(metrics.unit(name).as_deref(), Some(unit), "{name}");
    }
    // Exactly the contract's attributes, none unbounded (no message or aggregate id).
    for name in [
        attr::METRIC_BUS_MESSAGES_PUBLISHED,
        attr::METRIC_BUS_MESSAGES_CONSUMED,
    ] {
        assert_eq!(
            metrics.attribute_keys(name),
            [
                attr::METRIC_ATTR_EVENT_TYPE,
                attr::MESSAGING_DESTINATION_NAME,
                attr::MESSAGING_SYSTEM
            ],
            "{name}"
        );
    }
    assert_eq!(
        metrics.attribute_keys(attr::METRIC_BUS_HANDLER_DURATION),
        [
            attr::METRIC_ATTR_EVENT_TYPE,
            attr::METRIC_ATTR_HANDLER_NAME,
            attr::METRIC_ATTR_HANDLER_STATUS
        ]
    );
    // The flaky handler failed both deliveries: two errors, then the dead letters.
    let failed = [
        (attr::METRIC_ATTR_HANDLER_NAME, "metrics-flaky"),
        (attr::METRIC_ATTR_HANDLER_STATUS, "error"),
    ];
    assert_eq!(metrics.total(attr::METRIC_BUS_HANDLER_DURATION, &failed), 2);
    let audited = [
        (attr::METRIC_ATTR_HANDLER_NAME, "metrics-audit"),
        (attr::METRIC_ATTR_HANDLER_STATUS, "success"),
    ];
    assert_eq!(
        metrics.total(attr::METRIC_BUS_HANDLER_DURATION, &audited),
        1
    );
    let dead = [
        (attr::MESSAGING_DESTINATION_NAME, "metrics-orders"),
        (attr::MESSAGING_SYSTEM, "in_memory"),
        (attr::METRIC_ATTR_EVENT_TYPE, "OrderPlaced"),
    ];
    assert_eq!(
        metrics.total(attr::METRIC_BUS_MESSAGES_DEAD_LETTERED, &dead),
        1
    );
}
