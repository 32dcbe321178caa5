//! Events that change shape: upcasters bring a stored event written by older code up to
//! the version this code reads, on one decoding door.
//!
//! An event type declares its current schema version (`events(AddressChanged(version = 3))`
//! in `#[aggregate(..)]`; 1 by default), which is stored with each event. The aggregate's
//! [`Upcasters`] (`#[aggregate(.., upcasters = path::to::fn)]`) say how an older stored
//! event becomes a current one:
//! - [`step`](Upcasters::step): one event type's JSON from version N to N+1, or
//!   [`convert`](Upcasters::convert): from a serde type of version N's shape to one of
//!   N+1's (faster: no JSON tree, and the last conversion hands the event over as made);
//!   the steps of a type form a chain without gap up to its current version;
//! - [`rename`](Upcasters::rename): a type stored under an old name;
//! - [`split`](Upcasters::split): one stored event that became several.
//!
//! Every path that turns a stored event into a typed one goes through the same door:
//! repository loads, `EventEnvelope::decode`/`decode_as`, `#[projection]` handlers, the
//! projection runner (which upcasts before it filters and hands events over) and the bus
//! dispatcher (for handlers that name their upcasters). Loads, runner batches and consumed
//! messages whose events were upcast say so on their span
//! (`eventsource.upcast.count`, `eventsource.upcast.from_versions`), and every upcast is
//! counted (`eventsource.events.upcast`). A failure is a typed [`UpcastError`] naming the
//! event, its type and both versions; it is never skipped.
//!
//! ```
//! use eventsource_runtime::event::NewEvent;
//! use eventsource_runtime::event::upcast::Upcasters;
//! use eventsource_runtime::store::ExpectedVersion;
//! use eventsource_runtime::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! /// Version 2: the address, once one string, is split into its parts.
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! pub struct AddressChanged { street: String, city: String }
//!
//! fn customer_upcasters() -> Upcasters {
//!     Upcasters::new().step("AddressChanged", 1, |payload| {
//!         // {"address": "1 Main St, Springfield"} -> {"street": "1 Main St", "city": "Springfield"}
//!         let address = payload["address"].as_str().ok_or("no address")?.to_owned();
//!         let (street, city) = address.split_once(", ").ok_or("no city in the address")?;
//!         *payload = serde_json::json!({ "street": street, "city": city });
//!         Ok::<_, &str>(())
//!     })
//! }
//!
//! #[derive(Default, Aggregate)]
//! #[aggregate(events(AddressChanged(version = 2)), upcasters = customer_upcasters)]
//! pub struct Customer { city: String }
//! impl Apply<AddressChanged> for Customer {
//!     fn apply(&mut self, event: &AddressChanged) { self.city = event.city.clone(); }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! // At start: a misregistered chain is an error naming the fix, before any event is read.
//! CustomerEvent::upcasters().check()?;
//!
//! // An event the older code stored, at version 1.
//! let store = InMemoryEventStore::new();
//! let old = NewEvent::new("AddressChanged", 1, serde_json::json!({"address": "1 Main St, Springfield"}));
//! store.append(&StreamId::new("Customer", "c-1"), ExpectedVersion::Any, vec![old]).await?;
//!
//! let customers = Repository::<Customer>::new(store);
//! assert_eq!(customers.load("c-1").await?.state().city, "Springfield");
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```

mod body;
pub(crate) mod decode;
mod error;
mod instrument;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

pub use decode::Upcasted;
pub use error::{RegistrationError, UpcastError, UpcastFailure, UpcasterFailure};
/// Upcasting's telemetry, shared on purpose with the components whose work upcasts: what
/// they count and what their spans say of the events they upcast.
/// - [`UpcastCounts`]: the `eventsource.events.upcast` counter, added to once per kind of
///   upcast when a load (`repository`), a runner's decode (`projection`) or one event's
///   decode (`EventEnvelope::decode_all`) is done;
/// - [`UpcastTally`]: `eventsource.upcast.*` on a span (a load's in `repository`, a
///   projection's, a bus consumer's);
/// - [`reading_for`] and [`record_read_upcasts`]: a projection runner's reads upcast by its
///   own upcasters (the runner scopes its reads; `store::instrument` says so on each read
///   span).
pub(crate) use instrument::{UpcastCounts, UpcastTally, reading_for, record_read_upcasts};

/// The most steps (upcasters, renames and splits) one stored event may go through, and the
/// longest chain a type may register.
pub const MAX_STEPS: usize = 64;

type JsonStep = Arc<dyn Fn(&mut Value) -> Result<(), UpcasterFailure> + Send + Sync>;
type TypedStep = Arc<dyn Fn(body::Body, &str) -> Result<body::Body, body::StepError> + Send + Sync>;
type SplitFn = Arc<dyn Fn(Value) -> Result<Vec<SplitPart>, UpcasterFailure> + Send + Sync>;

/// One step of a type's chain.
#[derive(Clone)]
enum Step {
    /// On the stored JSON ([`Upcasters::step`]).
    Json(JsonStep),
    /// From a typed old shape to a typed new one ([`Upcasters::convert`]).
    Typed(TypedStep),
}

/// One event a [split](Upcasters::split) makes of a stored one: its type, the schema
/// version its payload is at (later steps of that type still apply) and its payload.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitPart {
    /// The type name of the event made.
    pub event_type: Cow<'static, str>,
    /// The schema version its payload is written at.
    pub schema_version: u32,
    /// Its payload.
    pub payload: Value,
}

impl SplitPart {
    /// An event of `event_type` at `schema_version` with `payload`.
    pub fn new(
        event_type: impl Into<Cow<'static, str>>,
        schema_version: u32,
        payload: Value,
    ) -> Self {
        Self {
            event_type: event_type.into(),
            schema_version,
            payload,
        }
    }
}

/// What one stored type name is turned into.
#[derive(Default, Clone)]
struct TypeRules {
    /// Steps by the version they start from.
    steps: BTreeMap<u32, Step>,
    /// Stored under this old name, the events are of that type now.
    rename: Option<&'static str>,
    /// At that version, the events become several.
    split: Option<(u32, SplitFn)>,
}

#[derive(Default, Clone)]
struct Registry {
    /// By stored type name.
    rules: HashMap<Box<str>, TypeRules>,
    /// The event set's types and their current versions (empty until bound).
    current: HashMap<Box<str>, u32>,
    /// The first thing wrong with the registry.
    problem: Option<RegistrationError>,
    /// What the door looks up, once per name: each type's current version and rules.
    index: HashMap<Box<str>, Entry>,
}

/// A type name's current version (if the set has it) and rules (if any).
#[derive(Clone)]
struct Entry {
    current: Option<u32>,
    rules: TypeRules,
}

impl TypeRules {
    fn is_empty(&self) -> bool {
        self.steps.is_empty() && self.rename.is_none() && self.split.is_none()
    }
}

impl Registry {
    /// Builds the door's index from the rules and the current versions.
    fn reindex(&mut self) {
        let mut index: HashMap<Box<str>, Entry> = HashMap::with_capacity(self.current.len());
        for (name, &current) in &self.current {
            index.insert(
                name.clone(),
                Entry {
                    current: Some(current),
                    rules: TypeRules::default(),
                },
            );
        }
        for (name, rules) in &self.rules {
            index
                .entry(name.clone())
                .or_insert(Entry {
                    current: None,
                    rules: TypeRules::default(),
                })
                .rules = rules.clone();
        }
        self.index = index;
    }
}

/// An event set's upcasters: how events stored by older code become the events this code
/// reads (see the [module documentation](self)).
///
/// Built with [`new`](Self::new) and its builder methods, then bound to the event set's
/// current versions, which checks it: `#[derive(Aggregate)]` does both for
/// `upcasters = path` (a `fn() -> Upcasters`), and [`DomainEvent::upcasters`] returns the
/// result. Cheap to clone (shared).
///
/// [`DomainEvent::upcasters`]: crate::event::DomainEvent::upcasters
#[derive(Clone, Default)]
pub struct Upcasters {
    registry: Option<Arc<Registry>>,
}

static NONE: Upcasters = Upcasters { registry: None };

impl fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(registry) = &self.registry else {
            return f.write_str("Upcasters(none)");
        };
        let mut types: Vec<&str> = registry.rules.keys().map(AsRef::as_ref).collect();
        types.sort_unstable();
        f.debug_struct("Upcasters")
            .field("types", &types)
            .field("problem", &registry.problem)
            .finish()
    }
}

impl Upcasters {
    /// No upcaster: events are read as stored.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The empty registry, shared.
    #[must_use]
    pub fn none() -> &'static Self {
        &NONE
    }

    /// Whether nothing is registered (and so nothing is ever upcast).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.registry.as_ref().is_none_or(|r| r.rules.is_empty())
    }

    fn registry_mut(&mut self) -> &mut Registry {
        // Built before it is shared; a clone being built copies what it had (its functions
        // are shared, not copied).
        Arc::make_mut(self.registry.get_or_insert_with(Arc::default))
    }

    fn rules_mut(&mut self, event_type: &str) -> &mut TypeRules {
        self.registry_mut()
            .rules
            .entry(event_type.into())
            .or_default()
    }

    fn note(&mut self, problem: RegistrationError) {
        let registry = self.registry_mut();
        registry.problem.get_or_insert(problem);
    }

    /// Registers the upcaster of `event_type` from version `from` to `from + 1`: it
    /// changes the stored JSON payload in place, or fails with any error (its message is
    /// kept in the [`UpcastError`]).
    #[must_use]
    pub fn step<F, E>(self, event_type: &'static str, from: u32, upcast: F) -> Self
    where
        F: Fn(&mut Value) -> Result<(), E> + Send + Sync + 'static,
        E: Into<UpcasterFailure>,
    {
        let step: JsonStep = Arc::new(move |payload| upcast(payload).map_err(Into::into));
        self.add_step(event_type, from, Step::Json(step))
    }

    /// Registers the upcaster of `event_type` from version `from` to `from + 1` as a
    /// conversion between typed shapes: the stored payload is read as an `Old` (a serde
    /// type written for the old version), `convert` makes the `New` one. Faster than a
    /// [`step`](Self::step) on the JSON tree: when the conversion's `New` is the event type
    /// itself (the last step), the event is handed over as made, without being written
    /// out and read again.
    ///
    /// ```
    /// use eventsource_runtime::event::upcast::Upcasters;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Deserialize)]
    /// struct AddressChangedV1 { address: String }
    ///
    /// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    /// pub struct AddressChanged { street: String, city: String }
    ///
    /// let upcasters = Upcasters::new().convert("AddressChanged", 1, |old: AddressChangedV1| {
    ///     let (street, city) = old.address.split_once(", ").ok_or("no city in the address")?;
    ///     Ok::<_, &str>(AddressChanged { street: street.into(), city: city.into() })
    /// });
    /// ```
    #[must_use]
    pub fn convert<Old, New, F, E>(self, event_type: &'static str, from: u32, convert: F) -> Self
    where
        Old: serde::de::DeserializeOwned + 'static,
        New: serde::Serialize + Send + Sync + 'static,
        F: Fn(Old) -> Result<New, E> + Send + Sync + 'static,
        E: Into<UpcasterFailure>,
    {
        let step: TypedStep = Arc::new(move |body, stored| {
            let old: Old = body.read(stored)?;
            let new = convert(old).map_err(|e| body::StepError::Upcaster(e.into()))?;
            Ok(body::Body::typed(new))
        });
        self.add_step(event_type, from, Step::Typed(step))
    }

    fn add_step(mut self, event_type: &'static str, from: u32, step: Step) -> Self {
        if from == 0 {
            self.note(RegistrationError::VersionZero {
                event_type: event_type.to_owned(),
            });
            return self;
        }
        if self
            .rules_mut(event_type)
            .steps
            .insert(from, step)
            .is_some()
        {
            self.note(RegistrationError::DuplicateStep {
                event_type: event_type.to_owned(),
                from,
            });
        }
        self
    }

    /// Registers that events stored as `old` are `new` events now (at the same schema
    /// version: `new`'s steps then apply).
    #[must_use]
    pub fn rename(mut self, old: &'static str, new: &'static str) -> Self {
        let rules = self.rules_mut(old);
        if rules.rename.is_some() || rules.split.is_some() {
            self.note(RegistrationError::Conflict {
                event_type: old.to_owned(),
            });
            return self;
        }
        rules.rename = Some(new);
        self
    }

    /// Registers that an event stored as `event_type` at `version` is several events now:
    /// `split` makes them from its payload, in the order they are applied. Older stored
    /// versions of `event_type` are first brought to `version` by its steps.
    ///
    /// The events made share the stored event's stream version and position; the first
    /// keeps its id, the others get ids made from it (the same at every read, so
    /// idempotent handlers tell them apart).
    #[must_use]
    pub fn split<F, E>(mut self, event_type: &'static str, version: u32, split: F) -> Self
    where
        F: Fn(Value) -> Result<Vec<SplitPart>, E> + Send + Sync + 'static,
        E: Into<UpcasterFailure>,
    {
        if version == 0 {
            self.note(RegistrationError::VersionZero {
                event_type: event_type.to_owned(),
            });
            return self;
        }
        let split: SplitFn = Arc::new(move |payload| split(payload).map_err(Into::into));
        let rules = self.rules_mut(event_type);
        if rules.rename.is_some() || rules.split.is_some() {
            self.note(RegistrationError::Conflict {
                event_type: event_type.to_owned(),
            });
            return self;
        }
        rules.split = Some((version, split));
        self
    }

    /// Binds the registry to an event set whose types are at `current` versions, and
    /// checks it: every chain goes without gap up to its type's current version (or to
    /// its split's version), renames lead to a type of the set, splits are of types the
    /// set no longer has. What is wrong is kept and reported by [`check`](Self::check) and
    /// by every decode that needs the registry.
    ///
    /// `#[derive(Aggregate)]` calls it; a hand-written event set calls it once, with its
    /// types' names and versions.
    #[must_use]
    pub fn for_event_types(mut self, current: &[(&'static str, u32)]) -> Self {
        let registry = self.registry_mut();
        registry.current = current
            .iter()
            .map(|&(name, version)| (Box::from(name), version))
            .collect();
        if registry.problem.is_none() {
            registry.problem = validate(registry).err();
        }
        registry.reindex();
        self
    }

    /// Merges registries (a projection's, made of the registries of the sets its events
    /// come from). The same registry given twice counts once.
    #[must_use]
    pub fn merge<'a>(registries: impl IntoIterator<Item = &'a Upcasters>) -> Self {
        let mut merged: Option<Self> = None;
        for upcasters in registries {
            let Some(registry) = &upcasters.registry else {
                continue;
            };
            match &mut merged {
                None => merged = Some(upcasters.clone()),
                Some(into)
                    if into
                        .registry
                        .as_ref()
                        .is_some_and(|r| Arc::ptr_eq(r, registry)) => {}
                Some(into) => {
                    let target = into.registry_mut();
                    for (name, version) in &registry.current {
                        target.current.insert(name.clone(), *version);
                    }
                    for (name, rules) in &registry.rules {
                        if target.rules.insert(name.clone(), rules.clone()).is_some() {
                            target.problem.get_or_insert(RegistrationError::Conflict {
                                event_type: name.to_string(),
                            });
                        }
                    }
                    if let Some(problem) = &registry.problem {
                        target.problem.get_or_insert_with(|| problem.clone());
                    }
                    target.reindex();
                }
            }
        }
        merged.unwrap_or_default()
    }

    /// Whether the registry works: call it at start to fail fast.
    ///
    /// # Errors
    /// The first thing wrong with it, saying what to write instead.
    pub fn check(&self) -> Result<(), RegistrationError> {
        match self.registry.as_ref().and_then(|r| r.problem.clone()) {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// Whether events stored under `event_type` may become another type (a rename or a
    /// split).
    pub(crate) fn renames_or_splits(&self, event_type: &str) -> bool {
        self.registry.as_ref().is_some_and(|r| {
            r.index
                .get(event_type)
                .is_some_and(|entry| entry.rules.rename.is_some() || entry.rules.split.is_some())
        })
    }
}

/// The first thing wrong with a bound registry.
fn validate(registry: &Registry) -> Result<(), RegistrationError> {
    let mut names: Vec<&Box<str>> = registry.rules.keys().collect();
    names.sort_unstable();
    for name in names {
        let rules = &registry.rules[name];
        let current = registry.current.get(name).copied();
        let event_type = name.to_string();
        if let Some(new) = &rules.rename {
            let why = if current.is_some() {
                Some(
                    "the event set still has the old name: remove it from `events(..)` or remove the rename",
                )
            } else if !registry.current.contains_key(*new) {
                Some("the event set has no type of the new name: list it in `events(..)`")
            } else if !rules.steps.is_empty() {
                Some(
                    "a renamed type's steps belong to its new name: register them for the new name",
                )
            } else {
                None
            };
            if let Some(why) = why {
                return Err(RegistrationError::BadRename {
                    old: event_type,
                    new: new.to_string(),
                    why,
                });
            }
            continue;
        }
        let top = match (&rules.split, current) {
            (Some(_), Some(_)) => return Err(RegistrationError::SplitOfCurrent { event_type }),
            (Some((version, _)), None) => *version,
            (None, Some(current)) => current,
            (None, None) => return Err(RegistrationError::UnknownType { event_type }),
        };
        if rules.steps.len() > MAX_STEPS {
            return Err(RegistrationError::TooLong {
                event_type,
                steps: rules.steps.len(),
                max: MAX_STEPS,
            });
        }
        let Some((&first, _)) = rules.steps.first_key_value() else {
            continue;
        };
        for from in first..top {
            if !rules.steps.contains_key(&from) {
                return Err(RegistrationError::Gap {
                    event_type,
                    missing: from,
                    next: from + 1,
                });
            }
        }
        if let Some((&last, _)) = rules.steps.last_key_value()
            && last >= top
        {
            return Err(RegistrationError::BeyondCurrent {
                event_type,
                from: last,
                current: top,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
