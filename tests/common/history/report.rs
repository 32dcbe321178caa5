//! What the checker hands back: the anomalies, the stalls, and a summary a failing test
//! prints whole, so that one run's output is enough to find every anomaly in the files.

use std::fmt;
use std::time::Duration;

use super::anomaly::Anomaly;
use super::reader::{History, TornLine};
use super::stall::Stall;

/// The outcome of [`check`](super::check).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub anomalies: Vec<Anomaly>,
    /// The longest of `stalls`.
    pub longest_stall: Option<Stall>,
    /// Each named handler's longest stall.
    pub stalls: Vec<Stall>,
    /// Lines cut by a kill, skipped (not an anomaly: listed for the reader).
    pub torn_lines: Vec<TornLine>,
    pub ops: usize,
    pub processes: Vec<String>,
    /// The clock of the first op, to read the others' `at_ms` against.
    pub first_at_ms: Option<u64>,
}

impl Report {
    pub(super) fn new(history: &History, anomalies: Vec<Anomaly>, stalls: Vec<Stall>) -> Self {
        // The first of the longest, so that ties read in handler order.
        let longest_stall = stalls
            .iter()
            .rev()
            .max_by_key(|stall| stall.duration_ms)
            .cloned();
        Self {
            anomalies,
            longest_stall,
            stalls,
            torn_lines: history.torn_lines.clone(),
            ops: history.ops.len(),
            processes: history.processes().into_iter().map(str::to_owned).collect(),
            first_at_ms: history.ops.iter().map(|op| op.at_ms).min(),
        }
    }

    /// No anomaly (stalls and torn lines aside).
    pub fn is_clean(&self) -> bool {
        self.anomalies.is_empty()
    }

    /// The anomalies of one name ("LostWrite", "Duplicate"…).
    pub fn anomalies_named(&self, name: &str) -> Vec<&Anomaly> {
        self.anomalies.iter().filter(|a| a.name() == name).collect()
    }

    /// Panics with the whole summary if there is any anomaly.
    #[track_caller]
    pub fn assert_clean(&self) {
        assert!(self.is_clean(), "the history has anomalies:\n{self}");
    }

    /// Panics with the whole summary if some handler stalled longer than `bound`.
    #[track_caller]
    pub fn assert_longest_stall_at_most(&self, bound: Duration) {
        if let Some(stall) = &self.longest_stall {
            assert!(
                u128::from(stall.duration_ms) <= bound.as_millis(),
                "a handler stalled longer than {bound:?}:\n{self}"
            );
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "history: {} ops from {} processes ({}), first at_ms {}; {} anomalies",
            self.ops,
            self.processes.len(),
            self.processes.join(", "),
            self.first_at_ms
                .map_or_else(|| "-".to_owned(), |at| at.to_string()),
            self.anomalies.len()
        )?;
        for anomaly in &self.anomalies {
            writeln!(f, "  - {anomaly}")?;
        }
        match &self.longest_stall {
            Some(stall) => writeln!(f, "longest stall: {stall}")?,
            None => writeln!(f, "longest stall: none")?,
        }
        for torn in &self.torn_lines {
            writeln!(
                f,
                "torn line skipped: {} line {}: {}",
                torn.file.display(),
                torn.line,
                torn.text
            )?;
        }
        Ok(())
    }
}
