//! `EventStore::read_all_batches`: the global log a batch at a time, exactly as consecutive
//! `read_all`s read it (the PostgreSQL store streams it, the others page it).

use std::sync::Arc;

use crate::event::{EventEnvelope, StreamId};
use crate::store::{BatchEnd, EventStore, ExpectedVersion, StoreError, UNBOUNDED};

use super::counted_events;

fn positions(events: &[EventEnvelope]) -> Vec<u64> {
    events.iter().map(|e| e.position).collect()
}

/// Appends `rounds` rounds of 10 events to each of 5 streams, so that streams interleave in
/// the global order; the events as `read_all` reads them.
async fn interleaved(store: &dyn EventStore, rounds: u64) -> Vec<EventEnvelope> {
    for round in 0..rounds {
        for s in 0..5 {
            let first = (round * 5 + s) * 10;
            store
                .append(
                    &StreamId::new("Reader", format!("r-{s}")),
                    ExpectedVersion::Any,
                    counted_events(first..first + 10),
                )
                .await
                .unwrap();
        }
    }
    store.read_all(1, UNBOUNDED).await.unwrap().into_events()
}

/// Every batch size reads the whole log in order, nothing skipped or repeated, each batch
/// what `read_all` from the same position returns: full batches end at the limit, the last
/// at the head. A reader at the head reads what is appended after. A reader can start in the
/// middle.
pub async fn batches_follow_read_all(store: Arc<dyn EventStore>) {
    let whole = interleaved(&*store, 14).await;
    assert_eq!(whole.len(), 700);
    for size in [1, 7, 64, 700, 1000] {
        let all = store.read_all(1, UNBOUNDED).await.unwrap().into_events();
        let mut reader = store.read_all_batches(1, size);
        let mut read = Vec::new();
        let mut from = 1;
        loop {
            let batch = reader.next_batch().await.unwrap();
            let paged = store.read_all(from, size).await.unwrap();
            assert_eq!(
                positions(&batch),
                positions(&paged),
                "size {size} from {from}"
            );
            assert!(batch.len() <= size, "size {size}: {} events", batch.len());
            from = batch.next_position(from);
            let head = batch.reached_head();
            if batch.len() == size {
                assert!(matches!(batch.end(), BatchEnd::Limit), "{:?}", batch.end());
            } else {
                assert!(head, "size {size}: {:?}", batch.end());
            }
            read.extend(batch);
            if head {
                break;
            }
        }
        assert_eq!(read, all, "size {size}: the whole log, in order");
        let more = store
            .append(
                &StreamId::new("Reader", "late"),
                ExpectedVersion::Any,
                counted_events(0..3),
            )
            .await
            .unwrap();
        let mut late = Vec::new();
        loop {
            let batch = reader.next_batch().await.unwrap();
            let head = batch.reached_head();
            late.extend(batch);
            if head {
                break;
            }
        }
        assert_eq!(positions(&late), positions(&more.events), "size {size}");
    }
    let middle = whole[350].position;
    let mut reader = store.read_all_batches(middle, 64);
    let first = reader.next_batch().await.unwrap();
    assert_eq!(positions(&first), positions(&whole[350..414]));
    let second = reader.next_batch().await.unwrap();
    assert_eq!(positions(&second), positions(&whole[414..478]));
}

/// A damaged stored event ends the batch it falls in, after the events before it, with its
/// `Corrupt` error naming its position, as `read_all` does; the next batch starts at it and
/// fails with that error, every time; a reader from after it reads on. `damage` makes the
/// event at a position unreadable.
pub async fn batches_stop_at_an_unreadable_event(
    store: Arc<dyn EventStore>,
    damage: impl AsyncFnOnce(u64),
) {
    let whole = interleaved(&*store, 6).await;
    assert_eq!(whole.len(), 300);
    let damaged = whole[199].position;
    damage(damaged).await;
    let is_damaged = |error: &StoreError| matches!(error, StoreError::Corrupt { position, .. } if *position == damaged);

    let mut reader = store.read_all_batches(1, 64);
    let mut read = Vec::new();
    for _ in 0..3 {
        let batch = reader.next_batch().await.unwrap();
        assert!(matches!(batch.end(), BatchEnd::Limit), "{:?}", batch.end());
        read.extend(batch);
    }
    let stopped = reader.next_batch().await.unwrap();
    assert!(
        matches!(stopped.end(), BatchEnd::Unreadable(error) if is_damaged(error)),
        "{:?}",
        stopped.end()
    );
    read.extend(stopped);
    assert_eq!(positions(&read), positions(&whole[..199]));
    for _ in 0..2 {
        let error = reader.next_batch().await.unwrap_err();
        assert!(is_damaged(&error), "{error:?}");
    }
    let mut after = store.read_all_batches(damaged + 1, 64);
    let mut rest = Vec::new();
    loop {
        let batch = after.next_batch().await.unwrap();
        let head = batch.reached_head();
        rest.extend(batch);
        if head {
            break;
        }
    }
    assert_eq!(positions(&rest), positions(&whole[200..]));
}
