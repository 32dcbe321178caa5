//! The PostgreSQL stores: notifications.

use super::*;

/// `appended_signal` hears other processes' appends (LISTEN/NOTIFY) and keeps hearing them
/// after its connection is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appended_signal_follows_other_processes_and_reconnects() {
    let Some(db) = db!("appended_signal_follows_other_processes_and_reconnects") else {
        return;
    };
    let pool = db.pool(4).await;
    let follower = db.store_on(&pool).await;
    // "Another process": its own pool, same schema.
    let other_pool = db.pool(2).await;
    let writer = PostgresEventStore::from_pool(other_pool.clone())
        .with_schema(follower.schema())
        .unwrap();
    let mut signal = follower.appended_signal().expect("postgres has a signal");
    // The listener wakes the followers once it listens.
    tokio::time::timeout(Duration::from_secs(10), signal.changed())
        .await
        .expect("the listener did not start")
        .unwrap();

    let s = StreamId::new("Signal", "1");
    let appended = writer
        .append(&s, ExpectedVersion::Any, events(0..3))
        .await
        .unwrap();
    let last = appended.events[2].position;
    tokio::time::timeout(Duration::from_secs(10), signal.wait_for(|&p| p >= last))
        .await
        .expect("no notification")
        .unwrap();

    // Kill every connection of the follower's side, the listener's included.
    assert!(db.terminate_backends().await > 0);
    let mut newest = last;
    let heard = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            newest = writer
                .append(&s, ExpectedVersion::Any, events(0..1))
                .await
                .unwrap()
                .events[0]
                .position;
            let target = newest;
            if tokio::time::timeout(
                Duration::from_millis(500),
                signal.wait_for(|&p| p >= target),
            )
            .await
            .is_ok()
            {
                return;
            }
        }
    })
    .await;
    assert!(
        heard.is_ok(),
        "no notification after the listener's connection died"
    );

    // Local appends signal too, and closing the pool stops the listener without a panic.
    follower.close().await;
    other_pool.close().await;
    pool.close().await;
    db.cleanup().await;
}
