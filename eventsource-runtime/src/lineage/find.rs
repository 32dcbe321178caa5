//! Finding a stored event by its id, through the store's log only: the event's UUID v7 says
//! when it was recorded, and the log is in recording order, give or take the clocks of the
//! processes that append.

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use crate::event::EventEnvelope;
use crate::store::{EventStore, StoreError};

/// How far from its id's millisecond an event's place in the log is looked for: the
/// difference between the clocks of the processes appending, and the time an append takes.
const WINDOW: TimeDelta = TimeDelta::seconds(5);

/// How many events one read brings in while scanning.
const PAGE: usize = 512;

/// The stored event whose id is `event_id`, if the store holds it.
///
/// An id that is a UUID v7 (every `NewEvent`'s: its millisecond is the event's timestamp) is
/// looked for by a binary search of the log for the first event recorded less than 5 s
/// before that millisecond, then a scan up to 5 s after it: about `log2(head)` reads of one
/// event and a page or two, whatever the store's size. Any other id is looked for in the
/// whole log.
///
/// # Errors
/// What [`EventStore::read_all`] and [`EventStore::head_position`] fail with.
pub async fn find_event<S: EventStore + ?Sized>(
    store: &S,
    event_id: Uuid,
) -> Result<Option<EventEnvelope>, StoreError> {
    let Some(head) = store.head_position().await? else {
        return Ok(None);
    };
    let Some(recorded) = recorded_at(event_id) else {
        return scan(store, event_id, 1, None).await;
    };
    let from = first_at_or_after(store, recorded - WINDOW, head).await?;
    scan(store, event_id, from, Some(recorded + WINDOW)).await
}

/// When an event with a UUID v7 id was recorded, from its id.
fn recorded_at(event_id: Uuid) -> Option<DateTime<Utc>> {
    if event_id.get_version_num() != 7 {
        return None;
    }
    let (seconds, nanos) = event_id.get_timestamp()?.to_unix();
    DateTime::from_timestamp(i64::try_from(seconds).ok()?, nanos)
}

/// The position of the first event recorded at `at` or later (by a binary search over
/// positions `1..=head`; past the head when there is none).
async fn first_at_or_after<S: EventStore + ?Sized>(
    store: &S,
    at: DateTime<Utc>,
    head: u64,
) -> Result<u64, StoreError> {
    let (mut low, mut high) = (1, head.saturating_add(1));
    while low < high {
        let middle = low + (high - low) / 2;
        // The first stored event at `middle` or after (positions may have gaps).
        let batch = store.read_all(middle, 1).await?;
        match batch.first() {
            Some(event) if event.timestamp < at => low = event.position.saturating_add(1),
            _ => high = middle,
        }
    }
    Ok(low)
}

/// Reads the log from `from` until `event_id` is found, the head is reached, or (with
/// `until`) an event recorded after `until` is read.
async fn scan<S: EventStore + ?Sized>(
    store: &S,
    event_id: Uuid,
    mut from: u64,
    until: Option<DateTime<Utc>>,
) -> Result<Option<EventEnvelope>, StoreError> {
    loop {
        let page = store.read_all(from, PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(None);
        };
        let next = last.position.saturating_add(1);
        let done = next <= from || page.reached_head();
        let past = until.is_some_and(|until| last.timestamp > until);
        if let Some(found) = page
            .into_events()
            .into_iter()
            .find(|e| e.event_id == event_id)
        {
            return Ok(Some(found));
        }
        if done || past {
            return Ok(None);
        }
        from = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{NewEvent, StreamId};
    use crate::store::{ExpectedVersion, InMemoryEventStore};

    async fn store_of(count: usize) -> (InMemoryEventStore, Vec<EventEnvelope>) {
        let store = InMemoryEventStore::new();
        let mut stored = Vec::new();
        let start = Utc::now() - TimeDelta::days(30);
        for i in 0..count {
            // A minute apart: only the binary search's place is within 5 s of an event.
            let mut event = NewEvent::new("Placed", 1, serde_json::json!({ "i": i }));
            event.timestamp = start + TimeDelta::minutes(i64::try_from(i).unwrap());
            let millis = u64::try_from(event.timestamp.timestamp_millis()).unwrap();
            event.event_id =
                uuid::Builder::from_unix_timestamp_millis(millis, &[7; 10]).into_uuid();
            let stream = StreamId::new("Order", format!("o-{i}"));
            let appended = store
                .append(&stream, ExpectedVersion::NoStream, vec![event])
                .await
                .unwrap();
            stored.extend(appended.events);
        }
        (store, stored)
    }

    #[tokio::test]
    async fn every_event_is_found_by_its_id_and_an_unknown_id_is_none() {
        let (store, stored) = store_of(1_500).await;
        for event in stored.iter().step_by(97).chain(stored.last()) {
            let found = find_event(&store, event.event_id).await.unwrap();
            assert_eq!(found.map(|e| e.position), Some(event.position));
        }
        assert!(find_event(&store, Uuid::now_v7()).await.unwrap().is_none());
        // Not a v7 id: the whole log is read.
        assert!(
            find_event(&store, Uuid::from_u128(7))
                .await
                .unwrap()
                .is_none()
        );
        let empty = InMemoryEventStore::new();
        assert!(
            find_event(&empty, stored[0].event_id)
                .await
                .unwrap()
                .is_none()
        );
    }
}
