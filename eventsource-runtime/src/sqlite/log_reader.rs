//! The SQLite store's [`LogReader`]: a reader catching up has SQLite write the next page
//! while the page before it is decoded.
//!
//! A page is read in two steps, one after the other: SQLite writes it (on sqlx's worker
//! thread), then it is decoded (`log_page.rs`). Read one `read_all` at a time, the two steps of
//! each page follow those of the page before; here a task has SQLite write the pages one
//! after the other, starting each as soon as the one before is written, and each page is
//! decoded by a task of its own meanwhile. One page waits written or decoded at most, so a
//! reader holds three pages at most. A batch that does not end where the next page starts
//! (an unreadable event, a page read row by row) starts the pages over from where the
//! reader goes on.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::log_page::{read_written, write_page};
use super::{SqliteEventStore, joined};
use crate::store::backend::{ReadAll, read_all_traced};
use crate::store::{LogReader, ReadBatch, StoreError};

/// See the [module](self).
pub(super) struct SqliteLogReader<'a> {
    store: &'a SqliteEventStore,
    /// Where the next batch starts.
    next: u64,
    batch_size: usize,
    /// The pages read ahead, while full pages follow one another.
    ahead: Option<Ahead>,
}

/// The pages read ahead: each page's start and its read (decoded by a task of its own), in
/// order, from a task having SQLite write them.
///
/// Dropped, it lets the task finish the page it is writing: the task ends when it finds no
/// one to hand the page to. Never aborted in the middle of a statement: sqlx can lose a
/// pool's connection to a future cancelled while it acquires one (launchbadge/sqlx#1869),
/// and with it a database held in memory.
struct Ahead {
    pages: mpsc::Receiver<(u64, JoinHandle<ReadAll>)>,
}

impl Ahead {
    /// Pages of `limit` events from `from` on, until one is not full (or fails).
    fn start(store: &SqliteEventStore, from: u64, limit: usize) -> Self {
        let pool = store.pool().clone();
        let (sender, pages) = mpsc::channel(1);
        tokio::spawn(async move {
            let mut from = from;
            while !sender.is_closed() {
                let written = write_page(&pool, from, limit).await;
                let next = written
                    .as_ref()
                    .ok()
                    .and_then(|page| page.next_after_full(limit));
                let read = tokio::spawn(read_written(pool.clone(), written, from, limit));
                if sender.send((from, read)).await.is_err() {
                    return;
                }
                match next {
                    Some(next) => from = next,
                    None => return,
                }
            }
        });
        Self { pages }
    }
}

impl<'a> SqliteLogReader<'a> {
    pub(super) fn new(store: &'a SqliteEventStore, from_position: u64, batch_size: usize) -> Self {
        Self {
            store,
            next: from_position,
            batch_size: batch_size.max(1),
            ahead: None,
        }
    }

    /// The batch from `self.next` on: the page read ahead from there, or the first of new
    /// pages.
    async fn read(&mut self) -> ReadAll {
        let from = self.next;
        let ahead = match self.ahead.as_mut() {
            Some(ahead) => ahead.pages.recv().await,
            None => None,
        };
        let read = match ahead {
            Some((start, read)) if start == from => read,
            // None ahead (the last page was not full), or not from here: pages from here.
            _ => {
                let ahead = self
                    .ahead
                    .insert(Ahead::start(self.store, from, self.batch_size));
                match ahead.pages.recv().await {
                    Some((_, read)) => read,
                    None => return Err(StoreError::Unavailable("the page writer stopped".into())),
                }
            }
        };
        joined(read).await
    }
}

#[async_trait::async_trait]
impl LogReader for SqliteLogReader<'_> {
    async fn next_batch(&mut self) -> Result<ReadBatch, StoreError> {
        let (store, from, limit) = (self.store, self.next, self.batch_size);
        let batch = read_all_traced(store, from, limit, self.read()).await;
        match &batch {
            Ok(batch) => self.next = batch.next_position(from),
            Err(_) => self.ahead = None,
        }
        batch
    }
}
