//! [`Metadata`]: the string entries stored with each event.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Free-form string metadata stored with each event.
///
/// It carries the correlation and causation ids and the W3C trace context
/// (`traceparent`, `tracestate`, `baggage`) written at append time, so that whoever reads
/// the event later can link back to the command that produced it. Keys are kept sorted so
/// the stored form is stable.
///
/// Read back from JSON, a value that is not a string (written by another tool, say) is kept
/// as its JSON text instead of making the event unreadable: the number `7` reads as `"7"`,
/// an object as its compact JSON.
///
/// ```
/// use eventsource_runtime::event::Metadata;
///
/// let stored = r#"{"correlation_id": "c-1", "retries": 7, "origin": {"app": "legacy"}}"#;
/// let metadata: Metadata = serde_json::from_str(stored).unwrap();
/// assert_eq!(metadata.correlation_id(), Some("c-1"));
/// assert_eq!(metadata.get("retries"), Some("7"));
/// assert_eq!(metadata.get("origin"), Some(r#"{"app":"legacy"}"#));
/// ```
///
/// Metadata read from a store keeps its JSON text and reads it into entries on first use:
/// loading a stream does not pay for metadata nobody looks at.
///
/// Cheap to clone: clones share the entries until one of them changes. The lineage a
/// command stamps for itself (one new id, its correlation and causation id) is kept inline,
/// as the id's text, with nothing allocated.
#[derive(Clone, Default)]
pub struct Metadata(Repr);

/// What metadata holds.
#[derive(Clone, Default)]
enum Repr {
    /// Nothing: every event of a command without metadata carries and clones a tag.
    #[default]
    Empty,
    /// A command's own lineage: `correlation_id` and `causation_id` both this new id's text.
    /// The most common metadata of all, so kept without entries, text or an allocation.
    Lineage(IdText),
    /// Anything else, shared by clones.
    Shared(Arc<Entries>),
}

/// A UUID's hyphenated, lower-case text.
pub(crate) type IdText = [u8; uuid::fmt::Hyphenated::LENGTH];

/// What metadata other than [`Repr::Empty`] and [`Repr::Lineage`] holds.
#[derive(Clone, Default)]
struct Entries {
    /// The entries, once read (from `stored`, or given); sorted by key.
    read: OnceLock<BTreeMap<String, String>>,
    /// What the entries are read from on first use, until one changes.
    stored: Stored,
}

/// Metadata as it came, before it is read into entries.
#[derive(Clone, Default)]
enum Stored {
    /// Nothing: the entries were given.
    #[default]
    Nothing,
    /// A JSON object (read from a store).
    Json(Arc<str>),
    /// A W3C `traceparent`, alone or beside a command's own lineage (its one id as both
    /// ids): what a traced append writes into an event with no metadata of its own, or with
    /// only the lineage its command stamped, kept inline (no text to allocate for every
    /// traced event).
    Traceparent {
        lineage: Option<IdText>,
        traceparent: [u8; TRACEPARENT_LEN],
    },
}

/// The length of a version-00 `traceparent` (`00-{32}-{16}-{2}`).
pub(crate) const TRACEPARENT_LEN: usize = 55;

impl Stored {
    /// The JSON object, if any. (Neither a `traceparent` nor an id needs escaping.)
    fn json(&self) -> Option<Cow<'_, str>> {
        match self {
            Self::Nothing => None,
            Self::Json(json) => Some(Cow::Borrowed(json)),
            Self::Traceparent {
                lineage,
                traceparent,
            } => {
                let traceparent = ascii(traceparent);
                Some(Cow::Owned(match lineage {
                    Some(id) => lineage_json(ascii(id), Some(traceparent)),
                    None => format!(r#"{{"traceparent":"{traceparent}"}}"#),
                }))
            }
        }
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        read_entries(deserializer).map(Self::from_entries)
    }
}

/// A JSON object's entries, a value that is not a string as its JSON text.
fn read_entries<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    /// One value: a string as it is, anything else as its JSON text.
    struct Text(String);

    impl<'de> Deserialize<'de> for Text {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            Ok(Self(match serde_json::Value::deserialize(deserializer)? {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            }))
        }
    }

    let entries = BTreeMap::<String, Text>::deserialize(deserializer)?;
    Ok(entries.into_iter().map(|(k, Text(v))| (k, v)).collect())
}

impl Serialize for Metadata {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Repr::Shared(entries) if entries.read.get().is_none() => match entries.stored.json() {
                Some(json) => super::payload::serialize_raw(&json, serializer),
                None => serializer.collect_map(self.iter()),
            },
            _ => serializer.collect_map(self.iter()),
        }
    }
}

impl PartialEq for Metadata {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Metadata {}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Entries<'a>(&'a Metadata);
        impl fmt::Debug for Entries<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map().entries(self.0.iter()).finish()
            }
        }
        f.debug_tuple("Metadata").field(&Entries(self)).finish()
    }
}

impl Metadata {
    /// Key of the correlation id: the id shared by everything one request caused.
    pub const CORRELATION_ID: &'static str = "correlation_id";
    /// Key of the causation id: the id of the message (command or event) that caused this one.
    pub const CAUSATION_ID: &'static str = "causation_id";
    /// Key of the id of the command that produced the event, stored by
    /// [`CommandService::execute_once`](crate::command::CommandService::execute_once) (or
    /// given in the metadata of
    /// [`execute_with_metadata`](crate::command::CommandService::execute_with_metadata)),
    /// so that a retry of the same command is recognised.
    ///
    /// ```
    /// use eventsource_runtime::event::Metadata;
    ///
    /// let metadata = Metadata::new().with(Metadata::COMMAND_ID, "req-42");
    /// assert_eq!(metadata.command_id(), Some("req-42"));
    /// ```
    pub const COMMAND_ID: &'static str = "command_id";
    /// Key of the W3C `traceparent` of the span that appended the event.
    pub const TRACEPARENT: &'static str = "traceparent";
    /// Key of the W3C `tracestate` that travels with [`TRACEPARENT`](Self::TRACEPARENT).
    pub const TRACESTATE: &'static str = "tracestate";
    /// Key of the W3C `baggage` in force when the event was appended.
    pub const BAGGAGE: &'static str = "baggage";

    /// Empty metadata.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn from_entries(entries: BTreeMap<String, String>) -> Self {
        if entries.is_empty() {
            return Self::new();
        }
        Self(Repr::Shared(Arc::new(Entries {
            read: OnceLock::from(entries),
            stored: Stored::Nothing,
        })))
    }

    /// Metadata kept as JSON text (an object), as a store reads it back: checked now, read
    /// into entries on first use. A store of your own can give its envelopes metadata this
    /// way, so that loads do not pay for entries nobody reads.
    ///
    /// ```
    /// use eventsource_runtime::event::Metadata;
    ///
    /// let metadata = Metadata::from_json(r#"{"correlation_id": "c-1"}"#)?;
    /// assert_eq!(metadata.correlation_id(), Some("c-1"));
    /// assert!(Metadata::from_json("[1, 2]").is_err());
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    ///
    /// # Errors
    /// When `json` is not JSON, or not an object.
    pub fn from_json(json: impl Into<String>) -> Result<Self, serde_json::Error> {
        let json = json.into();
        let raw = RawValue::from_string(json)?;
        if !raw.get().trim_start().starts_with('{') {
            return Err(<serde_json::Error as serde::de::Error>::custom(
                "metadata is not a JSON object",
            ));
        }
        Ok(Self::from_checked(Arc::from(raw.get())))
    }

    /// Metadata from JSON text known to be an object (what this crate stored itself).
    pub(crate) fn from_checked(stored: Arc<str>) -> Self {
        Self::stored(Stored::Json(stored))
    }

    /// Metadata holding only `traceparent` (a valid one, written by this crate).
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn from_traceparent(traceparent: [u8; TRACEPARENT_LEN]) -> Self {
        Self::stored(Stored::Traceparent {
            lineage: None,
            traceparent,
        })
    }

    fn stored(stored: Stored) -> Self {
        Self(Repr::Shared(Arc::new(Entries {
            read: OnceLock::new(),
            stored,
        })))
    }

    /// A command's own lineage: `id` (a new UUID's text, see [`lineage`](crate::lineage))
    /// as both its correlation and its causation id.
    pub(crate) fn from_lineage(id: IdText) -> Self {
        Self(Repr::Lineage(id))
    }

    /// Whether `self` is `other` or a clone of it (not merely equal to it).
    #[cfg_attr(not(any(feature = "tracing", feature = "postgres")), allow(dead_code))]
    pub(crate) fn is_same(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Repr::Empty, Repr::Empty) => true,
            (Repr::Lineage(one), Repr::Lineage(other)) => one == other,
            (Repr::Shared(one), Repr::Shared(other)) => Arc::ptr_eq(one, other),
            _ => false,
        }
    }

    /// The id of [`from_lineage`](Self::from_lineage) metadata.
    fn lineage_id(&self) -> Option<&str> {
        match &self.0 {
            Repr::Lineage(id) => Some(ascii(id)),
            _ => None,
        }
    }

    /// Appends `traceparent` to a command's own lineage (see [`lineage`](crate::lineage)),
    /// kept inline beside its id, or to metadata kept as a JSON object (read from a store),
    /// as text: a traced append then builds no entries, and an SQL store serializes
    /// nothing. `false`, unchanged, for other metadata or one that names a `traceparent` or
    /// a `tracestate` already (or escapes a character, which might spell one), which the
    /// caller replaces by entries.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn append_traceparent(&mut self, traceparent: &[u8; TRACEPARENT_LEN]) -> bool {
        if let Repr::Lineage(id) = self.0 {
            *self = Self::stored(Stored::Traceparent {
                lineage: Some(id),
                traceparent: *traceparent,
            });
            return true;
        }
        let Ok(traceparent) = std::str::from_utf8(traceparent) else {
            return false;
        };
        let Repr::Shared(entries) = &self.0 else {
            return false;
        };
        let Stored::Json(json) = &entries.stored else {
            return false;
        };
        if json.contains(r#""traceparent""#)
            || json.contains(r#""tracestate""#)
            || json.contains('\\')
        {
            return false;
        }
        let Some(body) = json.trim_end().strip_suffix('}') else {
            return false;
        };
        let body = body.trim_end();
        // Before the closing brace: the opening one (no entry) or the end of a value.
        let separator = if body.ends_with('{') { "" } else { "," };
        let json = format!(r#"{body}{separator}"traceparent":"{traceparent}"}}"#);
        *self = Self::from_checked(Arc::from(json));
        true
    }

    /// The JSON object the entries are read from, while no change has made it stale: what
    /// an SQL store keeps as it is instead of serializing the entries again.
    #[cfg_attr(
        not(any(feature = "sql", all(test, feature = "tracing"))),
        allow(dead_code)
    )]
    pub(crate) fn stored_json(&self) -> Option<Cow<'_, str>> {
        match &self.0 {
            Repr::Empty => None,
            Repr::Lineage(_) => self
                .lineage_id()
                .map(|id| Cow::Owned(lineage_json(id, None))),
            Repr::Shared(entries) => entries.stored.json(),
        }
    }

    /// The entries held apart from a [`Repr::Lineage`] id, read from the stored text on
    /// first use.
    fn entries(&self) -> &BTreeMap<String, String> {
        static NONE: BTreeMap<String, String> = BTreeMap::new();
        match &self.0 {
            Repr::Empty | Repr::Lineage(_) => &NONE,
            Repr::Shared(entries) => entries.read.get_or_init(|| entries.read_stored()),
        }
    }

    /// Changes the entries: the stored text no longer says what they are. (Shared entries
    /// are copied first; metadata left empty holds nothing again.)
    fn change<R>(&mut self, change: impl FnOnce(&mut BTreeMap<String, String>) -> R) -> R {
        let mut read = match std::mem::take(&mut self.0) {
            Repr::Empty => BTreeMap::new(),
            Repr::Lineage(id) => lineage_entries(ascii(&id)),
            Repr::Shared(entries) => match Arc::try_unwrap(entries) {
                Ok(mut entries) => entries.read.take().unwrap_or_else(|| entries.read_stored()),
                Err(shared) => match shared.read.get() {
                    Some(read) => read.clone(),
                    None => shared.read_stored(),
                },
            },
        };
        let changed = change(&mut read);
        *self = Self::from_entries(read);
        changed
    }

    /// The value stored under `key`.
    #[must_use]
    #[inline]
    pub fn get(&self, key: &str) -> Option<&str> {
        match &self.0 {
            // Empty metadata (every event's of a command without any) answers at once, and
            // a command's own lineage without entries.
            Repr::Empty => None,
            Repr::Lineage(_) if key == Self::CORRELATION_ID || key == Self::CAUSATION_ID => {
                self.lineage_id()
            }
            Repr::Lineage(_) => None,
            Repr::Shared(entries) => match &entries.stored {
                // A traced command's events: answered from what is kept inline, unread.
                Stored::Traceparent {
                    lineage,
                    traceparent,
                } => match key {
                    Self::TRACEPARENT => Some(ascii(traceparent)),
                    Self::CORRELATION_ID | Self::CAUSATION_ID => {
                        lineage.as_ref().map(|id| ascii(id))
                    }
                    _ => None,
                },
                _ => self.entries().get(key).map(String::as_str),
            },
        }
    }

    /// Stores `value` under `key`, returning the value it replaces.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> Option<String> {
        let (key, value) = (key.into(), value.into());
        self.change(|entries| entries.insert(key, value))
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        // Nothing to remove from empty metadata (and nothing to copy).
        if let Repr::Empty = self.0 {
            return None;
        }
        self.change(|entries| entries.remove(key))
    }

    /// Builder form of [`insert`](Self::insert).
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert(key, value);
        self
    }

    /// The correlation id, if any.
    #[must_use]
    pub fn correlation_id(&self) -> Option<&str> {
        self.get(Self::CORRELATION_ID)
    }

    /// The causation id, if any.
    #[must_use]
    pub fn causation_id(&self) -> Option<&str> {
        self.get(Self::CAUSATION_ID)
    }

    /// The stored W3C `traceparent`, if any.
    #[must_use]
    pub fn traceparent(&self) -> Option<&str> {
        self.get(Self::TRACEPARENT)
    }

    /// The trace id of the stored `traceparent` (32 lowercase hex digits), if it is a
    /// valid one: the trace of the span that stored the event, to look it up in a tracing
    /// backend.
    ///
    /// ```
    /// use eventsource_runtime::event::Metadata;
    ///
    /// let metadata = Metadata::new().with(
    ///     Metadata::TRACEPARENT,
    ///     "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
    /// );
    /// assert_eq!(metadata.trace_id().as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
    /// assert_eq!(Metadata::new().trace_id(), None);
    /// ```
    #[must_use]
    pub fn trace_id(&self) -> Option<String> {
        // `00-{trace id}-{span id}-{flags}`; an all-zero trace id is invalid.
        let id = self.traceparent()?.split('-').nth(1)?;
        let valid = id.len() == 32
            && id.bytes().all(|b| b.is_ascii_hexdigit())
            && id.bytes().any(|b| b != b'0');
        valid.then(|| id.to_ascii_lowercase())
    }

    /// All entries, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let lineage = self
            .lineage_id()
            .map(|id| [(Self::CAUSATION_ID, id), (Self::CORRELATION_ID, id)]);
        let entries = self.entries().iter();
        lineage
            .into_iter()
            .flatten()
            .chain(entries.map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// All keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(key, _)| key)
    }

    /// Whether there is no entry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        let entries = match &self.0 {
            Repr::Empty => return true,
            Repr::Lineage(_) => return false,
            Repr::Shared(entries) => entries,
        };
        match &**entries {
            Entries { read, stored } if read.get().is_none() => match stored {
                Stored::Nothing => true,
                // A stored object is empty when nothing but blanks stands between its
                // braces (JSON's blanks are ASCII).
                Stored::Json(json) => json
                    .trim_ascii()
                    .strip_prefix('{')
                    .and_then(|inner| inner.strip_suffix('}'))
                    .is_some_and(|inner| inner.trim_ascii().is_empty()),
                Stored::Traceparent { .. } => false,
            },
            _ => self.entries().is_empty(),
        }
    }

    /// The id of the command that produced the event, if it was run with one (see
    /// [`COMMAND_ID`](Self::COMMAND_ID)).
    #[must_use]
    #[inline]
    pub fn command_id(&self) -> Option<&str> {
        self.get(Self::COMMAND_ID)
    }
}

/// The JSON object of a command's own lineage, `id` as both ids, with `traceparent` if
/// given: the keys in order, as entries serialize. Neither text needs escaping.
fn lineage_json(id: &str, traceparent: Option<&str>) -> String {
    // Room for both ids and a `traceparent`: one allocation.
    let mut json = String::with_capacity(64 + 2 * id.len() + TRACEPARENT_LEN);
    for part in [
        r#"{"causation_id":""#,
        id,
        r#"","correlation_id":""#,
        id,
        "\"",
    ] {
        json.push_str(part);
    }
    if let Some(traceparent) = traceparent {
        json.push_str(r#","traceparent":""#);
        json.push_str(traceparent);
        json.push('"');
    }
    json.push('}');
    json
}

/// The entries of a command's own lineage: `id` as both ids.
fn lineage_entries(id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (Metadata::CAUSATION_ID.to_owned(), id.to_owned()),
        (Metadata::CORRELATION_ID.to_owned(), id.to_owned()),
    ])
}

/// Text this crate wrote as ASCII (a UUID's, a `traceparent`'s): never the empty fallback.
fn ascii(text: &[u8]) -> &str {
    std::str::from_utf8(text).unwrap_or_default()
}

impl Entries {
    /// The stored text's entries. That text is a JSON object (checked when it was read from
    /// the store, or written by this crate), so reading it cannot fail.
    fn read_stored(&self) -> BTreeMap<String, String> {
        match &self.stored {
            Stored::Nothing => BTreeMap::new(),
            Stored::Json(json) => {
                read_entries(&mut serde_json::Deserializer::from_str(json)).unwrap_or_default()
            }
            Stored::Traceparent {
                lineage,
                traceparent,
            } => {
                let mut entries = lineage
                    .as_ref()
                    .map(|id| lineage_entries(ascii(id)))
                    .unwrap_or_default();
                let traceparent = ascii(traceparent).to_owned();
                entries.insert(Metadata::TRACEPARENT.to_owned(), traceparent);
                entries
            }
        }
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Metadata {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        Self::from_entries(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests;
