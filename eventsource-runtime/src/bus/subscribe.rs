//! What handlers subscribe to: a bus, a broker's consumer group, a dispatcher.

use std::future::Future;

use super::{Dispatcher, EventHandler, HandlerError, handler_fn};
use crate::event::EventEnvelope;

/// Anything handlers subscribe to: the [`InMemoryEventBus`](super::InMemoryEventBus), a
/// broker's consumer group, a [`Dispatcher`]. In the [prelude](crate::prelude).
///
/// An implementation gives its [`dispatcher`](Self::dispatcher); the subscriptions come with
/// it. Code that wires handlers can then take any of them:
///
/// ```
/// use eventsource_runtime::prelude::*;
///
/// fn wire(to: &impl Subscribe) {
///     to.subscribe_fn("audit", |event: EventEnvelope| async move {
///         println!("{}", event.event_type);
///         Ok::<_, HandlerError>(())
///     });
/// }
///
/// let bus = InMemoryEventBus::new();
/// wire(&bus);
/// assert_eq!(bus.dispatcher().handler_names(), ["audit"]);
/// ```
pub trait Subscribe {
    /// The handlers' side: subscriptions, telemetry settings.
    fn dispatcher(&self) -> &Dispatcher;

    /// Adds a handler; it receives the messages delivered from now on.
    fn subscribe(&self, handler: impl EventHandler)
    where
        Self: Sized,
    {
        self.dispatcher().subscribe(handler);
    }

    /// Adds a handler made of a name and an async closure receiving each event (see
    /// [`handler_fn`]).
    fn subscribe_fn<F, Fut, E>(&self, name: &'static str, handle: F)
    where
        Self: Sized,
        F: Fn(EventEnvelope) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<HandlerError>,
    {
        self.dispatcher().subscribe(handler_fn(name, handle));
    }
}
