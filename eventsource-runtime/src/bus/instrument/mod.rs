//! The telemetry every event bus shares: the publish span (PRODUCER) and its context in the
//! message headers, for transports; the consume (CONSUMER) and handle (INTERNAL) spans and
//! the bus metrics, which the [`Dispatcher`](super::Dispatcher) records.
//!
//! Spans follow the bus's own switch ([`BusTelemetry::enabled`]) and the process switch;
//! metrics follow the process switch only (like the command metrics). Switched off, no span
//! is built and nothing is formatted. Without the `tracing` feature these calls run the
//! work and nothing else.

use std::future::Future;

use super::{BusError, BusMessage, BusTelemetry, HandlerError, HandlerFailure, Handling};
use crate::event::upcast::UpcastTally;
use crate::panic;
use crate::telemetry::attributes as attr;
use crate::telemetry::otel::{self, Span, SpanStart, Stopwatch, metrics};
use crate::telemetry::values::{Attr, Chain, DURATION_BOUNDARIES, Kind, SpanName};

mod describe;

use describe::{describe, describe_message, link, with_bus, with_correlation, with_operation};

static PUBLISHED: metrics::Counter = metrics::Counter::new(
    attr::METRIC_BUS_MESSAGES_PUBLISHED,
    "{message}",
    "Messages published on an event bus",
);

static PUBLISH_FAILURES: metrics::Counter = metrics::Counter::new(
    attr::METRIC_BUS_PUBLISH_FAILURES,
    "{message}",
    "Messages an event bus failed to publish",
);

static CONSUMED: metrics::Counter = metrics::Counter::new(
    attr::METRIC_BUS_MESSAGES_CONSUMED,
    "{message}",
    "Messages an event bus delivered to its handlers",
);

static DEAD_LETTERED: metrics::Counter = metrics::Counter::new(
    attr::METRIC_BUS_MESSAGES_DEAD_LETTERED,
    "{message}",
    "Messages moved to a consumer group's dead letters",
);

#[cfg(any(feature = "kafka", feature = "nats"))]
static SKIPPED: metrics::Counter = metrics::Counter::new(
    attr::METRIC_BUS_MESSAGES_SKIPPED,
    "{message}",
    "Messages a consumer group settled without handing them to a handler",
);

static HANDLER_DURATION: metrics::DurationHistogram = metrics::DurationHistogram::new(
    attr::METRIC_BUS_HANDLER_DURATION,
    "Duration of one event handler handling one message",
    &DURATION_BOUNDARIES,
);

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
/// use eventsource_runtime::bus::{BusError, BusMessage, BusTelemetry, instrument};
/// use eventsource_runtime::event::{EventEnvelope, Metadata, StreamId};
///
/// # let event = EventEnvelope {
/// #     event_id: uuid::Uuid::now_v7(), stream: StreamId::new("Order", "o-1"), version: 1,
/// #     position: 1, event_type: "OrderPlaced".into(), schema_version: 1,
/// #     timestamp: chrono::Utc::now(), payload: serde_json::json!({}).into(), metadata: Metadata::new(),
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
    mut message: BusMessage,
    send: F,
) -> Result<T, BusError>
where
    F: FnOnce(BusMessage) -> Fut,
    Fut: Future<Output = Result<T, BusError>>,
{
    let publishing = start_publish(telemetry, &mut message);
    let result = publishing.run(send(message)).await;
    publishing.end(&result);
    result
}

/// Starts the publish span of `message` (as [`publish`] does) and writes its context into
/// the message [`headers`](BusMessage::headers), for a transport that sends several
/// messages before their confirmations come back: it sends inside
/// [`run`](Publishing::run), then ends the span with the confirmation's outcome
/// ([`end`](Publishing::end)), so the span covers the send and the wait for the broker.
///
/// ```
/// use eventsource_runtime::bus::{BusError, BusMessage, BusTelemetry, instrument};
/// use eventsource_runtime::event::{EventEnvelope, Metadata, StreamId};
///
/// # let event = EventEnvelope {
/// #     event_id: uuid::Uuid::now_v7(), stream: StreamId::new("Order", "o-1"), version: 1,
/// #     position: 1, event_type: "OrderPlaced".into(), schema_version: 1,
/// #     timestamp: chrono::Utc::now(), payload: serde_json::json!({}).into(), metadata: Metadata::new(),
/// # };
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let telemetry = BusTelemetry::new("rabbitmq");
/// let mut message = BusMessage::new("orders", event);
/// let publishing = instrument::start_publish(&telemetry, &mut message);
/// // Send now (the headers carry the span's context) ...
/// let sent = publishing.run(async { Ok::<_, BusError>(()) }).await;
/// // ... send the next messages, then wait for this one's confirmation and end its span.
/// publishing.end(&sent);
/// # });
/// ```
pub fn start_publish(telemetry: &BusTelemetry, message: &mut BusMessage) -> Publishing {
    if !otel::enabled() {
        return Publishing { recorded: None };
    }
    let name = SpanName::Static(telemetry.names.publish);
    let mut span = SpanStart::new(telemetry.enabled, name, Kind::Producer);
    let operation = (attr::MESSAGING_OPERATION_SEND, telemetry.publish_operation);
    describe(&mut span, telemetry, message, operation);
    let span = span.start();
    span.inject(&mut message.headers);
    Publishing {
        recorded: Some(Recorded {
            span,
            system: telemetry.system,
            destination: std::sync::Arc::clone(&message.destination),
            event_type: message.event.event_type.to_string(),
        }),
    }
}

/// A message's publish span, started by [`start_publish`], ended by
/// [`end`](Publishing::end) (or, if dropped, ended without a status).
#[must_use = "end the span with the publish's outcome"]
pub struct Publishing {
    /// `None` with the process switch off: nothing to record.
    recorded: Option<Recorded>,
}

impl std::fmt::Debug for Publishing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publishing")
            .field("recording", &self.recorded.is_some())
            .finish_non_exhaustive()
    }
}

struct Recorded {
    span: Span,
    system: &'static str,
    destination: std::sync::Arc<str>,
    event_type: String,
}

impl Publishing {
    /// Runs `work` (the transport's send) inside the span.
    pub async fn run<F: Future>(&self, work: F) -> F::Output {
        match &self.recorded {
            Some(recorded) => recorded.span.run(work).await,
            None => work.await,
        }
    }

    /// Ends the span: counts the message when `outcome` is `Ok`; an `Err` ends it with
    /// ERROR and one `exception` event.
    pub fn end<T>(self, outcome: &Result<T, BusError>) {
        let Some(recorded) = self.recorded else {
            return;
        };
        match outcome {
            Ok(_) => count_message(
                &PUBLISHED,
                recorded.system,
                &recorded.destination,
                &recorded.event_type,
            ),
            Err(error) => {
                let error_type = match error {
                    BusError::Unavailable(_) => "BusError::Unavailable",
                    BusError::Rejected { .. } => "BusError::Rejected",
                    BusError::Unconfirmed { .. } => "BusError::Unconfirmed",
                };
                recorded.span.record_error(error_type, &Chain(error));
                PUBLISH_FAILURES.add(
                    1,
                    [
                        (attr::MESSAGING_SYSTEM, Attr::Static(recorded.system)),
                        (
                            attr::MESSAGING_DESTINATION_NAME,
                            Attr::Str(&recorded.destination),
                        ),
                        (
                            attr::METRIC_ATTR_EVENT_TYPE,
                            Attr::Str(&recorded.event_type),
                        ),
                        (attr::ERROR_TYPE, Attr::Static(error_type)),
                    ],
                );
            }
        }
    }
}

/// Runs `work` with the trace context stored with `event` (in its metadata) as the current
/// context, so that a publish span started in it ([`start_publish`]) is a child of the span
/// that appended the event: what a relay's [`EventBus::publish_stored`] does for each
/// message it sends. Without a valid stored context, or with telemetry off, `work` simply
/// runs.
///
/// ```
/// use eventsource_runtime::bus::{BusError, BusMessage, BusTelemetry, instrument};
/// use eventsource_runtime::event::{EventEnvelope, Metadata, StreamId};
///
/// # let event = EventEnvelope {
/// #     event_id: uuid::Uuid::now_v7(), stream: StreamId::new("Order", "o-1"), version: 1,
/// #     position: 1, event_type: "OrderPlaced".into(), schema_version: 1,
/// #     timestamp: chrono::Utc::now(), payload: serde_json::json!({}).into(), metadata: Metadata::new(),
/// # };
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let telemetry = BusTelemetry::new("my-broker");
/// let mut message = BusMessage::new("orders", event.clone());
/// // Several messages in flight: start each publish span in its event's stored context...
/// let publishing = instrument::in_stored_context(&event, async {
///     instrument::start_publish(&telemetry, &mut message)
/// })
/// .await;
/// // ... send, and end each span when the broker acknowledged its message.
/// publishing.end(&Ok::<(), BusError>(()));
/// # });
/// ```
///
/// [`EventBus::publish_stored`]: super::EventBus::publish_stored
pub async fn in_stored_context<F: Future>(
    event: &crate::event::EventEnvelope,
    work: F,
) -> F::Output {
    otel::in_stored_context(&event.metadata, work).await
}

/// Counts one message on a bus counter.
fn count(
    counter: &'static metrics::Counter,
    telemetry: &BusTelemetry,
    destination: &str,
    event_type: &str,
) {
    count_message(counter, telemetry.system, destination, event_type);
}

/// Counts one message of `system` on a bus counter.
fn count_message(
    counter: &'static metrics::Counter,
    system: &'static str,
    destination: &str,
    event_type: &str,
) {
    counter.add(
        1,
        [
            (attr::MESSAGING_SYSTEM, Attr::Static(system)),
            (attr::MESSAGING_DESTINATION_NAME, Attr::Str(destination)),
            (attr::METRIC_ATTR_EVENT_TYPE, Attr::Str(event_type)),
        ],
    );
}

/// Counts one message `system`'s consumer group (or the in-memory bus) moved to its dead
/// letters.
pub(crate) fn dead_lettered(system: &'static str, message: &BusMessage) {
    count_message(
        &DEAD_LETTERED,
        system,
        &message.destination,
        &message.event.event_type,
    );
}

/// Why a consumer group settled a message without handing it to a handler (the Kafka and
/// NATS groups skip; RabbitMQ's bindings leave nothing to skip).
#[cfg(any(feature = "kafka", feature = "nats"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skipped {
    /// No binding of the group names the event (routine where a topic carries more
    /// events than the group binds): counted, logged at DEBUG.
    NotBound,
    /// The event's aggregate type is not the one its topic or subject is for (a producer
    /// of another kind wrote it there): counted, logged at WARN.
    Misrouted,
}

/// `system`'s consumer group `group` settled the message from `destination` carrying an
/// event of `event_type` (`aggregate_type`) without handing it over: the count and a line.
#[cfg(any(feature = "kafka", feature = "nats"))]
pub(crate) fn skipped(
    system: &'static str,
    group: &str,
    destination: &str,
    aggregate_type: &str,
    event_type: &str,
    why: Skipped,
) {
    let reason = match why {
        Skipped::NotBound => "not_bound",
        Skipped::Misrouted => "misrouted",
    };
    SKIPPED.add(
        1,
        [
            (attr::MESSAGING_SYSTEM, Attr::Static(system)),
            (attr::MESSAGING_DESTINATION_NAME, Attr::Str(destination)),
            (attr::METRIC_ATTR_SKIP_REASON, Attr::Static(reason)),
        ],
    );
    match why {
        Skipped::NotBound => crate::telemetry::otel::log::log_debug!(
            group,
            destination,
            aggregate_type,
            event_type,
            "message skipped: no binding of the group names its event"
        ),
        Skipped::Misrouted => crate::telemetry::otel::log::log_warn!(
            group,
            destination,
            aggregate_type,
            event_type,
            "message skipped: its event's aggregate type is not the one its destination is for"
        ),
    }
}

/// What a delivery did: the handlers' failures, and the messages it upcast (for the consume
/// span).
#[derive(Default)]
pub(crate) struct Dispatched {
    pub(crate) failures: Vec<HandlerFailure>,
    pub(crate) upcasts: UpcastTally,
}

/// How messages reach the handlers; decides the consume span's parent and links.
#[derive(Debug, Clone, Copy)]
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
    Fut: Future<Output = Dispatched>,
{
    if !otel::enabled() {
        return work.await.failures;
    }
    for message in delivery.messages() {
        let event_type = &message.event.event_type;
        count(&CONSUMED, telemetry, &message.destination, event_type);
    }
    let span = consume_span(telemetry, delivery);
    let Dispatched { failures, upcasts } = span.run(work).await;
    upcasts.record(&span);
    match failures.as_slice() {
        [] => {}
        [only] => span.set_error(&Chain(only)),
        [first, ..] => span.set_error(&format_args!(
            "{} handler failures; the first: {}",
            failures.len(),
            Chain(first)
        )),
    }
    failures
}

/// Runs one handler on one message (`run`, which caught any panic) inside the handle span;
/// records the handler's duration; a message the handler skipped as a duplicate gets
/// `eventsource.handler.duplicate = true`; a failure (or a panic, turned into a
/// [`HandlerError`]) ends the span with ERROR and one `exception` event.
pub(crate) async fn handle<Fut>(
    telemetry: &BusTelemetry,
    handler: &str,
    message: &BusMessage,
    run: Fut,
) -> Result<Handling, HandlerError>
where
    Fut: Future<Output = Result<Result<Handling, HandlerError>, panic::Payload>>,
{
    let event_type = &message.event.event_type;
    let mut span = SpanStart::new(
        telemetry.enabled,
        SpanName::Static(telemetry.names.handle),
        Kind::Internal,
    );
    span.str(attr::HANDLER_NAME, handler)
        .str(attr::EVENT_TYPE, event_type)
        .attr(
            attr::MESSAGING_MESSAGE_ID,
            Attr::Display(&message.message_id),
        );
    with_correlation(&mut span, message);
    let span = span.start();
    let timer = Stopwatch::start();
    let outcome = span.run(run).await;
    let status = match outcome {
        Ok(Ok(_)) => attr::STATUS_SUCCESS,
        Ok(Err(_)) | Err(_) => attr::STATUS_ERROR,
    };
    HANDLER_DURATION.record(
        timer.elapsed(),
        [
            (attr::METRIC_ATTR_HANDLER_NAME, Attr::Str(handler)),
            (attr::METRIC_ATTR_EVENT_TYPE, Attr::Str(event_type)),
            (attr::METRIC_ATTR_HANDLER_STATUS, Attr::Static(status)),
        ],
    );
    match outcome {
        Ok(Ok(Handling::Duplicate)) => {
            span.set(attr::HANDLER_DUPLICATE, Attr::Bool(true));
            Ok(Handling::Duplicate)
        }
        Ok(Ok(handling)) => Ok(handling),
        Ok(Err(error)) => {
            span.record_error("HandlerError", &Chain(&error));
            Err(error)
        }
        Err(payload) => {
            span.record_panic(&*payload);
            Err(HandlerError::panicked(&*payload))
        }
    }
}

/// `eventsource.event_bus.consume`, CONSUMER; its parent or links by delivery.
fn consume_span(telemetry: &BusTelemetry, delivery: Delivery<'_>) -> Span {
    let name = SpanName::Static(telemetry.names.consume);
    let mut span = SpanStart::new(telemetry.enabled, name, Kind::Consumer);
    with_bus(&mut span, telemetry);
    if let Some(group) = &telemetry.consumer_group {
        span.str(attr::MESSAGING_CONSUMER_GROUP_NAME, group);
    }
    let message = match delivery {
        Delivery::Batch(messages) => {
            span.root();
            if let Some(first) = messages.first() {
                span.str(attr::MESSAGING_DESTINATION_NAME, &first.destination);
            }
            let operation = (
                attr::MESSAGING_OPERATION_PROCESS,
                telemetry.consume_operation,
            );
            with_operation(&mut span, operation)
                .int(attr::MESSAGING_BATCH_MESSAGE_COUNT, messages.len())
                .static_str(attr::DELIVERY_MODE, attr::DELIVERY_BATCH);
            for message in messages {
                link(&mut span, &message.headers, message);
            }
            return span.start();
        }
        Delivery::Live(message) | Delivery::Redelivery(message, _) | Delivery::Replay(message) => {
            message
        }
    };
    match delivery {
        // Validated (and counted when missing or malformed), then extracted whole, baggage
        // included, as the parent.
        Delivery::Live(_) => span.remote_parent(&message.headers),
        _ => span.root(),
    };
    let operation = (
        attr::MESSAGING_OPERATION_PROCESS,
        telemetry.consume_operation,
    );
    describe_message(&mut span, message, operation);
    match delivery {
        Delivery::Redelivery(_, attempt) => {
            span.static_str(attr::DELIVERY_MODE, attr::DELIVERY_REDELIVERY)
                .int(attr::DELIVERY_ATTEMPT, attempt);
            link(&mut span, &message.headers, message);
        }
        Delivery::Replay(_) => {
            span.static_str(attr::DELIVERY_MODE, attr::DELIVERY_REPLAY);
            link(&mut span, &message.event.metadata, message);
        }
        _ => {
            span.static_str(attr::DELIVERY_MODE, attr::DELIVERY_LIVE);
        }
    }
    span.start()
}

/// Whether a message's consume span would be recorded now: a transport's own attributes
/// ([`BusMessage::attributes`]) are made for it alone.
#[cfg(any(feature = "kafka", feature = "rabbitmq"))]
pub(crate) fn consume_recorded(telemetry: &BusTelemetry) -> bool {
    SpanStart::would_record(telemetry.enabled)
}
