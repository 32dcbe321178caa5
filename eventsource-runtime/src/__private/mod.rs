//! Support for the code the macros generate. Not a public API: it may change in any
//! release.

pub use serde;
pub use serde_json::Error as JsonError;
pub use serde_json::Value as JsonValue;

/// An event a typed upcaster made (see `DomainEvent::from_typed`).
pub type TypedEvent = Box<dyn std::any::Any + Send + Sync>;

pub use crate::event::Payload;

// The runtime items the macros' expansions name, so that generated code reaches the
// runtime only through `::eventsource_runtime::__private::...` and does not depend on where
// the public API keeps them. The `#[traced]` support (tracing feature) is `traced`.
pub use crate::aggregate::{Aggregate, Apply};
pub use crate::command::{Command, Handle, HandlerTelemetry};
pub use crate::event::upcast::Upcasters;
pub use crate::event::{DecodeError, DomainEvent, EventEnvelope, EventType};
pub use crate::projection::{Projection, ProjectionError};
pub use crate::telemetry::toggles::is_enabled;
pub use async_trait::async_trait;

pub mod projection;

/// Serializes one event's payload.
///
/// # Errors
/// When the payload cannot be represented as JSON.
#[inline]
pub fn to_payload<T: EventType>(event: &T) -> Result<Payload, serde_json::Error> {
    Payload::from_serialize(event)
}

/// Deserializes one event's payload, or clones the event it was serialized from when this
/// process recorded it (see [`EventEnvelope::decode`]).
///
/// # Errors
/// [`DecodeError::Payload`] when it does not fit `T`.
#[inline]
pub fn from_payload<T: EventType + Clone>(payload: &Payload) -> Result<T, DecodeError> {
    if let Some(event) = payload.recorded::<T>() {
        return Ok(event.clone());
    }
    payload
        .decode::<T>()
        .map_err(|source| DecodeError::Payload {
            event_type: T::EVENT_TYPE.to_owned(),
            source,
        })
}

/// Deserializes one event's payload parsed already (by an upcaster).
///
/// # Errors
/// [`DecodeError::Payload`] when it does not fit `T`.
#[inline]
pub fn from_value<T: EventType>(payload: serde_json::Value) -> Result<T, DecodeError> {
    serde_json::from_value(payload).map_err(|source| DecodeError::Payload {
        event_type: T::EVENT_TYPE.to_owned(),
        source,
    })
}

/// The upcasters `upcasters = path` names: a `fn() -> Upcasters` (the path is spanned at
/// the user's token, so a function of another signature is reported there).
#[inline]
pub fn registered_upcasters(register: fn() -> Upcasters) -> Upcasters {
    register()
}

pub mod aggregate_id;

/// An event as its saved envelope carries it: what [`from_payload`] looks for.
pub use crate::event::payload::Recorded;

/// One variant's event, as its saved envelope carries it.
#[inline]
pub fn recorded<T: EventType>(event: T) -> Recorded {
    std::sync::Arc::new(event)
}

/// The error for a type name no variant carries.
#[cold]
#[must_use]
pub fn unknown_event_type(event_type: &str, known: &'static [&'static str]) -> DecodeError {
    DecodeError::UnknownEventType {
        event_type: event_type.to_owned(),
        known,
    }
}

/// Stands in for the event enum when `#[derive(Aggregate)]` reported an error, so the user
/// sees that error alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Unexpanded {}

impl crate::event::DomainEvent for Unexpanded {
    const EVENT_TYPES: &'static [&'static str] = &[];
    fn event_type(&self) -> &'static str {
        match *self {}
    }
    fn to_payload(&self) -> Result<Payload, serde_json::Error> {
        match *self {}
    }
    fn from_payload(event_type: &str, _: &Payload) -> Result<Self, DecodeError> {
        Err(unknown_event_type(event_type, Self::EVENT_TYPES))
    }
}

#[cfg(feature = "tracing")]
pub mod traced;
