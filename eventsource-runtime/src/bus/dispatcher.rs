//! The consuming side of a bus: hands received messages to the subscribed handlers inside
//! the contract's consume and handle spans.

use std::sync::{Arc, PoisonError, RwLock};

use std::pin::pin;

use super::instrument::{self, Delivery, Dispatched};
use super::wire::DeliveryState;
use super::{
    BusMessage, BusTelemetry, EventHandler, HandlerError, HandlerFailure, Subscribe,
    UnknownHandler, WithBusTelemetry,
};
use crate::event::{DecodeError, EventEnvelope};
use crate::lineage::Lineage;
use crate::panic::CatchUnwind;

/// Hands messages to handlers: the consuming side every transport shares.
///
/// A transport calls [`deliver`](Self::deliver) with each message it receives (the
/// consume span is a child of the producer's context found in the message headers),
/// [`redeliver`](Self::redeliver) when it tries again after a failure,
/// [`deliver_batch`](Self::deliver_batch) for several messages at once, and
/// [`replay`](Self::replay) for stored events read back from a store (those three start a
/// new trace linked to each source message). Each interested handler runs in a handle span
/// under the consume span, inside the message's [`Lineage`] (a command it runs carries the
/// message's correlation id on, with the message as its cause); handlers run one after the other, in subscription order, and a
/// failing (or panicking) handler does not keep the others from the message. A message no
/// handler is interested in is left alone: no consume span, not counted as consumed.
///
/// Cheap to clone; clones share the handlers.
///
/// ```
/// use eventsource_runtime::bus::{BusMessage, BusTelemetry, Dispatcher, HandlerError, handler_fn};
/// use eventsource_runtime::event::{EventEnvelope, Metadata, StreamId};
///
/// // The consuming side of a (pretend) broker adapter.
/// let dispatcher = Dispatcher::new("orders", BusTelemetry::new("rabbitmq"));
/// dispatcher.subscribe(handler_fn("audit", |_event| async { Ok::<(), HandlerError>(()) }));
///
/// # let event = EventEnvelope {
/// #     event_id: uuid::Uuid::now_v7(), stream: StreamId::new("Order", "o-1"), version: 1,
/// #     position: 1, event_type: "OrderPlaced".into(), schema_version: 1,
/// #     timestamp: chrono::Utc::now(), payload: serde_json::json!({}).into(), metadata: Metadata::new(),
/// # };
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// // A message received from the broker, its headers as sent by the producer.
/// let received = BusMessage::new("orders", event).with_headers(Metadata::new());
/// let failures = dispatcher.deliver(&received).await;
/// assert!(failures.is_empty());
/// # });
/// ```
#[derive(Clone)]
pub struct Dispatcher {
    handlers: Arc<RwLock<Handlers>>,
    destination: Arc<str>,
    telemetry: Arc<BusTelemetry>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("destination", &self.destination)
            .field("handlers", &self.handler_names())
            .field("telemetry", &self.telemetry)
            .finish()
    }
}

impl WithBusTelemetry for Dispatcher {
    fn configure_telemetry(mut self, change: impl FnOnce(&mut BusTelemetry)) -> Self {
        change(Arc::make_mut(&mut self.telemetry));
        self
    }
}

/// The subscribed handlers, in subscription order: replaced whole by a subscription (rare),
/// so that each message takes them with one reference count, not a copy of the list.
type Handlers = Arc<[Arc<dyn EventHandler>]>;

/// A dispatcher is what the others subscribe through; its own
/// [`subscribe`](Dispatcher::subscribe) is the one they call.
impl Subscribe for Dispatcher {
    fn dispatcher(&self) -> &Dispatcher {
        self
    }
}

impl Dispatcher {
    /// A dispatcher with no handler, consuming from `destination` (named on replayed
    /// events' spans; received messages name their own).
    pub fn new(destination: impl Into<Arc<str>>, telemetry: BusTelemetry) -> Self {
        Self {
            handlers: Arc::default(),
            destination: destination.into(),
            telemetry: Arc::new(telemetry),
        }
    }

    /// A dispatcher with this one's handlers (shared: a handler subscribed to either is
    /// subscribed to both) whose consume spans name `group` as their consumer group: a
    /// broker group's retry consumer, which the broker knows by a name of its own.
    #[cfg(any(feature = "kafka", feature = "nats"))]
    pub(crate) fn for_consumer_group(&self, group: &str) -> Self {
        let mut telemetry = BusTelemetry::clone(&self.telemetry);
        telemetry.consumer_group = Some(group.to_owned());
        Self {
            handlers: Arc::clone(&self.handlers),
            destination: Arc::clone(&self.destination),
            telemetry: Arc::new(telemetry),
        }
    }

    /// Builder: the destination named on replayed events' spans.
    #[must_use]
    pub fn with_destination(mut self, destination: impl Into<Arc<str>>) -> Self {
        self.destination = destination.into();
        self
    }

    /// The telemetry settings.
    #[must_use]
    pub fn telemetry(&self) -> &BusTelemetry {
        &self.telemetry
    }

    /// The destination this dispatcher consumes from.
    #[must_use]
    pub fn destination(&self) -> &Arc<str> {
        &self.destination
    }

    /// Adds a handler; it receives the messages delivered from now on.
    pub fn subscribe(&self, handler: impl EventHandler) {
        self.subscribe_shared(Arc::new(handler));
    }

    /// Adds a handler that is already shared.
    pub fn subscribe_shared(&self, handler: Arc<dyn EventHandler>) {
        let mut handlers = self
            .handlers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *handlers = handlers.iter().cloned().chain([handler]).collect();
    }

    /// The subscribed handlers' names, in subscription order.
    #[must_use]
    pub fn handler_names(&self) -> Vec<String> {
        self.snapshot()
            .iter()
            .map(|h| h.name().to_owned())
            .collect()
    }

    /// Whether a message delivered now would have its consume span recorded: a consumer
    /// makes the transport's attributes ([`BusMessage::attributes`]) only then.
    #[cfg(any(feature = "kafka", feature = "rabbitmq"))]
    pub(crate) fn records_consume(&self) -> bool {
        instrument::consume_recorded(&self.telemetry)
    }

    fn snapshot(&self) -> Handlers {
        Arc::clone(&self.handlers.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Delivers a message as received: its consume span continues the producer's trace
    /// (the context in its headers); missing or malformed context starts a new trace and is
    /// counted, never an error. Returns the handlers' failures.
    pub async fn deliver(&self, message: &BusMessage) -> Vec<HandlerFailure> {
        if !self.wanted(message, None) {
            return Vec::new();
        }
        // Pinned where it is made: handed on by reference, not moved by value.
        let work = pin!(self.dispatch(std::slice::from_ref(message), None));
        instrument::consume(&self.telemetry, Delivery::Live(message), work).await
    }

    /// Delivers a message again, to the `handlers` named (those that failed on it), for
    /// delivery number `attempt` (2 for the first redelivery). Its consume span is a new
    /// root linked to the producer's context.
    pub async fn redeliver(
        &self,
        message: &BusMessage,
        attempt: u32,
        handlers: &[String],
    ) -> Vec<HandlerFailure> {
        if !self.wanted(message, Some(handlers)) {
            return Vec::new();
        }
        let work = pin!(self.dispatch(std::slice::from_ref(message), Some(handlers)));
        instrument::consume(
            &self.telemetry,
            Delivery::Redelivery(message, attempt),
            work,
        )
        .await
    }

    /// Delivers a message received with its [`DeliveryState`] (read from the wire): a first
    /// delivery as [`deliver`](Self::deliver) does, a later one as
    /// [`redeliver`](Self::redeliver) does, to the handlers it names (all of them when it
    /// names none).
    ///
    /// A name the group does not have (a handler renamed or removed since the message
    /// failed) is a failure of its own, [`UnknownHandler`], and the consume span ends with
    /// ERROR: such a message is never acknowledged unhandled. [`DeliveryState::after`]
    /// dead-letters it at once.
    pub async fn receive(
        &self,
        message: &BusMessage,
        state: &DeliveryState,
    ) -> Vec<HandlerFailure> {
        if !state.is_redelivery() {
            return self.deliver(message).await;
        }
        let attempt = state.attempt.max(2);
        if state.handlers.is_empty() {
            return self
                .redeliver(message, attempt, &self.handler_names())
                .await;
        }
        let subscribed = self.handler_names();
        let unknown: Vec<HandlerFailure> = state
            .handlers
            .iter()
            .filter(|name| !subscribed.contains(name))
            .map(|name| HandlerFailure {
                handler: name.clone(),
                message_id: message.message_id,
                event_type: message.event.event_type.to_string(),
                error: HandlerError::new(UnknownHandler::new(name.as_str())),
            })
            .collect();
        if unknown.is_empty() {
            return self.redeliver(message, attempt, &state.handlers).await;
        }
        let work = async {
            let only = Some(state.handlers.as_slice());
            let mut dispatched = self.dispatch(std::slice::from_ref(message), only).await;
            dispatched.failures.extend(unknown);
            dispatched
        };
        instrument::consume(
            &self.telemetry,
            Delivery::Redelivery(message, attempt),
            work,
        )
        .await
    }

    /// Delivers several messages in one consume span: a new root with one link per
    /// message and `messaging.batch.message_count`; a handle span per message and handler
    /// under it.
    pub async fn deliver_batch(&self, messages: &[BusMessage]) -> Vec<HandlerFailure> {
        let wanted: Vec<BusMessage> = messages
            .iter()
            .filter(|m| self.wanted(m, None))
            .cloned()
            .collect();
        if wanted.is_empty() {
            return Vec::new();
        }
        let work = self.dispatch(&wanted, None);
        instrument::consume(&self.telemetry, Delivery::Batch(&wanted), work).await
    }

    /// Delivers stored events (read back from a store, days later maybe) to every
    /// interested handler, each in a consume span that is a new root linked to the span
    /// that appended it (the context kept in the event's metadata).
    pub async fn replay(&self, events: &[EventEnvelope]) -> Vec<HandlerFailure> {
        let mut failures = Vec::new();
        for event in events {
            let message = BusMessage::new(Arc::clone(&self.destination), event.clone());
            if !self.wanted(&message, None) {
                continue;
            }
            let work = self.dispatch(std::slice::from_ref(&message), None);
            failures.extend(
                instrument::consume(&self.telemetry, Delivery::Replay(&message), work).await,
            );
        }
        failures
    }

    /// Whether a handler is interested in `message` (among those named, if `only`).
    fn wanted(&self, message: &BusMessage, only: Option<&[String]>) -> bool {
        self.snapshot()
            .iter()
            .any(|handler| interested(handler.as_ref(), message, only))
    }

    /// Runs every interested handler (or only those named) on each message, upcast by the
    /// handler's upcasters: a message that cannot be upcast fails for that handler.
    async fn dispatch(&self, messages: &[BusMessage], only: Option<&[String]>) -> Dispatched {
        let mut dispatched = Dispatched::default();
        let handlers = self.snapshot();
        for message in messages {
            let mut upcast_from = None;
            // What a command run by the handlers passes on: the message's correlation id,
            // the message as the cause. Read once a handler runs (a message no handler wants
            // leaves its metadata unread).
            let lineage = std::cell::OnceCell::new();
            let wanted = handlers
                .iter()
                .filter(|handler| interested(handler.as_ref(), message, only));
            for handler in wanted {
                let name = handler.name();
                let failure = |error| HandlerFailure {
                    handler: name.to_owned(),
                    message_id: message.message_id,
                    event_type: message.event.event_type.to_string(),
                    error,
                };
                let upcasters = handler.upcasters();
                let upcasted = match upcasters.upcast(&message.event) {
                    Ok(upcasted) => upcasted,
                    Err(error) => {
                        // The handler's failure: its handle span carries the exception, as
                        // for a failure of the handler itself.
                        let error = HandlerError::new(DecodeError::from(error));
                        let run = std::future::ready(Ok(Err(error)));
                        if let Err(error) =
                            instrument::handle(&self.telemetry, name, message, run).await
                        {
                            dispatched.failures.push(failure(error));
                        }
                        continue;
                    }
                };
                upcast_from = upcast_from.or(upcasted.from_version());
                for event in upcasted.events() {
                    if !handler.handles(&event.event_type) {
                        continue;
                    }
                    let lineage = lineage.get_or_init(|| Lineage::of_event(&message.event));
                    let process = pin!(lineage.clone().scope(handler.process(event)));
                    let run = CatchUnwind(process);
                    if let Err(error) =
                        instrument::handle(&self.telemetry, name, message, run).await
                    {
                        dispatched.failures.push(failure(error));
                        // The split's later events wait for the redelivery.
                        break;
                    }
                }
            }
            dispatched.upcasts.add(upcast_from);
        }
        dispatched
    }
}

/// Whether `handler` is interested in `message` (and named, if `only`).
fn interested(handler: &dyn EventHandler, message: &BusMessage, only: Option<&[String]>) -> bool {
    let event_type = &message.event.event_type;
    (handler.handles(event_type) || handler.upcasters().renames_or_splits(event_type))
        && only.is_none_or(|only| only.iter().any(|n| n == handler.name()))
}
