//! The small shared status a running component updates (per batch or per state change, not
//! per event) and its health report reads.
// The message in hand and the errors a group deals with itself are the broker groups'.
#![cfg_attr(not(feature = "broker"), allow(dead_code))]

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};

use super::{ComponentState, LastError, LeaseState};

/// A component's state, lease and last error, shared by its running loop and its reporters.
#[derive(Debug)]
pub(crate) struct Status {
    now: Mutex<Now>,
    in_hand: InHand,
}

/// What the status holds.
#[derive(Debug, Clone)]
pub(crate) struct Now {
    pub(crate) state: ComponentState,
    pub(crate) lease: LeaseState,
    pub(crate) last_error: Option<LastError>,
}

impl Status {
    /// A component not run yet.
    pub(crate) fn new(lease: LeaseState) -> Self {
        Self {
            now: Mutex::new(Now {
                state: ComponentState::Starting,
                lease,
                last_error: None,
            }),
            in_hand: InHand::default(),
        }
    }

    fn update(&self, change: impl FnOnce(&mut Now)) {
        change(&mut self.now.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// What the status holds now.
    pub(crate) fn now(&self) -> Now {
        self.now
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The state only.
    pub(crate) fn state(&self) -> ComponentState {
        self.now
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .state
    }

    /// Moves to `state`.
    pub(crate) fn set(&self, state: ComponentState) {
        self.update(|now| now.state = state);
    }

    /// Moves to `state`, the lease now `lease`.
    pub(crate) fn set_with_lease(&self, state: ComponentState, lease: LeaseState) {
        self.update(|now| {
            now.state = state;
            now.lease = lease;
        });
    }

    /// Moves to `state` because of `error` (kept as the last error).
    pub(crate) fn set_after(&self, state: ComponentState, error: &(dyn std::error::Error + '_)) {
        let error = LastError::now(error);
        self.update(|now| {
            now.state = state;
            now.last_error = Some(error);
        });
    }

    /// Keeps `error` as the last error, the state unchanged (a failure the component
    /// deals with itself, such as a message sent to its retry queue).
    pub(crate) fn error(&self, error: &(dyn std::error::Error + '_)) {
        let error = LastError::now(error);
        self.update(|now| now.last_error = Some(error));
    }

    /// The event a consumer group has in hand.
    pub(crate) fn in_hand(&self) -> &InHand {
        &self.in_hand
    }
}

/// When the event a consumer group is handling was recorded (its oldest unsettled one:
/// groups handle in order), without a lock: set and cleared once per message.
#[derive(Debug, Default)]
pub(crate) struct InHand(AtomicI64);

/// "Nothing in hand."
const NONE: i64 = i64::MIN;

impl InHand {
    /// Holds the event recorded at `recorded_at` until the returned guard is dropped.
    pub(crate) fn hold(&self, recorded_at: DateTime<Utc>) -> Holding<'_> {
        let micros = recorded_at.timestamp_micros().max(NONE + 1);
        self.0.store(micros, Ordering::Relaxed);
        Holding(self)
    }

    /// When the event in hand was recorded, if one is.
    pub(crate) fn recorded_at(&self) -> Option<DateTime<Utc>> {
        match self.0.load(Ordering::Relaxed) {
            NONE | 0 => None,
            micros => DateTime::from_timestamp_micros(micros),
        }
    }
}

/// An event in hand; dropped when it is settled.
pub(crate) struct Holding<'a>(&'a InHand);

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        self.0.0.store(NONE, Ordering::Relaxed);
    }
}
