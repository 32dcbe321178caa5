//! [`Payload`]: an event's JSON text.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::shared_text::write_shared;

/// An event's (or a snapshot's) payload: its JSON text, always valid JSON.
///
/// A typed event is serialized straight into it and decoded straight out of it, and the stores
/// keep the text as it is: one serialization on the way in, one parse on the way out, no
/// `serde_json::Value` in between. Cloning shares the text.
///
/// ```
/// use eventsource_runtime::event::Payload;
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Deposited { amount: u64 }
///
/// let payload = Payload::from_serialize(&Deposited { amount: 12 })?;
/// assert_eq!(payload.as_str(), r#"{"amount":12}"#);
/// assert_eq!(payload.decode::<Deposited>()?, Deposited { amount: 12 });
/// assert_eq!(payload.to_value()["amount"], 12);
///
/// // From a `serde_json::Value`, or from text (checked).
/// assert_eq!(Payload::from(serde_json::json!({ "amount": 12 })), payload);
/// assert!(Payload::from_json("{\"amount\": 12").is_err());
/// # Ok::<(), serde_json::Error>(())
/// ```
///
/// Two payloads are equal when they hold the same JSON value: a database may give back the
/// text with other spacing or key order (PostgreSQL's `jsonb` does).
///
/// Serialized, a payload is its JSON itself (not a string holding it). It deserializes
/// through serde_json, from text or from a `serde_json::Value`, as `RawValue` does; formats
/// other than JSON have no raw JSON to give it.
///
/// The payload of an event this process has just saved also carries the event as it was
/// recorded (see [`EventEnvelope::decode`](super::EventEnvelope::decode)).
#[derive(Clone)]
pub struct Payload {
    /// Always valid JSON, without surrounding blanks.
    json: Arc<str>,
    /// The value the JSON was serialized from, when this process recorded it; or, for a
    /// payload an upcaster made, an [`UpcastFrom`] (for the spans of the code it is handed
    /// to), kept in the same slot so that a payload stays two words.
    recorded: Option<Recorded>,
}

/// What an upcaster's payload carries in its `recorded` slot: the stored schema version,
/// and the event as a typed upcaster made it, if one did.
struct UpcastMark {
    from: u32,
    event: Option<Recorded>,
}

/// `value` as shared JSON text, serialized once (see [`write_shared`]).
pub(crate) fn to_shared_json<T: Serialize + ?Sized>(
    value: &T,
) -> Result<Arc<str>, serde_json::Error> {
    write_shared(|buffer| serde_json::to_writer(buffer, value))
}

/// Serializes JSON text as the JSON itself (not a string holding it). serde_json has no
/// unchecked way to borrow text as a `RawValue`, so it is parsed through once more (it is
/// valid JSON, so this never fails); stored text is serialized only to leave the process.
pub(crate) fn serialize_raw<S: serde::Serializer>(
    json: &str,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let raw: &RawValue = serde_json::from_str(json).map_err(serde::ser::Error::custom)?;
    raw.serialize(serializer)
}

/// A recorded event, shared by the clones of its envelope (named by the derive's expansion
/// through `__private`; this module is private).
pub type Recorded = Arc<dyn Any + Send + Sync>;

impl Payload {
    /// Serializes `value`.
    ///
    /// # Errors
    /// When `value` cannot be represented as JSON (a map with non-string keys, say).
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        to_shared_json(value).map(Self::from_checked)
    }

    fn from_raw(raw: &RawValue) -> Self {
        Self::from_checked(Arc::from(raw.get()))
    }

    /// Shared JSON text a store wrote itself, or serde_json did (so known to be valid).
    pub(crate) fn from_checked(json: Arc<str>) -> Self {
        Self {
            json,
            recorded: None,
        }
    }

    /// The stored schema version, when an upcaster made this payload.
    pub(crate) fn upcast_from(&self) -> Option<u32> {
        let recorded = self.recorded.as_deref()?;
        recorded.downcast_ref::<UpcastMark>().map(|mark| mark.from)
    }

    /// Marks the payload as made by an upcaster from stored version `version`, with the
    /// event a typed upcaster made (decoding it then clones it, as for a recorded one).
    pub(crate) fn mark_upcast(&mut self, from: u32, event: Option<Recorded>) {
        self.recorded = Some(Arc::new(UpcastMark { from, event }));
    }

    /// The shared JSON text, for a store to keep.
    pub(crate) fn shared_json(&self) -> &Arc<str> {
        &self.json
    }

    /// Attaches the value the JSON was serialized from.
    pub(crate) fn set_recorded(&mut self, recorded: Recorded) {
        self.recorded = Some(recorded);
    }

    /// The value the JSON was serialized from, if this process recorded it as a `T`.
    pub(crate) fn recorded<T: Any>(&self) -> Option<&T> {
        let recorded = self.recorded.as_deref()?;
        match recorded.downcast_ref::<T>() {
            Some(event) => Some(event),
            None => recorded
                .downcast_ref::<UpcastMark>()?
                .event
                .as_deref()?
                .downcast_ref(),
        }
    }

    /// Takes JSON text, checking that it is JSON.
    ///
    /// # Errors
    /// When `json` is not valid JSON.
    pub fn from_json(json: impl Into<String>) -> Result<Self, serde_json::Error> {
        RawValue::from_string(json.into()).map(|raw| Self::from_raw(&raw))
    }

    /// The JSON text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.json
    }

    /// Deserializes the payload into `T`.
    ///
    /// # Errors
    /// When the payload does not fit `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.json)
    }

    /// The payload as a `serde_json::Value`, for code that walks it.
    #[must_use]
    pub fn to_value(&self) -> serde_json::Value {
        // Valid JSON always parses into a `Value`.
        self.decode().unwrap_or_default()
    }
}

impl From<serde_json::Value> for Payload {
    fn from(value: serde_json::Value) -> Self {
        Self::from(&value)
    }
}

impl From<&serde_json::Value> for Payload {
    fn from(value: &serde_json::Value) -> Self {
        // A `Value` always serializes (its keys are strings); `null` is never reached.
        let json = to_shared_json(value).unwrap_or_else(|_| Arc::from("null"));
        Self::from_checked(json)
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str() || self.to_value() == other.to_value()
    }
}

impl PartialEq<serde_json::Value> for Payload {
    fn eq(&self, other: &serde_json::Value) -> bool {
        self.to_value() == *other
    }
}

impl PartialEq<Payload> for serde_json::Value {
    fn eq(&self, other: &Payload) -> bool {
        *self == other.to_value()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_raw(&self.json, serializer)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(|raw| Self::from_raw(&raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_compare_as_json_values_and_travel_as_raw_json() {
        let compact = Payload::from_json(r#"{"a":1,"b":[true,null]}"#).unwrap();
        let spaced = Payload::from_json("{\"b\": [true, null],\n \"a\": 1}").unwrap();
        assert_eq!(compact, spaced);
        assert_ne!(
            compact,
            Payload::from(serde_json::json!({ "a": 2, "b": [true, null] }))
        );
        assert_eq!(spaced, serde_json::json!({ "a": 1, "b": [true, null] }));

        // Inside another document it is the JSON itself, not a string holding it.
        #[derive(Serialize, Deserialize)]
        struct Wrapper {
            payload: Payload,
        }
        let text = serde_json::to_string(&Wrapper {
            payload: compact.clone(),
        })
        .unwrap();
        assert_eq!(text, r#"{"payload":{"a":1,"b":[true,null]}}"#);
        let back: Wrapper = serde_json::from_str(&text).unwrap();
        assert_eq!(back.payload.as_str(), compact.as_str());

        let from_value: Wrapper =
            serde_json::from_value(serde_json::json!({ "payload": { "a": 1 } })).unwrap();
        assert_eq!(from_value.payload.as_str(), r#"{"a":1}"#);

        assert!(Payload::from_json("{").is_err());
        assert!(Payload::from_serialize(&std::collections::HashMap::from([((1, 2), 3)])).is_err());
    }
}
