//! The telemetry every event bus shares: the publish span (PRODUCER) and its context in the
//! message headers, for transports; the consume (CONSUMER) and handle (INTERNAL) spans and
//! the bus metrics, which the [`Dispatcher`](super::Dispatcher) records.
//!
//! Spans follow the bus's own switch ([`BusTelemetry::enabled`]) and the process switch;
//! metrics follow the process switch only (like the command metrics). Switched off, no span
//! is built and nothing is formatted. Without the `tracing` feature these calls run the
//! work and nothing else.

use std::future::Future;

use super::{BusError, BusMessage, HandlerError, HandlerFailure, PanicPayload};
use crate::telemetry::config::BusTelemetry;

#[cfg(feature = "tracing")]
use crate::telemetry::{attributes as attr, metrics, propagation, spans, toggles};
#[cfg(feature = "tracing")]
use opentelemetry::KeyValue;
#[cfg(feature = "tracing")]
use opentelemetry::trace::{SpanContext, Status};
#[cfg(feature = "tracing")]
use tracing::Instrument as _;
#[cfg(feature = "tracing")]
use tracing::Span;
#[cfg(feature = "tracing")]
use tracing::field::Empty;
#[cfg(feature = "tracing")]
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Publishes one message: runs `send` (the transport's enqueue) inside the PRODUCER span
/// `eventsource.event_bus.publish`, a child of the current span, after writing **that
/// span's** context into the message [`headers`](BusMessage::headers); counts the message
/// when `send` succeeds; ends the span with ERROR and one `exception` event when it fails.
///
/// With the bus's spans switched off, the headers carry the current span's context
/// instead, so consumers still join the caller's trace; with the process switch off, they
/// carry nothing.
///
/// ```
/// use eventsource_runtime::bus::{BusError, BusMessage, instrument};
/// use eventsource_runtime::event::{EventEnvelope, Metadata, StreamId};
/// use eventsource_runtime::telemetry::config::BusTelemetry;
///
/// # let event = EventEnvelope {
/// #     event_id: uuid::Uuid::now_v7(), stream: StreamId::new("Order", "o-1"), version: 1,
/// #     position: 1, event_type: "OrderPlaced".into(), schema_version: 1,
/// #     timestamp: chrono::Utc::now(), payload: serde_json::json!({}), metadata: Metadata::new(),
/// # };
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let telemetry = BusTelemetry::new("rabbitmq");
/// let message = BusMessage::new("orders", event);
/// // A broker adapter sends the message, headers included, from inside the closure.
/// let sent = instrument::publish(&telemetry, message, |message| async move {
///     Ok::<_, BusError>(message.message_id)
/// })
/// .await
/// .unwrap();
/// # });
/// ```
///
/// # Errors
/// Whatever `send` returns.
pub async fn publish<T, F, Fut>(
    telemetry: &BusTelemetry,
    message: BusMessage,
    send: F,
) -> Result<T, BusError>
where
    F: FnOnce(BusMessage) -> Fut,
    Fut: Future<Output = Result<T, BusError>>,
{
    #[cfg(feature = "tracing")]
    {
        if !toggles::is_enabled() {
            return send(message).await;
        }
        let mut message = message;
        let span = publish_span(telemetry, &message);
        if span.is_disabled() {
            propagation::inject_current(&mut message.headers);
        } else {
            propagation::inject(&span.context(), &mut message.headers);
        }
        let destination = std::sync::Arc::clone(&message.destination);
        let event_type = message.event.event_type.clone();
        let result = send(message).instrument(span.clone()).await;
        match &result {
            Ok(_) => metrics::record_bus_published(telemetry.system, &destination, &event_type),
            Err(error) => spans::record_error(&span, bus_error_type(error), error),
        }
        result
    }
    #[cfg(not(feature = "tracing"))]
    {
        let _ = telemetry;
        send(message).await
    }
}

/// How messages reach the handlers; decides the consume span's parent and links.
/// (Read only by the telemetry: without the `tracing` feature it is carried and dropped.)
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) enum Delivery<'a> {
    /// First delivery: child of the producer's context (in the headers).
    Live(&'a BusMessage),
    /// Delivery number `.1` after a failure: a new root linked to the producer's context.
    Redelivery(&'a BusMessage, u32),
    /// A stored event read back: a new root linked to the context stored in the event.
    Replay(&'a BusMessage),
    /// Several messages at once: a new root with one link per message.
    Batch(&'a [BusMessage]),
}

impl<'a> Delivery<'a> {
    #[cfg(feature = "tracing")]
    fn messages(self) -> &'a [BusMessage] {
        match self {
            Self::Live(m) | Self::Redelivery(m, _) | Self::Replay(m) => std::slice::from_ref(m),
            Self::Batch(messages) => messages,
        }
    }
}

/// Runs a delivery's handlers (`work`) inside the consume span; counts each message
/// consumed; sets the span's status to ERROR when a handler failed (the failing handler's
/// own span carries the `exception` event; the consume span gets none, so each failure is
/// reported once).
pub(crate) async fn consume<Fut>(
    telemetry: &BusTelemetry,
    delivery: Delivery<'_>,
    work: Fut,
) -> Vec<HandlerFailure>
where
    Fut: Future<Output = Vec<HandlerFailure>>,
{
    #[cfg(feature = "tracing")]
    {
        if !toggles::is_enabled() {
            return work.await;
        }
        for message in delivery.messages() {
            metrics::record_bus_consumed(
                telemetry.system,
                &message.destination,
                &message.event.event_type,
            );
        }
        let span = consume_span(telemetry, delivery);
        let failures = work.instrument(span.clone()).await;
        if let Some(first) = failures.first()
            && !span.is_disabled()
        {
            let description = match failures.len() {
                1 => first.to_string(),
                n => format!("{n} handler failures; the first: {first}"),
            };
            span.set_status(Status::error(description));
        }
        failures
    }
    #[cfg(not(feature = "tracing"))]
    {
        let _ = (telemetry, delivery);
        work.await
    }
}

/// Runs one handler on one message (`run`, which caught any panic) inside the handle span;
/// records the handler's duration; a failure (or a panic, turned into a [`HandlerError`])
/// ends the span with ERROR and one `exception` event.
pub(crate) async fn handle<Fut>(
    telemetry: &BusTelemetry,
    handler: &str,
    message: &BusMessage,
    run: Fut,
) -> Result<(), HandlerError>
where
    Fut: Future<Output = Result<Result<(), HandlerError>, PanicPayload>>,
{
    #[cfg(feature = "tracing")]
    {
        if !toggles::is_enabled() {
            return flatten(run.await);
        }
        let span = handle_span(telemetry, handler, message);
        let started = std::time::Instant::now();
        let outcome = run.instrument(span.clone()).await;
        metrics::record_bus_handler(handler, &message.event.event_type, started.elapsed());
        match &outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => spans::record_error(&span, "HandlerError", error),
            Err(payload) => spans::record_panic(&span, &**payload),
        }
        flatten(outcome)
    }
    #[cfg(not(feature = "tracing"))]
    {
        let _ = (telemetry, handler, message);
        flatten(run.await)
    }
}

fn flatten(outcome: Result<Result<(), HandlerError>, PanicPayload>) -> Result<(), HandlerError> {
    outcome.unwrap_or_else(|payload| Err(HandlerError::panicked(&*payload)))
}

#[cfg(feature = "tracing")]
fn bus_error_type(error: &BusError) -> &'static str {
    match error {
        BusError::Unavailable(_) => "BusError::Unavailable",
        BusError::Rejected { .. } => "BusError::Rejected",
    }
}

// ---- spans -----------------------------------------------------------------------------------

/// `eventsource.event_bus.publish`, PRODUCER, child of the current span.
#[cfg(feature = "tracing")]
fn publish_span(telemetry: &BusTelemetry, message: &BusMessage) -> Span {
    if !spans::on(telemetry.enabled) {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: spans::TARGET,
        attr::SPAN_BUS_PUBLISH,
        otel.name = Empty,
        otel.kind = "producer",
        { attr::MESSAGING_SYSTEM } = telemetry.system,
        { attr::MESSAGING_DESTINATION_NAME } = &*message.destination,
        { attr::MESSAGING_OPERATION_TYPE } = attr::MESSAGING_OPERATION_PUBLISH,
        { attr::MESSAGING_MESSAGE_ID } = tracing::field::display(&message.message_id),
        { attr::EVENT_TYPE } = message.event.event_type.as_str(),
        { attr::AGGREGATE_TYPE } = message.event.aggregate_type(),
        { attr::AGGREGATE_ID } = message.event.aggregate_id(),
    );
    spans::name(&span, telemetry.names.publish);
    span
}

/// `eventsource.event_bus.consume`, CONSUMER; its parent or links by delivery.
#[cfg(feature = "tracing")]
fn consume_span(telemetry: &BusTelemetry, delivery: Delivery<'_>) -> Span {
    if !spans::on(telemetry.enabled) {
        return Span::none();
    }
    let span = match delivery {
        Delivery::Batch(messages) => tracing::info_span!(
            target: spans::TARGET,
            parent: None,
            attr::SPAN_BUS_CONSUME,
            otel.name = Empty,
            otel.kind = "consumer",
            { attr::MESSAGING_SYSTEM } = telemetry.system,
            { attr::MESSAGING_DESTINATION_NAME } = messages.first().map(|m| &*m.destination),
            { attr::MESSAGING_OPERATION_TYPE } = attr::MESSAGING_OPERATION_PROCESS,
            { attr::MESSAGING_BATCH_MESSAGE_COUNT } = spans::int(messages.len()),
            { attr::DELIVERY_MODE } = attr::DELIVERY_BATCH,
        ),
        Delivery::Live(message) | Delivery::Redelivery(message, _) | Delivery::Replay(message) => {
            let (mode, attempt) = match delivery {
                Delivery::Redelivery(_, attempt) => {
                    (attr::DELIVERY_REDELIVERY, Some(i64::from(attempt)))
                }
                Delivery::Replay(_) => (attr::DELIVERY_REPLAY, None),
                _ => (attr::DELIVERY_LIVE, None),
            };
            tracing::info_span!(
                target: spans::TARGET,
                parent: None,
                attr::SPAN_BUS_CONSUME,
                otel.name = Empty,
                otel.kind = "consumer",
                { attr::MESSAGING_SYSTEM } = telemetry.system,
                { attr::MESSAGING_DESTINATION_NAME } = &*message.destination,
                { attr::MESSAGING_OPERATION_TYPE } = attr::MESSAGING_OPERATION_PROCESS,
                { attr::MESSAGING_MESSAGE_ID } = tracing::field::display(&message.message_id),
                { attr::EVENT_TYPE } = message.event.event_type.as_str(),
                { attr::AGGREGATE_TYPE } = message.event.aggregate_type(),
                { attr::AGGREGATE_ID } = message.event.aggregate_id(),
                { attr::DELIVERY_MODE } = mode,
                { attr::DELIVERY_ATTEMPT } = attempt,
            )
        }
    };
    if span.is_disabled() {
        return span;
    }
    spans::name(&span, telemetry.names.consume);
    match delivery {
        Delivery::Live(message) => {
            // Validated (and counted when missing or malformed) once, then extracted whole,
            // baggage included, as the parent.
            if propagation::stored_span_context(&message.headers).is_some() {
                let _ = span.set_parent(propagation::extract(&message.headers));
            }
        }
        Delivery::Redelivery(message, _) => {
            link(
                &span,
                message,
                propagation::stored_span_context(&message.headers),
            );
        }
        Delivery::Replay(message) => {
            link(
                &span,
                message,
                propagation::stored_span_context(&message.event.metadata),
            );
        }
        Delivery::Batch(messages) => {
            for message in messages {
                link(
                    &span,
                    message,
                    propagation::stored_span_context(&message.headers),
                );
            }
        }
    }
    span
}

/// Links `span` to a source message's context, naming the message on the link.
#[cfg(feature = "tracing")]
fn link(span: &Span, message: &BusMessage, context: Option<SpanContext>) {
    if let Some(context) = context {
        span.add_link_with_attributes(
            context,
            vec![KeyValue::new(
                attr::MESSAGING_MESSAGE_ID,
                message.message_id.to_string(),
            )],
        );
    }
}

/// `eventsource.event_bus.handle`, INTERNAL, child of the current (consume) span.
#[cfg(feature = "tracing")]
fn handle_span(telemetry: &BusTelemetry, handler: &str, message: &BusMessage) -> Span {
    if !spans::on(telemetry.enabled) {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: spans::TARGET,
        attr::SPAN_BUS_HANDLE,
        otel.name = Empty,
        { attr::HANDLER_NAME } = handler,
        { attr::EVENT_TYPE } = message.event.event_type.as_str(),
        { attr::MESSAGING_MESSAGE_ID } = tracing::field::display(&message.message_id),
    );
    spans::name(&span, telemetry.names.handle);
    span
}
