//! The one decoding door: a stored (type, schema version, payload) and a registry in, the
//! events this code reads out, as envelopes or as typed events.

use std::borrow::Cow;

use serde_json::Value;

use super::instrument;
use super::{MAX_STEPS, Registry, SplitPart, UpcastError, UpcastFailure, Upcasters};
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

/// The id of the event number `index` a split made of the stored event `id`: the stored
/// id for the first, then the stored id with its last bits changed by the index, so that
/// idempotent handlers tell the events apart, the same at every read.
fn part_id(id: uuid::Uuid, index: usize) -> uuid::Uuid {
    uuid::Uuid::from_u128(id.as_u128() ^ u128::try_from(index).unwrap_or(0))
}

/// One event the door made: its type, version and payload.
struct Part {
    event_type: Cow<'static, str>,
    schema_version: u32,
    payload: Value,
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
        if self.is_empty() {
            return Ok(Upcasted::Unchanged(envelope));
        }
        match self.parts(envelope)? {
            None => Ok(Upcasted::Unchanged(envelope)),
            Some(parts) => {
                let mut events = Vec::with_capacity(parts.len());
                for (index, part) in parts.into_iter().enumerate() {
                    let mut event = envelope.clone();
                    event.event_id = part_id(envelope.event_id, index);
                    event.payload = Payload::from(part.payload);
                    event.payload.set_upcast_from(envelope.schema_version);
                    event.event_type = part.event_type;
                    event.schema_version = part.schema_version;
                    events.push(event);
                }
                Ok(Upcasted::Changed {
                    from_version: envelope.schema_version,
                    events,
                })
            }
        }
    }

    /// The parts a stored envelope is now, or `None` when it needs nothing (or the registry
    /// is not bound to an event set: nothing is known of its versions).
    fn parts(&self, envelope: &EventEnvelope) -> Result<Option<Vec<Part>>, UpcastError> {
        let Some(registry) = &self.registry else {
            return Ok(None);
        };
        let stored = envelope.event_type.as_ref();
        let needs_work = match registry.current.get(stored) {
            Some(&current) => current != envelope.schema_version,
            None => registry.rules.contains_key(stored),
        };
        if !needs_work {
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
        let payload: Value = serde_json::from_str(envelope.payload.as_str())
            .map_err(|e| fail(envelope.schema_version, UpcastFailure::Json(e)))?;
        let parts = registry
            .walk(envelope, payload)
            .map_err(|(to, reason)| fail(to, reason))?;
        if let Some(last) = parts.last() {
            instrument::upcast(stored, envelope.schema_version, last.schema_version);
        }
        Ok(Some(parts))
    }
}

impl Registry {
    /// The version an event stored as (`event_type`, `version`) is read at: its type's
    /// current version after renames, else the version it is split at, else its own.
    fn target(&self, event_type: &str, version: u32) -> u32 {
        let mut name = event_type;
        for _ in 0..MAX_STEPS {
            if let Some(&current) = self.current.get(name) {
                return current;
            }
            match self.rules.get(name) {
                Some(rules) if rules.rename.is_some() => {
                    name = rules.rename.as_deref().unwrap_or(name);
                }
                Some(rules) => return rules.split.as_ref().map_or(version, |(at, _)| *at),
                None => return version,
            }
        }
        version
    }

    /// Renames, splits and steps, in order, until every part is at its type's current
    /// version. On failure, the version it was going to and why.
    fn walk(
        &self,
        envelope: &EventEnvelope,
        payload: Value,
    ) -> Result<Vec<Part>, (u32, UpcastFailure)> {
        let mut done = Vec::with_capacity(1);
        // Parts still to bring up to date, the next one last.
        let mut pending = vec![(
            envelope.event_type.clone(),
            envelope.schema_version,
            payload,
            None::<Cow<'static, str>>,
        )];
        let mut steps = 0;
        while let Some((mut event_type, mut version, mut payload, split_from)) = pending.pop() {
            loop {
                steps += 1;
                if steps > MAX_STEPS {
                    return Err((version, UpcastFailure::TooManySteps(MAX_STEPS)));
                }
                let current = self.current.get(event_type.as_ref()).copied();
                if current == Some(version) {
                    done.push(Part {
                        event_type,
                        schema_version: version,
                        payload,
                    });
                    break;
                }
                let rules = self.rules.get(event_type.as_ref());
                if let Some(new) = rules.and_then(|r| r.rename.clone()) {
                    event_type = new;
                    continue;
                }
                if let Some((at, split)) = rules.and_then(|r| r.split.as_ref())
                    && *at == version
                {
                    let made = split(payload).map_err(|source| {
                        (
                            version,
                            UpcastFailure::Split {
                                event_type: event_type.to_string(),
                                source,
                            },
                        )
                    })?;
                    for SplitPart {
                        event_type: made_type,
                        schema_version,
                        payload,
                    } in made.into_iter().rev()
                    {
                        pending.push((
                            made_type,
                            schema_version,
                            payload,
                            Some(event_type.clone()),
                        ));
                    }
                    break;
                }
                if let Some(step) = rules.and_then(|r| r.steps.get(&version)) {
                    step(&mut payload).map_err(|source| {
                        (
                            version + 1,
                            UpcastFailure::Step {
                                event_type: event_type.to_string(),
                                from: version,
                                source,
                            },
                        )
                    })?;
                    version += 1;
                    continue;
                }
                let to = self.target(&event_type, version);
                return Err((to, stuck(&event_type, version, to, current, split_from)));
            }
        }
        Ok(done)
    }
}

/// Why an event of `event_type` at `version` can go no further towards `to`.
fn stuck(
    event_type: &str,
    version: u32,
    to: u32,
    current: Option<u32>,
    split_from: Option<Cow<'static, str>>,
) -> UpcastFailure {
    match (current, split_from) {
        (None, Some(from_type)) => UpcastFailure::SplitIntoUnknown {
            from_type: from_type.into_owned(),
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

/// The events of the set `E` a stored envelope holds (one, or several after a split),
/// handed to `each` in order. Returns the stored version when the event was upcast.
///
/// The common case costs one match on the type name more than
/// [`DomainEvent::from_payload`] alone: an event at its type's current version.
#[inline]
pub(crate) fn decode_set<E: DomainEvent>(
    envelope: &EventEnvelope,
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
    match registry.parts(envelope)? {
        Some(parts) => {
            for part in parts {
                each(E::from_value(&part.event_type, part.payload)?);
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
    match registry.parts(envelope) {
        Err(error) => Some(Err(error.into())),
        Ok(Some(parts)) => parts
            .into_iter()
            .find(|part| part.event_type == T::EVENT_TYPE)
            .map(|part| {
                serde_json::from_value(part.payload).map_err(|source| DecodeError::Payload {
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
