//! The PostgreSQL stores: the high-water mark.

use super::*;

/// An append that holds a lower position and commits late is never passed over: `read_all`
/// stops below it (so a reader checkpointing after the later event cannot exist), then
/// returns both in order once it commits.
#[tokio::test]
async fn read_all_never_passes_over_an_event_that_commits_late() {
    let Some(db) = db!("read_all_never_passes_over_an_event_that_commits_late") else {
        return;
    };
    let pool = db.pool(4).await;
    let store = db.store_on(&pool).await;
    let early = store
        .append(
            &StreamId::new("S", "early"),
            ExpectedVersion::NoStream,
            events(0..1),
        )
        .await
        .unwrap();

    // Transaction A appends (position p_a) and holds.
    let mut a = pool.begin().await.unwrap();
    let held = store
        .append_in_transaction(
            &mut a,
            &StreamId::new("S", "late"),
            ExpectedVersion::NoStream,
            events(1..3),
        )
        .await
        .unwrap();
    // B appends after it (position p_b > p_a) and commits at once.
    let later = store
        .append(
            &StreamId::new("S", "later"),
            ExpectedVersion::NoStream,
            events(3..4),
        )
        .await
        .unwrap();
    let (p_a, p_b) = (held.events[0].position, later.events[0].position);
    assert!(
        p_a < p_b,
        "positions {p_a} < {p_b}: B commits out of position order"
    );

    // The situation is real: B is committed and visible, A is not.
    let visible: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT position FROM \"{}\".events ORDER BY position",
        store.schema()
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(visible.contains(&(p_b as i64)) && !visible.contains(&(p_a as i64)));

    // A reader sees the events below A only, however it asks.
    let seen = store.read_all(0, 100).await.unwrap();
    assert_eq!(positions(&seen), positions(&early.events));
    assert!(store.read_all(p_a, 100).await.unwrap().is_empty());
    assert!(store.read_all(p_b, 100).await.unwrap().is_empty());
    // (load is per stream and unaffected)
    assert_eq!(
        store.load(&StreamId::new("S", "later"), 1).await.unwrap(),
        later.events
    );

    a.commit().await.unwrap();
    let seen = store.read_all(0, 100).await.unwrap();
    let expected: Vec<u64> = early
        .events
        .iter()
        .chain(&held.events)
        .chain(&later.events)
        .map(|e| e.position)
        .collect();
    assert_eq!(positions(&seen), expected, "both, in position order");
    // A reader whose checkpoint was after the early event now gets A's events before B's.
    let resumed = store
        .read_all(early.events[0].position + 1, 100)
        .await
        .unwrap();
    assert_eq!(resumed[0].position, p_a);
    pool.close().await;
    db.cleanup().await;
}

/// An aborted late append leaves a gap that never fills; the reader moves past it.
#[tokio::test]
async fn an_aborted_append_is_a_gap_and_releases_the_readers() {
    let Some(db) = db!("an_aborted_append_is_a_gap_and_releases_the_readers") else {
        return;
    };
    let pool = db.pool(4).await;
    let store = db.store_on(&pool).await;
    let mut a = pool.begin().await.unwrap();
    let held = store
        .append_in_transaction(
            &mut a,
            &StreamId::new("S", "aborted"),
            ExpectedVersion::NoStream,
            events(0..1),
        )
        .await
        .unwrap();
    let later = store
        .append(
            &StreamId::new("S", "b"),
            ExpectedVersion::NoStream,
            events(1..2),
        )
        .await
        .unwrap();
    assert!(store.read_all(0, 100).await.unwrap().is_empty());
    a.rollback().await.unwrap();
    let seen = store.read_all(0, 100).await.unwrap();
    assert_eq!(positions(&seen), positions(&later.events));
    assert!(held.events[0].position < seen[0].position);
    assert_eq!(
        store
            .stream_version(&StreamId::new("S", "aborted"))
            .await
            .unwrap(),
        0
    );
    pool.close().await;
    db.cleanup().await;
}

/// Only appends to the same store hold readers back: not a long transaction elsewhere in
/// the cluster, nor an append in flight in another schema.
#[tokio::test]
async fn unrelated_transactions_do_not_hold_readers_back() {
    let Some(db) = db!("unrelated_transactions_do_not_hold_readers_back") else {
        return;
    };
    let pool = db.pool(6).await;
    let store = db.store_on(&pool).await;
    let other = db.store_on(&pool).await;

    // A transaction with a transaction id, open for the whole test...
    let mut long = pool.begin().await.unwrap();
    let xid: i64 = sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint")
        .fetch_one(&mut *long)
        .await
        .unwrap();
    assert!(xid > 0);
    // ...and an append in flight in another store.
    let mut elsewhere = pool.begin().await.unwrap();
    other
        .append_in_transaction(
            &mut elsewhere,
            &StreamId::new("S", "x"),
            ExpectedVersion::Any,
            events(0..1),
        )
        .await
        .unwrap();

    let appended = store
        .append(&StreamId::new("S", "y"), ExpectedVersion::Any, events(1..3))
        .await
        .unwrap();
    let seen = store.read_all(0, 100).await.unwrap();
    assert_eq!(positions(&seen), positions(&appended.events));

    elsewhere.rollback().await.unwrap();
    long.rollback().await.unwrap();
    pool.close().await;
    db.cleanup().await;
}

/// A follower tailing `read_all` while many writers append (single events and batches)
/// gets every event exactly once, in order, without ever going back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tailing_reader_gets_every_event_once_under_concurrent_writers() {
    let Some(db) = db!("a_tailing_reader_gets_every_event_once_under_concurrent_writers") else {
        return;
    };
    let pool = db.pool(12).await;
    let store = db.store_on(&pool).await;
    let writers = 8u64;
    let appends = 40u64;
    let done = Arc::new(AtomicBool::new(false));

    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let s = StreamId::new("Tail", format!("w{w}"));
            let mut count = 0;
            let mut appended = Vec::new();
            for a in 0..appends {
                let batch = 1 + (a + w) % 4;
                let sent = events(count..count + batch);
                let result = store
                    .append(&s, ExpectedVersion::Exact(count), sent)
                    .await
                    .unwrap();
                appended.extend(result.events);
                count += batch;
            }
            appended
        }));
    }
    let reader = {
        let store = store.clone();
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut seen: Vec<EventEnvelope> = Vec::new();
            let mut from = 0;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let page = store.read_all(from, 7).await.unwrap();
                if page.is_empty() && finished {
                    return seen;
                }
                for e in &page {
                    assert!(e.position >= from, "read_all went back");
                }
                if let Some(last) = page.last() {
                    from = last.position + 1; // the checkpoint
                }
                seen.extend(page);
            }
        })
    };
    let mut appended = Vec::new();
    for task in tasks {
        appended.extend(task.await.unwrap());
    }
    done.store(true, Ordering::SeqCst);
    let seen = reader.await.unwrap();

    let all = store.read_all(0, usize::MAX).await.unwrap();
    assert_eq!(all.len(), appended.len());
    assert_eq!(seen, all, "the tail saw exactly what is stored, in order");
    // Each append reported the positions its events were stored at (each batch takes one
    // range of positions while other writers take theirs).
    appended.sort_by_key(|e| e.position);
    assert_eq!(
        appended, all,
        "the positions appends returned are the stored ones"
    );
    let ids: HashSet<_> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), seen.len(), "an event was seen twice");
    pool.close().await;
    db.cleanup().await;
}

/// A transaction that appended and then stalls (a paused process, a host cut off) holds
/// every reader below its events: the store names its session (`mark_holder`), and the
/// server ends it after the store's `idle_transaction_timeout`, which releases the readers.
#[tokio::test]
async fn a_stalled_transaction_that_appended_is_named_then_ended() {
    let Some(db) = db!("a_stalled_transaction_that_appended_is_named_then_ended") else {
        return;
    };
    let pool = db.pool(4).await;
    let store = db
        .store_on(&pool)
        .await
        .idle_transaction_timeout(Duration::from_secs(1));
    assert_eq!(
        store.mark_holder().await.unwrap(),
        None,
        "nothing in flight"
    );

    let mut stalled = pool.begin().await.unwrap();
    sqlx::query("SET application_name = 'stalled-writer'")
        .execute(&mut *stalled)
        .await
        .unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *stalled)
        .await
        .unwrap();
    let held = store
        .append_in_transaction(
            &mut stalled,
            &StreamId::new("S", "stalled"),
            ExpectedVersion::NoStream,
            events(0..1),
        )
        .await
        .unwrap();
    let committed = store
        .append(
            &StreamId::new("S", "committed"),
            ExpectedVersion::NoStream,
            events(1..2),
        )
        .await
        .unwrap();
    assert!(store.read_all(0, 10).await.unwrap().is_empty(), "held back");

    let holder = store.mark_holder().await.unwrap().expect("a holder");
    assert_eq!(holder.position, held.events[0].position);
    assert_eq!(holder.process_id, u32::try_from(pid).unwrap());
    assert_eq!(holder.application.as_deref(), Some("stalled-writer"));
    assert!(holder.transaction_since.is_some());

    // The server ends the idle transaction; the committed event is readable then.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let readable = loop {
        let read = store.read_all(0, 10).await.unwrap();
        if !read.is_empty() || std::time::Instant::now() > deadline {
            break read;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let positions: Vec<u64> = readable.iter().map(|event| event.position).collect();
    assert_eq!(positions, vec![committed.events[0].position], "released");
    assert_eq!(store.mark_holder().await.unwrap(), None, "ended");
    assert!(stalled.commit().await.is_err(), "the server ended it");
}
