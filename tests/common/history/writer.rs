//! Writing a process's history as it runs, so that whatever kills the process leaves every
//! line before the kill intact.
//!
//! Each op is one JSON line written with a single `write_all` (line and '\n' together) to a
//! file opened with `O_APPEND`, under a mutex that also hands out `seq`: a SIGKILL can cut
//! only the line being written, which the reader skips and reports. Nothing is buffered in
//! the process, so nothing is lost with it; no `fsync` either (a process dies, the machine
//! does not).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use super::op::{Call, Op, OpKind};

/// The extension of history files; `History::read_dir` reads the files that have it.
pub const HISTORY_FILE_EXTENSION: &str = "jsonl";

/// An `invoke` written, to be completed with `ok`, `fail` or `info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpRef {
    /// The `seq` of the `invoke`.
    pub seq: u64,
    /// What was invoked: a completion records it again (see [`Call::completion`]).
    pub f: Call,
}

/// One process run's history file, shared by its tasks (`Arc<HistoryWriter>`).
#[derive(Debug)]
pub struct HistoryWriter {
    process: String,
    path: PathBuf,
    file: Mutex<AppendOnlyFile>,
}

#[derive(Debug)]
struct AppendOnlyFile {
    file: File,
    next_seq: u64,
}

impl HistoryWriter {
    /// Creates `<dir>/<process>.jsonl` (and `dir`). Fails if it exists: a file holds one
    /// process run, whose `seq` starts at 0, so a restarted process takes a new name.
    pub fn create(dir: impl AsRef<Path>, process: impl Into<String>) -> io::Result<Self> {
        let process = process.into();
        let file_name: String = process
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        std::fs::create_dir_all(dir.as_ref())?;
        let path = dir
            .as_ref()
            .join(format!("{file_name}.{HISTORY_FILE_EXTENSION}"));
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)?;
        Ok(Self {
            process,
            path,
            file: Mutex::new(AppendOnlyFile { file, next_seq: 0 }),
        })
    }

    pub fn process(&self) -> &str {
        &self.process
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the `invoke` of `f`; complete it with [`ok`](Self::ok), [`fail`](Self::fail)
    /// or [`info`](Self::info).
    pub fn invoke(&self, f: Call) -> io::Result<OpRef> {
        let seq = self.write(OpKind::Invoke, None, f.clone())?;
        Ok(OpRef { seq, f })
    }

    /// The invoked call was done and acknowledged.
    pub fn ok(&self, invoked: &OpRef) -> io::Result<()> {
        self.complete(invoked, OpKind::Ok, invoked.f.completion())
    }

    /// Done, with what only the outcome knows (an append's `positions`).
    pub fn ok_with(&self, invoked: &OpRef, f: Call) -> io::Result<()> {
        self.complete(invoked, OpKind::Ok, f)
    }

    /// Definitely not done.
    pub fn fail(&self, invoked: &OpRef) -> io::Result<()> {
        self.complete(invoked, OpKind::Fail, invoked.f.completion())
    }

    /// Outcome unknown: it may or may not have happened.
    pub fn info(&self, invoked: &OpRef) -> io::Result<()> {
        self.complete(invoked, OpKind::Info, invoked.f.completion())
    }

    /// A fault starts; [`note_nemesis_end`](Self::note_nemesis_end) when it stops.
    pub fn note_nemesis(&self, fault: impl Into<String>) -> io::Result<OpRef> {
        self.invoke(Call::Nemesis {
            fault: fault.into(),
        })
    }

    /// The fault `started` stops (healed, resumed, clock set back).
    pub fn note_nemesis_end(&self, started: &OpRef) -> io::Result<()> {
        self.ok(started)
    }

    /// An instant fault, which has no end (a SIGKILL): an `info` of its own.
    pub fn note_instant_nemesis(&self, fault: impl Into<String>) -> io::Result<()> {
        let fault = fault.into();
        self.record(OpKind::Info, Call::Nemesis { fault }).map(drop)
    }

    /// An op with no other half (a `Claim` that succeeded, a `CheckpointSave` written);
    /// returns its `seq`.
    pub fn record(&self, kind: OpKind, f: Call) -> io::Result<u64> {
        self.write(kind, None, f)
    }

    fn complete(&self, invoked: &OpRef, kind: OpKind, f: Call) -> io::Result<()> {
        self.write(kind, Some(invoked.seq), f).map(drop)
    }

    fn write(&self, kind: OpKind, completes: Option<u64>, f: Call) -> io::Result<u64> {
        // A task that panicked while holding the lock wrote whole lines or none: go on.
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let op = Op {
            process: self.process.clone(),
            seq: file.next_seq,
            at_ms: wall_clock_ms(),
            kind,
            completes,
            f,
        };
        let mut line = serde_json::to_vec(&op).map_err(io::Error::other)?;
        line.push(b'\n');
        file.file.write_all(&line)?;
        file.next_seq += 1;
        Ok(op.seq)
    }
}

/// This process's wall clock, in milliseconds since the UNIX epoch (0 before it).
pub fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}
