//! What the console's actions are: their names in `POST /api/actions/{action}` and in
//! their spans, and the JSON body they may be given.

use serde::Deserialize;

/// What an action may be given.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ActionBody {
    pub(super) projection: Option<String>,
    pub(super) position: Option<u64>,
    pub(super) queue: Option<String>,
    /// A split's number of segments.
    pub(super) segments: Option<u32>,
    /// A rebuild's new name.
    #[serde(rename = "as")]
    pub(super) rebuilt_as: Option<String>,
    /// The projection's name again, typed by the operator: a change to a projection is made
    /// only when it matches.
    pub(super) confirm: Option<String>,
}

/// The actions, by the name in their path.
#[derive(Debug, Clone, Copy)]
pub(super) enum Action {
    RetryParked,
    SkipParked,
    RequeueDeadLetters,
    PurgeDeadLetters,
    /// A change to a projection, made only with its name typed again.
    Change(Change),
}

/// The changes to a projection, as the command line's `projection` verbs make them.
#[derive(Debug, Clone, Copy)]
pub(super) enum Change {
    Reset,
    Split,
    Rebuild,
    Retire,
}

/// Every action's name in its path, for the answer to an unknown one.
pub(super) const ACTIONS: &str = "retry-parked, skip-parked, requeue-dead-letters, purge-dead-letters, \
                       reset-projection, split-projection, rebuild-projection or \
                       retire-projection";

impl Action {
    pub(super) fn named(name: &str) -> Option<Self> {
        match name {
            "retry-parked" => Some(Self::RetryParked),
            "skip-parked" => Some(Self::SkipParked),
            "requeue-dead-letters" => Some(Self::RequeueDeadLetters),
            "purge-dead-letters" => Some(Self::PurgeDeadLetters),
            "reset-projection" => Some(Self::Change(Change::Reset)),
            "split-projection" => Some(Self::Change(Change::Split)),
            "rebuild-projection" => Some(Self::Change(Change::Rebuild)),
            "retire-projection" => Some(Self::Change(Change::Retire)),
            _ => None,
        }
    }

    /// Its name in its span's, `eventsource.console.{name}`, and in the log.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::RetryParked => "retry_parked",
            Self::SkipParked => "skip_parked",
            Self::RequeueDeadLetters => "requeue_dead_letters",
            Self::PurgeDeadLetters => "purge_dead_letters",
            Self::Change(Change::Reset) => "reset_projection",
            Self::Change(Change::Split) => "split_projection",
            Self::Change(Change::Rebuild) => "rebuild_projection",
            Self::Change(Change::Retire) => "retire_projection",
        }
    }
}
