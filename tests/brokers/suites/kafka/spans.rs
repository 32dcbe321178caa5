//! The contract: the Kafka spans carry the documented keys and no other.

use super::*;

#[tokio::test]
async fn the_kafka_spans_carry_the_documented_keys_and_no_other() {
    let Some(broker) = Broker::open("contract") else {
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
    let bus = broker.bus();
    let group = broker.group(&bus, "mailer", &[50]);
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
        attr::MESSAGING_KAFKA_MESSAGE_KEY,
        attr::MESSAGING_KAFKA_OFFSET,
        attr::MESSAGING_DESTINATION_PARTITION_ID,
        attr::MESSAGING_CONSUMER_GROUP_NAME,
        attr::DELIVERY_ATTEMPT,
    ] {
        assert!(documented.contains(key), "`{key}` documented");
        assert!(seen.contains(key), "`{key}` seen on the Kafka spans");
    }
}
