//! An append's rows, written by multi-row `INSERT`s: every statement is a round trip to
//! sqlx's SQLite worker thread, so a batch goes in as few statements as the parameter
//! limit allows, each of a size whose statement is prepared once per connection.

use std::sync::OnceLock;

use sqlx::{Sqlite, Transaction};

use super::{format_timestamp, to_i64, to_u64};
use crate::event::{NewEvent, StreamId};

/// The most rows one statement inserts: 9 x 256 = 2,304 bound parameters, under SQLite's
/// limit of 32,766 (since 3.32; sqlx bundles 3.46), and a 1,000-event append is 7
/// statements, not 1,000.
const MAX_ROWS: usize = 256;

/// The statement sizes, largest first: a batch is split into full statements of
/// [`MAX_ROWS`], then the rest into powers of two, so that at most 9 statements are ever
/// prepared (and cached by sqlx) per connection.
const SIZES: [usize; 9] = [MAX_ROWS, 128, 64, 32, 16, 8, 4, 2, 1];

/// The `INSERT` of `rows` rows, nine anonymous parameters per row. Not numbered (`?NNN`):
/// sqlx looks every parameter's name up when it binds, and SQLite finds a name by a scan of
/// the statement's names, which made binding a 128-row statement quadratic.
fn insert_text(rows: usize) -> &'static str {
    static TEXTS: OnceLock<Vec<String>> = OnceLock::new();
    let texts = TEXTS.get_or_init(|| SIZES.iter().map(|&rows| build_insert(rows)).collect());
    let index = SIZES.iter().position(|&size| size == rows).unwrap_or(0);
    &texts[index]
}

fn build_insert(rows: usize) -> String {
    let mut text = String::from(
        "INSERT INTO events (stream_type, stream_id, version, event_id, event_type, \
         schema_version, timestamp, payload, metadata) VALUES ",
    );
    for row in 0..rows {
        if row > 0 {
            text.push(',');
        }
        text.push_str("(?, ?, ?, ?, ?, ?, ?, ?, ?)");
    }
    text
}

/// The sizes of the statements `len` rows are written with, in order.
fn statement_sizes(mut len: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        let size = SIZES.iter().copied().find(|&size| size <= len)?;
        len -= size;
        Some(size)
    })
}

/// Inserts `events` (with their stored `metadata`) as versions `first_version` on, in
/// order; their global positions.
///
/// The rows of one statement take consecutive positions: `AUTOINCREMENT` gives each new row
/// one more than the largest ever used, and the transaction holds the database's write lock.
///
/// # Errors
/// sqlx's, a unique violation of the stream's version included.
pub(super) async fn insert_rows(
    tx: &mut Transaction<'static, Sqlite>,
    stream: &StreamId,
    first_version: u64,
    events: &[NewEvent],
    metadata: &[String],
) -> Result<Vec<u64>, sqlx::Error> {
    let mut positions = Vec::with_capacity(events.len());
    let mut done = 0;
    for size in statement_sizes(events.len()) {
        let mut query = sqlx::query(insert_text(size));
        let rows = events[done..done + size]
            .iter()
            .zip(&metadata[done..done + size]);
        for (version, (event, metadata)) in (first_version + done as u64..).zip(rows) {
            query = query
                .bind(stream.aggregate_type())
                .bind(stream.aggregate_id())
                .bind(to_i64(version))
                .bind(event.event_id.to_string())
                .bind(event.event_type.as_ref())
                .bind(i64::from(event.schema_version))
                .bind(format_timestamp(event.timestamp))
                .bind(event.payload.as_str())
                .bind(metadata.as_str());
        }
        let last = query.execute(&mut **tx).await?.last_insert_rowid();
        let last = to_u64(last);
        positions.extend(
            (0..size as u64)
                .rev()
                .map(|before| last.saturating_sub(before)),
        );
        done += size;
    }
    Ok(positions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_split_into_full_statements_then_powers_of_two() {
        let sizes = |len| statement_sizes(len).collect::<Vec<_>>();
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(1_000), [256, 256, 256, 128, 64, 32, 8]);
        assert_eq!(sizes(300).iter().sum::<usize>(), 300);
        assert!(insert_text(1).ends_with("VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"));
        assert!(insert_text(2).ends_with("?),(?, ?, ?, ?, ?, ?, ?, ?, ?)"));
        assert_eq!(insert_text(256).matches('?').count(), 256 * 9);
    }
}
