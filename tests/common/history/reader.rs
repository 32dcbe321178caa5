//! Reading the files of every process back into one history, in an order that keeps each
//! process's own order and interleaves the processes by their clocks.
//!
//! A process killed while writing leaves its last line cut short: that line (the last of
//! its file, with no '\n', that does not parse) is skipped and listed in
//! [`History::torn_lines`]. A line that does not parse anywhere else is an error: nothing but
//! a kill can cut a line, and a kill cuts only the last one.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::path::{Path, PathBuf};

use super::op::Op;
use super::writer::HISTORY_FILE_EXTENSION;

/// Every op of a test, merged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// Merged: each process's ops in `seq` order, the processes interleaved by `at_ms`.
    pub ops: Vec<Op>,
    /// The cut last lines skipped.
    pub torn_lines: Vec<TornLine>,
    /// The files read, in the order read.
    pub files: Vec<PathBuf>,
}

/// A last line a kill cut short.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornLine {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    pub text: String,
}

/// Why a history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("reading history {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("history {} line {line} is not an op ({source}): {text}", path.display())]
    Malformed {
        path: PathBuf,
        line: usize,
        text: String,
        source: serde_json::Error,
    },
}

impl History {
    /// Reads every `*.jsonl` file of `dir`, in file-name order.
    pub fn read_dir(dir: impl AsRef<Path>) -> Result<Self, HistoryError> {
        let dir = dir.as_ref();
        let io_error = |source| HistoryError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_error)? {
            let path = entry.map_err(io_error)?.path();
            if path
                .extension()
                .is_some_and(|ext| ext == HISTORY_FILE_EXTENSION)
            {
                paths.push(path);
            }
        }
        paths.sort();
        Self::read_files(paths)
    }

    /// Reads the given files (any names), in that order.
    pub fn read_files(
        paths: impl IntoIterator<Item = impl AsRef<Path>>,
    ) -> Result<Self, HistoryError> {
        let mut ops = Vec::new();
        let mut torn_lines = Vec::new();
        let mut files = Vec::new();
        for path in paths {
            let path = path.as_ref().to_path_buf();
            let bytes = std::fs::read(&path).map_err(|source| HistoryError::Io {
                path: path.clone(),
                source,
            })?;
            read_lines(&path, &bytes, &mut ops, &mut torn_lines)?;
            files.push(path);
        }
        let mut history = Self::from_ops(ops);
        history.torn_lines = torn_lines;
        history.files = files;
        Ok(history)
    }

    /// A history of ops built by hand (or gathered otherwise), merged as files are.
    pub fn from_ops(ops: impl IntoIterator<Item = Op>) -> Self {
        Self {
            ops: merge_by_clock(ops),
            ..Self::default()
        }
    }

    /// The processes that wrote ops, by name.
    pub fn processes(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.ops.iter().map(|op| op.process.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

fn read_lines(
    path: &Path,
    bytes: &[u8],
    ops: &mut Vec<Op>,
    torn_lines: &mut Vec<TornLine>,
) -> Result<(), HistoryError> {
    let ends_with_newline = bytes.last() == Some(&b'\n');
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    // `split` yields an empty piece after a final '\n': not a line.
    let count = if ends_with_newline || bytes.is_empty() {
        lines.len() - 1
    } else {
        lines.len()
    };
    for (index, raw) in lines.iter().take(count).enumerate() {
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let is_unterminated_last = !ends_with_newline && index + 1 == count;
        match serde_json::from_slice::<Op>(raw) {
            Ok(op) => ops.push(op),
            Err(_) if is_unterminated_last => torn_lines.push(TornLine {
                file: path.to_path_buf(),
                line: index + 1,
                text: String::from_utf8_lossy(raw).into_owned(),
            }),
            Err(source) => {
                return Err(HistoryError::Malformed {
                    path: path.to_path_buf(),
                    line: index + 1,
                    text: String::from_utf8_lossy(raw).into_owned(),
                    source,
                });
            }
        }
    }
    Ok(())
}

/// Each process's ops by `seq`, then a k-way merge by `at_ms`: a clock stepped back inside
/// one process cannot reorder that process's own ops.
fn merge_by_clock(ops: impl IntoIterator<Item = Op>) -> Vec<Op> {
    let mut by_process: BTreeMap<String, Vec<Op>> = BTreeMap::new();
    for op in ops {
        by_process.entry(op.process.clone()).or_default().push(op);
    }
    let mut queues: Vec<std::vec::IntoIter<Op>> = by_process
        .into_values()
        .map(|mut ops| {
            ops.sort_by_key(|op| op.seq);
            ops.into_iter()
        })
        .collect();
    let mut heads = BinaryHeap::new();
    let mut next: Vec<Option<Op>> = Vec::with_capacity(queues.len());
    for (queue_index, queue) in queues.iter_mut().enumerate() {
        let head = queue.next();
        if let Some(op) = &head {
            heads.push(Reverse((op.at_ms, queue_index, op.seq)));
        }
        next.push(head);
    }
    let mut merged = Vec::new();
    while let Some(Reverse((_, queue_index, _))) = heads.pop() {
        let Some(op) = next[queue_index].take() else {
            continue;
        };
        merged.push(op);
        if let Some(op) = queues[queue_index].next() {
            heads.push(Reverse((op.at_ms, queue_index, op.seq)));
            next[queue_index] = Some(op);
        }
    }
    merged
}
