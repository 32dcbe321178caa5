//! Faults with real processes, for every broker: the `distributed` example's consumer
//! killed (SIGKILL) again and again in the middle of the stream, its relay killed while it
//! publishes, the broker itself killed and started again. Whatever dies, every stored event
//! is handled within a bound after the last fault, counted by event id from what the
//! consumer processes printed:
//!
//! - `OrderPlaced` (group `confirmations`): the idempotent confirmation printed, then the
//!   CRM update finished; `OrderShipped` (group `shipping`): the shipping notice printed;
//! - the confirmation (`bus::Idempotent`, its processed messages in one SQLite file that
//!   every consumer shares) runs once per event; the one case its documentation allows
//!   (the process died between the handler and the record: at least once) is recognised
//!   from the output (the dead consumer confirmed, and never started the CRM update that
//!   follows the record), counted and reported apart;
//! - the CRM update and the shipping notice are at least once: their duplicates are counted
//!   and reported, never failed.
//!
//! Every wait polls the processes' output or the store with a deadline; a scenario's
//! bounds come from its broker's test module
//! (`tests/processes/broker_processes/`), which runs each scenario alone.

#![allow(dead_code)]

mod broker;
mod consumers;
mod prints;
mod process;
mod scenarios;

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

// Each binary uses some of these: what one leaves unused another needs.
#[allow(unused_imports)]
pub use broker::*;
#[allow(unused_imports)]
pub use consumers::*;
#[allow(unused_imports)]
pub use prints::*;
#[allow(unused_imports)]
pub use process::*;
#[allow(unused_imports)]
pub use scenarios::*;

/// The tests of one binary run one after the other: each scenario's bounds are measured
/// without another scenario's processes on the same two cores.
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How long a scenario may wait for each of its states (per broker: a Kafka group hands a
/// dead member's partitions on only after its session timed out).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// From a consumer's start until it handled its share (the first join included).
    pub progress: Duration,
    /// From the last fault until every stored event was handled.
    pub recovery: Duration,
}
