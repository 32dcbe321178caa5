//! What goes wrong with upcasters: a registry that cannot work (found when it is bound to
//! an event set) and one stored event that cannot be brought up to date.

use uuid::Uuid;

/// What a user's upcaster or split function returns on failure.
pub type UpcasterFailure = Box<dyn std::error::Error + Send + Sync>;

/// An event set's upcasters cannot work as registered. Each message names the fix.
///
/// Found when the registry is bound to its event set: on first use of
/// [`DomainEvent::upcasters`](crate::event::DomainEvent::upcasters), which
/// [`Upcasters::check`](super::Upcasters::check) lets an application do at start. Until it
/// is fixed, every event that needs the registry fails to decode with this error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistrationError {
    /// Two upcasters for one step.
    #[error(
        "two upcasters for `{event_type}` from version {from}: register one function per step"
    )]
    DuplicateStep {
        /// The event type.
        event_type: String,
        /// The version both start from.
        from: u32,
    },
    /// A chain that skips a version.
    #[error(
        "the upcasters of `{event_type}` skip version {missing}: register `.step(\"{event_type}\", {missing}, ..)` \
         to go from {missing} to {next}"
    )]
    Gap {
        /// The event type.
        event_type: String,
        /// The version no upcaster starts from.
        missing: u32,
        /// The version after it.
        next: u32,
    },
    /// A step that would go beyond the event type's current version.
    #[error(
        "an upcaster of `{event_type}` goes from version {from} to {}, beyond its current version {current}: \
         declare the event's version (`events({event_type}(version = {}))`) or remove the step",
        from + 1, from + 1
    )]
    BeyondCurrent {
        /// The event type.
        event_type: String,
        /// The step's start.
        from: u32,
        /// The event type's current version.
        current: u32,
    },
    /// An upcaster, rename or split for a type this event set neither has nor had.
    #[error(
        "upcasters are registered for `{event_type}`, which this event set does not know: list it in \
         `events(..)`, or `.rename(\"{event_type}\", \"NewName\")` or `.split(\"{event_type}\", ..)` it"
    )]
    UnknownType {
        /// The event type.
        event_type: String,
    },
    /// A type renamed or split that the event set still has, or renamed into a type it
    /// does not have.
    #[error("`{old}` cannot be renamed to `{new}`: {why}")]
    BadRename {
        /// The stored name.
        old: String,
        /// The name it was to become.
        new: String,
        /// Why not, and what to write instead.
        why: &'static str,
    },
    /// Two splits, or a split and a rename, of one stored type.
    #[error(
        "`{event_type}` is split or renamed twice: register one rename or one split per stored type"
    )]
    Conflict {
        /// The stored type.
        event_type: String,
    },
    /// A split of a type the event set still has.
    #[error(
        "`{event_type}` is still in `events(..)`: only a type the set no longer has can be split; \
         remove it from `events(..)` or remove the split"
    )]
    SplitOfCurrent {
        /// The stored type.
        event_type: String,
    },
    /// A schema version of 0 (versions start at 1).
    #[error("`{event_type}`: schema versions start at 1, not 0")]
    VersionZero {
        /// The event type.
        event_type: String,
    },
    /// A chain longer than [`MAX_STEPS`](super::MAX_STEPS).
    #[error(
        "`{event_type}` has {steps} upcasters, more than the {max} a chain may have: \
         fold old steps into one"
    )]
    TooLong {
        /// The event type.
        event_type: String,
        /// How many steps it has.
        steps: usize,
        /// The bound.
        max: usize,
    },
}

/// One stored event could not be brought up to its type's current version.
#[derive(Debug, thiserror::Error)]
#[error("cannot upcast event {event_id} `{event_type}` from version {from} to {to}")]
pub struct UpcastError {
    /// The stored event's id.
    pub event_id: Uuid,
    /// Its stored type name.
    pub event_type: String,
    /// Its stored schema version.
    pub from: u32,
    /// The version this code reads (of the type it was renamed or split into, if any).
    pub to: u32,
    /// Why.
    #[source]
    pub reason: UpcastFailure,
}

/// Why an event could not be upcast.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpcastFailure {
    /// The user's upcaster failed.
    #[error("the upcaster of `{event_type}` from version {from} failed")]
    Step {
        /// The type the step is registered for.
        event_type: String,
        /// The version the step starts from.
        from: u32,
        /// What it returned.
        #[source]
        source: UpcasterFailure,
    },
    /// The user's split function failed.
    #[error("the split of `{event_type}` failed")]
    Split {
        /// The stored type.
        event_type: String,
        /// What it returned.
        #[source]
        source: UpcasterFailure,
    },
    /// The stored version is older than the chain's first step.
    #[error(
        "no upcaster goes from version {from} of `{event_type}`: register `.step(\"{event_type}\", {from}, ..)`"
    )]
    NoStep {
        /// The type.
        event_type: String,
        /// The version no step starts from.
        from: u32,
    },
    /// The stored version is newer than this code's.
    #[error(
        "version {stored} of `{event_type}` is newer than this code's version {current}: \
         deploy the code that knows it before reading its events"
    )]
    Newer {
        /// The type.
        event_type: String,
        /// The stored version.
        stored: u32,
        /// This code's version.
        current: u32,
    },
    /// A split made an event of a type the event set does not know.
    #[error("the split of `{from_type}` made `{event_type}`, which this event set does not know")]
    SplitIntoUnknown {
        /// The stored type.
        from_type: String,
        /// The type made.
        event_type: String,
    },
    /// A payload that is not JSON this code can read, or an upcaster's result that cannot
    /// be written back.
    #[error("the payload is not valid JSON")]
    Json(#[source] serde_json::Error),
    /// The registry is misconfigured.
    #[error("the event set's upcasters are misconfigured")]
    Registration(#[source] RegistrationError),
    /// Renames, splits and steps went round more than [`MAX_STEPS`](super::MAX_STEPS) times.
    #[error("more than {0} upcasting steps: a rename or split goes round in a circle")]
    TooManySteps(usize),
}
