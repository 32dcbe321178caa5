//! Lineage across a broker: service A's command stores a checkout and publishes it; service
//! B's consumer group hands it to a handler that runs a command of B's; B's events carry
//! A's correlation id and the checkout as their cause, with nothing passed by hand. The
//! publish, consume and handle spans carry the correlation id, and the message carries it in
//! its headers too. On RabbitMQ, NATS JetStream and Kafka: the scenario once, each broker's
//! test giving it a bus and a group, then reading the headers as the broker keeps them.
//!
//! The brokers come from `EVENTSOURCE_AMQP_URL`, `EVENTSOURCE_NATS_URL` and
//! `EVENTSOURCE_KAFKA_BROKERS`; without one, its test prints `skipped: ... not set` and
//! passes, unless `EVENTSOURCE_REQUIRE_RABBITMQ=1` / `EVENTSOURCE_REQUIRE_NATS=1` /
//! `EVENTSOURCE_REQUIRE_KAFKA=1`. Every test works on destinations of its own.

use eventsource_test_support::lineage_domain as domain;

use crate::any_broker::{Group, delete_nats_streams, delete_rabbitmq};
use crate::servers::Server;
use eventsource_test_support::groups::Running;
use std::time::Duration;

use domain::{Cart, CheckOut, Shipment, fulfilment};
use eventsource_runtime::bus::{EventBus, EventHandler};
use eventsource_runtime::prelude::*;
use eventsource_runtime::telemetry::attributes as attr;
use eventsource_runtime::testing::{CapturedSpans, attribute, capture};

/// Waits (up to `patience`) until service B stored its shipment.
async fn until_shipped(shipments: &InMemoryEventStore, patience: Duration) -> Vec<EventEnvelope> {
    let stream = StreamId::new("Shipment", "cart-1");
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let events = shipments.load(&stream, 1).await.unwrap();
        if !events.is_empty() {
            return events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for service B's shipment"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Service B: a store of its own and the fulfilment handler.
fn service_b() -> (InMemoryEventStore, impl EventHandler) {
    let store = InMemoryEventStore::new();
    let handler = fulfilment(CommandService::<Shipment>::new(store.clone()));
    (store, handler)
}

/// Service A checks cart-1 out, publishing on `bus`; returns the stored checkout.
async fn service_a_checks_out(bus: impl EventBus) -> EventEnvelope {
    let carts = CommandService::<Cart>::new(InMemoryEventStore::new()).with_bus(bus);
    let checkout = CheckOut {
        cart_id: "cart-1".into(),
        items: 2,
    };
    let outcome = carts.execute(checkout).await.expect("checked out");
    assert!(outcome.publish_error().is_none(), "{:?}", outcome.publish);
    outcome.events[0].clone()
}

/// B's events carry A's correlation id, A's checkout as cause; the spans say so.
fn check(checkout: &EventEnvelope, shipment: &[EventEnvelope], spans: &CapturedSpans) {
    let correlation_id = checkout.metadata.correlation_id().expect("stamped");
    assert_eq!(shipment.len(), 2);
    for event in shipment {
        assert_eq!(event.metadata.correlation_id(), Some(correlation_id));
        let cause = checkout.event_id.to_string();
        assert_eq!(event.metadata.causation_id(), Some(cause.as_str()));
    }
    let id = checkout.event_id.to_string();
    for name in [
        attr::SPAN_BUS_PUBLISH,
        attr::SPAN_BUS_CONSUME,
        attr::SPAN_BUS_HANDLE,
    ] {
        let of_checkout: Vec<_> = spans
            .all(name)
            .into_iter()
            .filter(|s| {
                attribute(s, attr::MESSAGING_MESSAGE_ID).map(|v| v.as_str().into_owned())
                    == Some(id.clone())
            })
            .collect();
        assert!(!of_checkout.is_empty(), "no {name}: {}", spans.tree());
        for span in of_checkout {
            assert_eq!(
                attribute(span, attr::CORRELATION_ID).map(|v| v.as_str().into_owned()),
                Some(correlation_id.to_owned()),
                "{name}: {}",
                spans.tree_with_attributes()
            );
        }
    }
    let command = spans.get("command.PrepareShipment");
    assert_eq!(
        attribute(command, attr::CORRELATION_ID).map(|v| v.as_str().into_owned()),
        Some(correlation_id.to_owned())
    );
}

/// The scenario, on any broker: service B's `group` (on the bus service A publishes to)
/// hands A's checkout to B's handler, whose shipment continues A's lineage; the checkout,
/// for the broker's own checks of the message.
async fn service_b_continues_the_lineage_of_service_a<G: Group>(
    bus: impl EventBus,
    group: &G,
    patience: Duration,
) -> EventEnvelope {
    let capture = capture();
    let (shipments, handler) = service_b();
    group.subscribe(handler);
    let running = Running::start(group).await;
    let checkout = service_a_checks_out(bus).await;
    let shipment = until_shipped(&shipments, patience).await;
    running.stop().await;
    check(&checkout, &shipment, &capture.spans());
    checkout
}

#[tokio::test]
async fn rabbitmq_carries_the_correlation_to_the_next_service() {
    use eventsource_runtime::rabbitmq::RabbitMqBus;
    use lapin::options::BasicGetOptions;
    use lapin::{Connection, ConnectionProperties};

    let test = "lineage::rabbitmq";
    let Some(url) = Server::RabbitMq.address(test) else {
        return;
    };
    let exchange = format!("es-test-lineage-{}", uuid::Uuid::now_v7().simple());
    let bus = RabbitMqBus::new(&url)
        .expect("an AMQP URL")
        .with_exchange(&exchange)
        .with_confirm_timeout(Duration::from_secs(5));
    let group = bus.consumer_group("fulfilment");
    // The exchange, for the tap to bind to.
    group.declare().await.expect("the group's queues");
    // A second queue on the exchange, read by hand: the headers as sent.
    let connection = Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect("the broker");
    let channel = connection.create_channel().await.expect("a channel");
    let tap = format!("{exchange}.tap");
    channel
        .queue_declare(tap.as_str().into(), Default::default(), Default::default())
        .await
        .unwrap();
    channel
        .queue_bind(
            tap.as_str().into(),
            exchange.as_str().into(),
            "#".into(),
            Default::default(),
            Default::default(),
        )
        .await
        .unwrap();

    let checkout =
        service_b_continues_the_lineage_of_service_a(bus, &group, Duration::from_secs(10)).await;

    let tapped = channel
        .basic_get(tap.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the checkout, tapped");
    let headers = tapped.properties.headers().clone().unwrap_or_default();
    let header = |key: &str| {
        headers.inner().iter().find_map(|(k, v)| match v {
            lapin::types::AMQPValue::LongString(s) if k.as_str() == key => {
                Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
            }
            _ => None,
        })
    };
    assert_eq!(
        header("eventsource-correlationid").as_deref(),
        checkout.metadata.correlation_id()
    );
    assert_eq!(
        header("eventsource-causationid").as_deref(),
        checkout.metadata.causation_id()
    );
    let _ = connection.close(200, "read".into()).await;

    delete_rabbitmq(
        &url,
        &exchange,
        &[group.queue(), group.dead_letters().queue(), &tap],
    )
    .await;
}

#[tokio::test]
async fn nats_carries_the_correlation_to_the_next_service() {
    use eventsource_runtime::nats::NatsBus;
    use eventsource_runtime::nats::async_nats::jetstream;

    let test = "lineage::nats";
    let Some(url) = Server::Nats.address(test) else {
        return;
    };
    let id = uuid::Uuid::now_v7().simple().to_string();
    let stream = format!("ES_TEST_lineage_{id}");
    let bus = NatsBus::new(&url)
        .expect("a NATS URL")
        .with_stream(&stream)
        .with_subject_prefix(format!("es-test-lineage-{id}"))
        .with_ack_timeout(Duration::from_secs(5));
    let group = bus.consumer_group("fulfilment");

    let checkout =
        service_b_continues_the_lineage_of_service_a(bus, &group, Duration::from_secs(10)).await;

    // The stored message's headers carry the ids.
    let client = eventsource_runtime::nats::async_nats::connect(&url)
        .await
        .expect("the server");
    let stored = jetstream::new(client)
        .get_stream(&stream)
        .await
        .expect("the stream");
    let message = stored.get_raw_message(1).await.expect("the checkout");
    let correlation = message
        .headers
        .get("eventsource-correlationid")
        .map(|v| v.as_str().to_owned());
    assert_eq!(correlation.as_deref(), checkout.metadata.correlation_id());

    delete_nats_streams(&url, &stream).await;
}

#[tokio::test]
async fn kafka_carries_the_correlation_to_the_next_service() {
    use eventsource_runtime::kafka::KafkaBus;

    let test = "lineage::kafka";
    let Some(brokers) = Server::Kafka.address(test) else {
        return;
    };
    let bus = KafkaBus::new(&brokers)
        .expect("a Kafka address")
        .with_topic_prefix(format!("es-lineage-{}", uuid::Uuid::now_v7().simple()))
        .with_delivery_timeout(Duration::from_secs(10));
    let group = bus.consumer_group("fulfilment").bind("Cart.*");

    // A group's first join takes seconds.
    service_b_continues_the_lineage_of_service_a(bus, &group, Duration::from_secs(60)).await;
}
