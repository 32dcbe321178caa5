//! Jepsen-style histories for the fault tests: each process of the library that a test
//! runs (appenders, projection runners, segment workers, relays, consumer groups) writes
//! what it did, op by op, and after the faults the test reads every file back and checks
//! the whole for what the faults must not cause: lost writes, duplicates beyond what the
//! handler's delivery allows, events nobody appended, reads of failed appends, writes at a
//! fenced epoch, streams committed out of order; and how long a handler stalled, and why.
//!
//! Counting events from each process's printed output tells whether every event arrived;
//! a history also tells when, by whom, at which epoch and under which fault, which is what
//! a failure needs explained.
//!
//! How a test uses it: it makes a directory (`std::env::temp_dir()` and a uuid) and tells
//! each process it starts to write there; each process makes one [`HistoryWriter`] named
//! after its run (`consumer-1.r2` after a restart), shares it with its tasks, and wraps
//! each operation: `invoke(Call::Append { .. })` before the append, then `ok_with` (with the
//! positions), `fail`, or `info` (a timeout); `invoke(Call::HandleStart(..))` before a
//! handler runs and `ok` once its commit is done (the completion of a start is written as
//! its `HandleCommit`); `record(OpKind::Ok, Call::Claim { .. })` when it takes a segment,
//! and `record(OpKind::Ok, Call::CheckpointSave { .. })` when it saves a checkpoint. The
//! test's own process writes the faults it causes: `note_nemesis("drop both ways")`, then
//! `note_nemesis_end` when healed; `note_instant_nemesis("SIGKILL consumer-1")`. At the
//! end it reads the directory and checks it against what it expects of its handlers:
//! `check(&History::read_dir(&dir)?, &Expectations::new().handler("projection",
//! Delivery::ExactlyOnce))`, then `report.assert_clean()`, which panics listing every
//! anomaly (event ids, processes, clocks), and `report.assert_longest_stall_at_most(..)`
//! to bound how long the faults kept a handler from its events.
//!
//! The files are plain JSON lines (see `op`), so a process that does not link this crate
//! can write them too.

mod anomaly;
mod appends;
mod check;
mod delivery;
mod expect;
mod op;
mod order;
mod reader;
mod recording_bus;
mod report;
mod stall;
mod writer;

#[cfg(test)]
mod tests;

pub use anomaly::{Anomaly, CommitSite, DuplicateReason, OrderScope, StaleWrite};
pub use check::check;
pub use expect::{Delivery, EventFilter, Expectations, HandlerExpectation};
pub use op::{Call, Handling, Op, OpKind};
pub use reader::{History, HistoryError, TornLine};
pub use recording_bus::RecordingBus;
pub use report::Report;
pub use stall::Stall;
pub use writer::{HISTORY_FILE_EXTENSION, HistoryWriter, OpRef, wall_clock_ms};
