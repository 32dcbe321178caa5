//! The in-memory store's segment index: for each segment count read, the rows of each
//! segment, built by the reads as the log grows (each row visited once per count, whatever
//! the number of segments). Appends never touch it: a store no split projection reads pays
//! nothing.

use std::collections::HashMap;

use super::Log;
use crate::store::Segment;

/// Every segment count read so far, and its index.
#[derive(Default)]
pub(super) struct SegmentIndex {
    counts: HashMap<u32, CountIndex>,
}

/// The rows of each segment of one count, as far as the log was indexed.
struct CountIndex {
    /// The log's rows indexed so far (from the first).
    indexed: usize,
    /// Each stream's segment, by stream index ([`UNKNOWN`] until a row of it is indexed).
    of_stream: Vec<u32>,
    /// Each segment's row indices, ascending.
    rows: Vec<Vec<usize>>,
}

/// A stream whose segment is not computed yet.
const UNKNOWN: u32 = u32::MAX;

impl SegmentIndex {
    /// Up to `limit` indices of `segment`'s rows from row index `start` on, the index
    /// brought up to `log` first.
    pub(super) fn rows(
        &mut self,
        log: &Log,
        segment: Segment,
        start: usize,
        limit: usize,
    ) -> Vec<usize> {
        let count = segment.count();
        let index = self.counts.entry(count).or_insert_with(|| CountIndex {
            indexed: 0,
            of_stream: Vec::new(),
            rows: vec![Vec::new(); count as usize],
        });
        index.catch_up(log, count);
        let Some(rows) = index.rows.get(segment.index() as usize) else {
            return Vec::new();
        };
        let first = rows.partition_point(|&row| row < start);
        rows[first..].iter().take(limit).copied().collect()
    }
}

impl CountIndex {
    /// Indexes the rows appended since the last read.
    fn catch_up(&mut self, log: &Log, count: u32) {
        if self.indexed >= log.rows.len() {
            return;
        }
        self.of_stream.resize(log.streams.len(), UNKNOWN);
        for (at, row) in log.rows.from(self.indexed) {
            let stream = row.stream as usize;
            let Some(known) = self.of_stream.get_mut(stream) else {
                continue;
            };
            if *known == UNKNOWN {
                let Some((id, _)) = log.streams.get_index(stream) else {
                    continue;
                };
                *known = Segment::hashed(id, count).index();
            }
            if let Some(rows) = self.rows.get_mut(*known as usize) {
                rows.push(at);
            }
        }
        self.indexed = log.rows.len();
    }
}
