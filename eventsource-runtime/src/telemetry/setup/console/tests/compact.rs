//! The compact view, the default: one line per span, at most three attributes.

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _};

use super::{ConsoleDetail, ConsoleExporter, Pipeline, normalize_compact, pipeline_with};

/// A pipeline printing the default view.
fn pipeline() -> Pipeline {
    pipeline_with(ConsoleExporter::with_writer)
}

/// The attributes the RabbitMQ consumer puts on a consume span, as in the distributed example.
fn consume_attributes() -> Vec<KeyValue> {
    vec![
        KeyValue::new("messaging.system", "rabbitmq"),
        KeyValue::new("messaging.operation.type", "process"),
        KeyValue::new("messaging.destination.name", "eventsource.events"),
        KeyValue::new("messaging.consumer.group.name", "confirmations"),
        KeyValue::new(
            "messaging.rabbitmq.destination.routing_key",
            "eventsource.Order.OrderPlaced",
        ),
        KeyValue::new("messaging.rabbitmq.message.delivery_tag", 7_i64),
        KeyValue::new(
            "messaging.message.id",
            "b2f6c2f4-6a4e-4f53-9c1f-1f3ac0c1a7de",
        ),
        KeyValue::new("server.address", "127.0.0.1"),
        KeyValue::new("server.port", 5672_i64),
        KeyValue::new("eventsource.delivery.mode", "live"),
        KeyValue::new("eventsource.delivery.attempt", 1_i64),
        KeyValue::new("eventsource.aggregate.type", "Order"),
        KeyValue::new("eventsource.aggregate.id", "order-1"),
        KeyValue::new("eventsource.event.type", "OrderPlaced"),
        KeyValue::new("eventsource.event.sequence", 1_i64),
        KeyValue::new("eventsource.event.position", 12_i64),
    ]
}

#[test]
fn the_default_is_one_line_per_span_with_the_attributes_that_tell_the_story() {
    let p = pipeline();
    let tracer = p.tracer();
    let mut consume = tracer
        .span_builder("eventsource.event_bus.consume")
        .with_kind(SpanKind::Consumer)
        .with_attributes(consume_attributes())
        .start(&tracer);
    consume.set_status(Status::Ok);
    let consume_cx = opentelemetry::Context::new().with_span(consume);
    let mut handle = tracer
        .span_builder("eventsource.event_bus.handle")
        .with_attributes(vec![
            KeyValue::new("eventsource.handler.name", "confirmation"),
            KeyValue::new("eventsource.aggregate.id", "order-1"),
            KeyValue::new("eventsource.handler.duplicate", false),
            KeyValue::new("messaging.system", "rabbitmq"),
        ])
        .start_with_context(&tracer, &consume_cx);
    handle.end();
    consume_cx.span().end();

    let text = p.out.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        4,
        "a trace line, one per span, a blank line:\n{text}"
    );
    assert_eq!(
        normalize_compact(lines[1]),
        "eventsource.event_bus.consume  <d>  eventsource.aggregate.id=order-1 \
         eventsource.event.type=OrderPlaced eventsource.delivery.mode=live",
        "\n{text}"
    );
    assert_eq!(
        normalize_compact(lines[2]),
        "└─ eventsource.event_bus.handle  <d>  eventsource.handler.name=confirmation",
        "the parent's aggregate id and an unset flag are not repeated:\n{text}"
    );
    assert!(lines[3].is_empty(), "{text}");
}

#[test]
fn a_line_shows_at_most_three_attributes_the_applications_own_after_the_librarys() {
    let p = pipeline();
    let tracer = p.tracer();
    tracer
        .span_builder("command.PlaceOrder")
        .with_attributes(vec![
            KeyValue::new("customer.tier", "gold"),
            KeyValue::new("eventsource.command.duplicate", true),
            KeyValue::new("eventsource.aggregate.id", "order-9"),
        ])
        .start(&tracer)
        .end();
    tracer
        .span_builder("work")
        .with_attributes(vec![
            KeyValue::new("customer.tier", "gold"),
            KeyValue::new("customer.region", "eu"),
            KeyValue::new("db.system.name", "postgresql"),
        ])
        .start(&tracer)
        .end();
    let text = p.out.text();
    assert!(
        text.lines().any(|l| normalize_compact(l)
            == "command.PlaceOrder  <d>  eventsource.aggregate.id=order-9 \
                eventsource.command.duplicate=true customer.tier=gold"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| normalize_compact(l) == "work  <d>  customer.tier=gold customer.region=eu"),
        "{text}"
    );
}

#[test]
fn links_and_errors_stay_on_the_spans_line() {
    let p = pipeline();
    let tracer = p.tracer();
    let producer = tracer.start("command.PlaceOrder");
    let producer_sc = producer.span_context().clone();
    drop(producer);
    let mut redelivery = tracer
        .span_builder("eventsource.event_bus.consume")
        .with_links(vec![opentelemetry::trace::Link::with_context(
            producer_sc.clone(),
        )])
        .with_attributes(vec![KeyValue::new("eventsource.delivery.attempt", 2_i64)])
        .start(&tracer);
    redelivery.set_status(Status::error("crm unavailable"));
    redelivery.end();
    let text = p.out.text();
    let line = text
        .lines()
        .find(|l| l.starts_with("eventsource.event_bus.consume"))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        normalize_compact(line),
        format!(
            "eventsource.event_bus.consume  <d>  eventsource.delivery.attempt=2  ↳ linked to \
             command.PlaceOrder in trace {}  ✗ error: crm unavailable",
            producer_sc.trace_id(),
        ),
        "\n{text}"
    );
    assert_eq!(
        text.lines().count(),
        6,
        "two traces of one span each:\n{text}"
    );
}

#[test]
fn a_link_to_a_span_never_seen_shows_its_ids() {
    let p = pipeline();
    let tracer = p.tracer();
    let elsewhere = super::remote_context("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    tracer
        .span_builder("eventsource.event_bus.consume")
        .with_links(vec![opentelemetry::trace::Link::with_context(elsewhere)])
        .start(&tracer)
        .end();
    let text = p.out.text();
    assert!(
        text.lines().any(|l| l.ends_with(
            "  ↳ linked to 4bf92f3577b34da6a3ce929d0e0e4736/00f067aa0ba902b7"
        )),
        "{text}"
    );
}

#[test]
fn the_full_view_is_one_switch_away() {
    let p = pipeline_with(|out| ConsoleExporter::with_writer(out).detail(ConsoleDetail::Full));
    let tracer = p.tracer();
    tracer
        .span_builder("eventsource.event_bus.consume")
        .with_kind(SpanKind::Consumer)
        .with_attributes(consume_attributes())
        .start(&tracer)
        .end();
    let text = p.out.text();
    assert!(
        text.contains("eventsource.event_bus.consume  consumer  "),
        "{text}"
    );
    for kv in consume_attributes() {
        assert!(
            text.contains(&format!("{}=", kv.key)),
            "{} in\n{text}",
            kv.key
        );
    }
}
