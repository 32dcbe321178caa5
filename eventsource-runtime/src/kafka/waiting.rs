//! What a consumer group's session waits for besides its next record and its commits: the
//! records ready right after the first of a batch, a retry's delay.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::message::{BorrowedMessage, Message as _};

use super::group_context::GroupConsumer;

/// `first` and the records that are ready right after it, up to `max`.
pub(super) async fn gather<'c>(
    consumer: &'c GroupConsumer,
    first: BorrowedMessage<'c>,
    max: usize,
) -> Vec<BorrowedMessage<'c>> {
    let mut records = vec![first];
    while records.len() < max {
        match tokio::time::timeout(Duration::from_millis(5), consumer.recv()).await {
            Ok(Ok(record)) => records.push(record),
            _ => break,
        }
    }
    records
}

/// Waits until `record`'s delay has passed since it was written; `false` when `shutdown`
/// completed first (the record stays uncommitted, for the next consumer).
pub(super) async fn wait_until_due(
    record: &BorrowedMessage<'_>,
    delay: Duration,
    shutdown: Pin<&mut (impl Future<Output = ()> + Send)>,
) -> bool {
    let written = record.timestamp().to_millis().unwrap_or(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    let wait = written.saturating_add(delay_ms).saturating_sub(now);
    if wait <= 0 {
        return true;
    }
    let wait = Duration::from_millis(u64::try_from(wait).unwrap_or(0));
    tokio::select! {
        biased;
        () = shutdown => false,
        () = tokio::time::sleep(wait) => true,
    }
}
