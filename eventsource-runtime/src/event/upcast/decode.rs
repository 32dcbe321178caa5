//! Decoding through the upcasters, the one path every stored event takes: a stored (type,
//! schema version, payload) and a registry in, the events this code reads out, as
//! envelopes or as typed events.

use std::borrow::Cow;

use super::body::{Body, StepError};
use super::instrument::UpcastCounts;
use super::{Entry, MAX_STEPS, Registry, SplitPart, Step, UpcastError, UpcastFailure, Upcasters};
use crate::event::payload::Recorded;
use crate::event::{DecodeError, DomainEvent, EventEnvelope, EventType, Payload};

/// What the door made of one stored envelope.
#[derive(Debug)]
pub enum Upcasted<'a> {
    /// Nothing to do: the event is current, or of a type no upcaster concerns.
    Unchanged(&'a EventEnvelope),
    /// Brought up to date: one event, or several (a split).
    Changed {
        /// The stored schema version.
        from_version: u32,
        /// The events it is now, in order. A split's events share the stored event's
        /// stream version and position; the first keeps its id, the others get ids made
        /// from it (the same at every read).
        events: Vec<EventEnvelope>,
    },
}

impl Upcasted<'_> {
    /// The events, current.
    #[must_use]
    pub fn events(&self) -> &[EventEnvelope] {
        match self {
            Self::Unchanged(envelope) => std::slice::from_ref(*envelope),
            Self::Changed { events, .. } => events,
        }
    }

    /// The stored schema version, when the event was upcast.
    #[must_use]
    pub fn from_version(&self) -> Option<u32> {
        match self {
            Self::Unchanged(_) => None,
            Self::Changed { from_version, .. } => Some(*from_version),
        }
    }
}

/// A part's type name: the stored one, a rename's, or a split's.
enum Name<'a> {
    Stored(&'a str),
    Static(&'static str),
    Made(Cow<'static, str>),
}

impl Name<'_> {
    fn as_str(&self) -> &str {
        match self {
            Self::Stored(name) => name,
            Self::Static(name) => name,
            Self::Made(name) => name,
        }
    }
}

/// One event the door made: its type, version and payload.
struct Part<'a> {
    name: Name<'a>,
    version: u32,
    body: Body,
}

/// The id of the event number `index` a split made of the stored event `id`: the stored
/// id for the first, then the stored id with its last bits changed by the index, so that
/// idempotent handlers tell the events apart, the same at every read.
fn part_id(id: uuid::Uuid, index: usize) -> uuid::Uuid {
    uuid::Uuid::from_u128(id.as_u128() ^ u128::try_from(index).unwrap_or(0))
}

impl Upcasters {
    /// Brings a stored envelope up to the versions this code reads: the door every reader
    /// goes through. An envelope of a type the registry does not concern is returned as
    /// it is.
    ///
    /// # Errors
    /// [`UpcastError`] naming the event, its type, both versions and why: an upcaster
    /// failed, none goes from the stored version, the stored version is newer than this
    /// code's, or the registry is misconfigured.
    pub fn upcast<'a>(&self, envelope: &'a EventEnvelope) -> Result<Upcasted<'a>, UpcastError> {
        self.upcast_counted(envelope, &mut UpcastCounts::default())
    }

    /// [`upcast`](Self::upcast), counting into `counts` (recorded when they are dropped).
    pub(crate) fn upcast_counted<'a>(
        &self,
        envelope: &'a EventEnvelope,
        counts: &mut UpcastCounts,
    ) -> Result<Upcasted<'a>, UpcastError> {
        if self.is_empty() {
            return Ok(Upcasted::Unchanged(envelope));
        }
        let Some(parts) = self.parts(envelope, counts)? else {
            return Ok(Upcasted::Unchanged(envelope));
        };
        let from_version = envelope.schema_version;
        let mut events = Vec::with_capacity(parts.len());
        for (index, part) in parts.into_iter().enumerate() {
            let mut event = envelope.clone();
            event.event_id = part_id(envelope.event_id, index);
            event.event_type = match part.name {
                Name::Stored(_) => envelope.event_type.clone(),
                Name::Static(name) => Cow::Borrowed(name),
                Name::Made(name) => name,
            };
            event.schema_version = part.version;
            let recorded: Option<Recorded> = match part.body {
                Body::Stored => None,
                Body::Json(value) => {
                    event.payload = Payload::from(value);
                    None
                }
                Body::Typed(typed) => {
                    let value = (typed.to_json)(&*typed.value)
                        .map_err(|e| self.failure(envelope, UpcastFailure::Json(e)))?;
                    event.payload = Payload::from(value);
                    Some(typed.value.into())
                }
            };
            event.payload.mark_upcast(from_version, recorded);
            events.push(event);
        }
        Ok(Upcasted::Changed {
            from_version,
            events,
        })
    }

    /// Whether an event stored as (`event_type`, `version`) is upcast when read (or fails
    /// to be): a lookup, nothing is run.
    pub(crate) fn upcasts(&self, event_type: &str, version: u32) -> bool {
        self.registry
            .as_ref()
            .is_some_and(|registry| needs_work(registry.index.get(event_type), version))
    }

    /// The error for `envelope`, going to its target version, for `reason`.
    fn failure(&self, envelope: &EventEnvelope, reason: UpcastFailure) -> UpcastError {
        let to = self.registry.as_ref().map_or(envelope.schema_version, |r| {
            r.target(&envelope.event_type, envelope.schema_version)
        });
        UpcastError {
            event_id: envelope.event_id,
            event_type: envelope.event_type.to_string(),
            from: envelope.schema_version,
            to,
            reason,
        }
    }

    /// The parts a stored envelope is now, or `None` when it needs nothing (or the registry
    /// is not bound to an event set: nothing is known of its versions).
    fn parts<'a>(
        &'a self,
        envelope: &'a EventEnvelope,
        counts: &mut UpcastCounts,
    ) -> Result<Option<Parts<'a>>, UpcastError> {
        let Some(registry) = &self.registry else {
            return Ok(None);
        };
        let stored = envelope.event_type.as_ref();
        let entry = registry.index.get(stored);
        if !needs_work(entry, envelope.schema_version) {
            return Ok(None);
        }
        let fail = |to: u32, reason: UpcastFailure| UpcastError {
            event_id: envelope.event_id,
            event_type: stored.to_owned(),
            from: envelope.schema_version,
            to,
            reason,
        };
        if let Some(problem) = &registry.problem {
            let to = registry.target(stored, envelope.schema_version);
            return Err(fail(to, UpcastFailure::Registration(problem.clone())));
        }
        // The error names the version this code reads, not the step that failed (its
        // reason does).
        let parts = registry.walk(envelope, entry).map_err(|(_, reason)| {
            fail(registry.target(stored, envelope.schema_version), reason)
        })?;
        counts.add(stored, envelope.schema_version, parts.last_version());
        Ok(Some(parts))
    }
}

impl Registry {
    /// The version an event stored as (`event_type`, `version`) is read at: its type's
    /// current version after renames, else the version it is split at, else its own.
    fn target(&self, event_type: &str, version: u32) -> u32 {
        let mut name = event_type;
        for _ in 0..MAX_STEPS {
            let Some(entry) = self.index.get(name) else {
                return version;
            };
            if let Some(current) = entry.current {
                return current;
            }
            match (entry.rules.rename, &entry.rules.split) {
                (Some(new), _) => name = new,
                (None, split) => return split.as_ref().map_or(version, |(at, _)| *at),
            }
        }
        version
    }

    /// Renames, splits and steps, in order, until every part is at its type's current
    /// version (`entry`: what the index has for the stored type). On failure, the version
    /// it was going to and why.
    fn walk<'a>(
        &'a self,
        envelope: &'a EventEnvelope,
        entry: Option<&'a Entry>,
    ) -> Result<Parts<'a>, (u32, UpcastFailure)> {
        let stored = envelope.payload.as_str();
        let first = Part {
            name: Name::Stored(envelope.event_type.as_ref()),
            version: envelope.schema_version,
            body: Body::Stored,
        };
        let mut steps = 0;
        let (made, from_type) = match self.advance(first, entry, None, stored, &mut steps)? {
            Advanced::Done(part) => return Ok(Parts::One(part)),
            Advanced::Split(made, from_type) => (made, from_type),
        };
        // Only a split makes more than one part: each goes its own way, in order.
        let mut done = Vec::with_capacity(made.len());
        let mut pending: Vec<(SplitPart, &'a str)> = made
            .into_iter()
            .rev()
            .map(|part| (part, from_type))
            .collect();
        while let Some((made, from_type)) = pending.pop() {
            let entry = self.index.get(made.event_type.as_ref());
            let part = Part {
                name: Name::Made(made.event_type),
                version: made.schema_version,
                body: Body::Json(made.payload),
            };
            match self.advance(part, entry, Some(from_type), stored, &mut steps)? {
                Advanced::Done(part) => done.push(part),
                Advanced::Split(more, from_type) => {
                    pending.extend(more.into_iter().rev().map(|part| (part, from_type)));
                }
            }
        }
        Ok(Parts::Many(done))
    }

    /// Takes one part through renames and steps until it is current, or until a split
    /// makes it several (`entry`: what the index has for its name; `split_from`: the stored
    /// type a split made it of).
    fn advance<'a>(
        &'a self,
        mut part: Part<'a>,
        mut entry: Option<&'a Entry>,
        split_from: Option<&'a str>,
        stored: &str,
        steps: &mut usize,
    ) -> Result<Advanced<'a>, (u32, UpcastFailure)> {
        loop {
            *steps += 1;
            if *steps > MAX_STEPS {
                return Err((part.version, UpcastFailure::TooManySteps(MAX_STEPS)));
            }
            let current = entry.and_then(|e| e.current);
            if current == Some(part.version) {
                return Ok(Advanced::Done(part));
            }
            let name = part.name.as_str();
            let Some(rules) = entry.map(|e| &e.rules) else {
                let to = self.target(name, part.version);
                return Err((to, stuck(name, part.version, to, current, split_from)));
            };
            if let Some(new) = rules.rename {
                part.name = Name::Static(new);
                entry = self.index.get(new);
                continue;
            }
            if let Some((at, split)) = &rules.split
                && *at == part.version
            {
                let from_type = self.key(name);
                let payload = part
                    .body
                    .into_json(stored)
                    .map_err(|e| (*at, UpcastFailure::Json(e)))?;
                let made = split(payload).map_err(|source| {
                    (
                        *at,
                        UpcastFailure::Split {
                            event_type: from_type.to_owned(),
                            source,
                        },
                    )
                })?;
                return Ok(Advanced::Split(made, from_type));
            }
            let Some(step) = rules.steps.get(&part.version) else {
                let to = self.target(name, part.version);
                return Err((to, stuck(name, part.version, to, current, split_from)));
            };
            let from = part.version;
            let failed = |reason| (from + 1, reason);
            let step_failed = |source| {
                failed(UpcastFailure::Step {
                    event_type: name.to_owned(),
                    from,
                    source,
                })
            };
            part.body = match step {
                Step::Json(step) => {
                    let mut payload = part
                        .body
                        .into_json(stored)
                        .map_err(|e| failed(UpcastFailure::Json(e)))?;
                    step(&mut payload).map_err(step_failed)?;
                    Body::Json(payload)
                }
                Step::Typed(step) => step(part.body, stored).map_err(|e| match e {
                    StepError::Json(e) => failed(UpcastFailure::Json(e)),
                    StepError::Upcaster(source) => step_failed(source),
                })?,
            };
            part.version += 1;
        }
    }

    /// The registry's own copy of a type name it has rules for (so that a split's parts
    /// can name where they came from for as long as the registry lives).
    fn key(&self, name: &str) -> &str {
        self.index
            .get_key_value(name)
            .map_or("", |(key, _)| key.as_ref())
    }
}

/// What [`Registry::advance`] made of a part.
enum Advanced<'a> {
    /// The part, current.
    Done(Part<'a>),
    /// The events a split made of it, and the stored type it was.
    Split(Vec<SplitPart>, &'a str),
}

/// The parts a stored event is now: one (without a split, no list is made), or several.
enum Parts<'a> {
    One(Part<'a>),
    Many(Vec<Part<'a>>),
}

impl Parts<'_> {
    fn len(&self) -> usize {
        match self {
            Self::One(_) => 1,
            Self::Many(parts) => parts.len(),
        }
    }

    /// The last part's version (what the counter says it was upcast to).
    fn last_version(&self) -> u32 {
        match self {
            Self::One(part) => part.version,
            Self::Many(parts) => parts.last().map_or(0, |part| part.version),
        }
    }
}

impl<'a> IntoIterator for Parts<'a> {
    type Item = Part<'a>;
    type IntoIter = std::iter::Chain<std::option::IntoIter<Part<'a>>, std::vec::IntoIter<Part<'a>>>;

    fn into_iter(self) -> Self::IntoIter {
        match self {
            Self::One(part) => Some(part).into_iter().chain(Vec::new()),
            Self::Many(parts) => None.into_iter().chain(parts),
        }
    }
}

/// Why an event of `event_type` at `version` can go no further towards `to`.
fn stuck(
    event_type: &str,
    version: u32,
    to: u32,
    current: Option<u32>,
    split_from: Option<&str>,
) -> UpcastFailure {
    match (current, split_from) {
        (None, Some(from_type)) => UpcastFailure::SplitIntoUnknown {
            from_type: from_type.to_owned(),
            event_type: event_type.to_owned(),
        },
        _ if version > to => UpcastFailure::Newer {
            event_type: event_type.to_owned(),
            stored: version,
            current: to,
        },
        _ => UpcastFailure::NoStep {
            event_type: event_type.to_owned(),
            from: version,
        },
    }
}

/// The error for an event of a type whose version this code knows (`current`) but that
/// no registry concerns.
fn version_error(envelope: &EventEnvelope, current: u32) -> DecodeError {
    let event_type = envelope.event_type.to_string();
    let reason = stuck(
        &event_type,
        envelope.schema_version,
        current,
        Some(current),
        None,
    );
    DecodeError::from(UpcastError {
        event_id: envelope.event_id,
        event_type,
        from: envelope.schema_version,
        to: current,
        reason,
    })
}

/// A part as an event of the set `E`: a typed value as made, a tree or the stored text
/// parsed.
fn set_event<E: DomainEvent>(part: Part<'_>, envelope: &EventEnvelope) -> Result<E, DecodeError> {
    let name = part.name.as_str();
    match part.body {
        Body::Stored => E::from_payload(name, &envelope.payload),
        Body::Json(value) => E::from_value(name, value),
        Body::Typed(typed) => match E::from_typed(name, typed.value) {
            Ok(event) => Ok(event),
            Err(value) => {
                let value = (typed.to_json)(&*value).map_err(|source| DecodeError::Payload {
                    event_type: name.to_owned(),
                    source,
                })?;
                E::from_value(name, value)
            }
        },
    }
}

/// The events of the set `E` a stored envelope holds (one, or several after a split),
/// handed to `each` in order, the upcasts counted in `counts`. Returns the stored version
/// when the event was upcast.
///
/// The common case costs one match on the type name more than
/// [`DomainEvent::from_payload`] alone: an event at its type's current version.
#[inline]
pub(crate) fn decode_set<E: DomainEvent>(
    envelope: &EventEnvelope,
    counts: &mut UpcastCounts,
    mut each: impl FnMut(E),
) -> Result<Option<u32>, DecodeError> {
    let current = E::schema_version_of(&envelope.event_type);
    if current == Some(envelope.schema_version) {
        each(E::from_payload(&envelope.event_type, &envelope.payload)?);
        return Ok(None);
    }
    let registry = E::upcasters();
    if current.is_none() && !registry.renames_or_splits(&envelope.event_type) {
        each(E::from_payload(&envelope.event_type, &envelope.payload)?);
        return Ok(None);
    }
    match registry.parts(envelope, counts)? {
        Some(parts) => {
            for part in parts {
                each(set_event(part, envelope)?);
            }
            Ok(Some(envelope.schema_version))
        }
        None => match current {
            Some(current) => Err(version_error(envelope, current)),
            None => {
                each(E::from_payload(&envelope.event_type, &envelope.payload)?);
                Ok(None)
            }
        },
    }
}

/// The envelope's event as a `T` (upcast when stored older, renamed or split), `None` when
/// it holds no `T`. A split into several `T`s gives the first.
pub(crate) fn decode_type<T: EventType>(
    envelope: &EventEnvelope,
) -> Option<Result<T, DecodeError>> {
    let same_type = envelope.event_type == T::EVENT_TYPE;
    if same_type && envelope.schema_version == T::SCHEMA_VERSION {
        return Some(parse::<T>(&envelope.payload));
    }
    let registry = T::upcasters();
    if !same_type && !registry.renames_or_splits(&envelope.event_type) {
        return None;
    }
    match registry.parts(envelope, &mut UpcastCounts::default()) {
        Err(error) => Some(Err(error.into())),
        Ok(Some(parts)) => parts
            .into_iter()
            .find(|part| part.name.as_str() == T::EVENT_TYPE)
            .map(|part| {
                part.body
                    .read::<T>(envelope.payload.as_str())
                    .map_err(|source| DecodeError::Payload {
                        event_type: T::EVENT_TYPE.to_owned(),
                        source,
                    })
            }),
        Ok(None) if same_type => Some(Err(version_error(envelope, T::SCHEMA_VERSION))),
        Ok(None) => None,
    }
}

/// A payload as a `T`.
fn parse<T: EventType>(payload: &Payload) -> Result<T, DecodeError> {
    payload
        .decode::<T>()
        .map_err(|source| DecodeError::Payload {
            event_type: T::EVENT_TYPE.to_owned(),
            source,
        })
}

/// Whether an event of a type with this index `entry`, stored at `version`, must be
/// upcast: an older version than the type's current one, or a type renamed or split.
fn needs_work(entry: Option<&Entry>, version: u32) -> bool {
    entry.is_some_and(|entry| match entry.current {
        Some(current) => current != version,
        None => !entry.rules.is_empty(),
    })
}
