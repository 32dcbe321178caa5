//! The PostgreSQL stores: faults.

use super::*;

/// `connect`'s pool pings a connection that sat idle for `PING_AFTER_IDLE` or longer before
/// handing it out: one the server dropped meanwhile (a restart, an administrator) is
/// replaced, and the append goes through.
#[tokio::test]
async fn connect_replaces_a_connection_the_server_dropped_while_it_sat_idle() {
    let Some(db) = db!("connect_replaces_a_connection_the_server_dropped_while_it_sat_idle") else {
        return;
    };
    let separator = if db.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{separator}application_name={}", db.url, db.app);
    let store = PostgresEventStore::connect(&url)
        .await
        .unwrap()
        .with_schema(&db.schema())
        .unwrap();
    store.migrate().await.unwrap();
    let s = StreamId::new("Idle", "1");
    store
        .append(&s, ExpectedVersion::Exact(0), events(0..1))
        .await
        .unwrap();

    assert!(db.terminate_backends().await > 0, "the pool's connections");
    tokio::time::sleep(PING_AFTER_IDLE + Duration::from_millis(100)).await;
    let appended = store
        .append(&s, ExpectedVersion::Exact(1), events(1..2))
        .await
        .expect("a dropped idle connection is replaced, not used");
    assert_eq!(appended.version, 2);
    assert_eq!(store.load(&s, 1).await.unwrap().len(), 2);
    store.close().await;
    db.cleanup().await;
}

/// The database goes away under running writers (their backends are terminated, then the
/// pool is closed): appends fail with `Unavailable`, no batch is ever half stored, and a
/// new pool carries on where the data left off.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_are_unavailable_errors_and_never_leave_half_a_batch() {
    let Some(db) = db!("faults_are_unavailable_errors_and_never_leave_half_a_batch") else {
        return;
    };
    const BATCH: u64 = 10;
    let pool = db.pool(6).await;
    let store = db.store_on(&pool).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let store = store.clone();
        let stop = Arc::clone(&stop);
        writers.push(tokio::spawn(async move {
            let s = StreamId::new("Fault", format!("w{w}"));
            let (mut ok, mut unavailable) = (Vec::new(), 0u64);
            let mut batch = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let sent: Vec<NewEvent> = (0..BATCH)
                    .map(|i| NewEvent::new("Counted", 1, json!({ "batch": batch, "i": i })))
                    .collect();
                match store.append(&s, ExpectedVersion::Any, sent).await {
                    Ok(_) => ok.push(batch),
                    Err(StoreError::Unavailable(_)) => {
                        unavailable += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err(other) => panic!("a fault must be Unavailable, got {other:?}"),
                }
                batch += 1;
            }
            (s, ok, unavailable)
        }));
    }
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        db.terminate_backends().await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    store.close().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Closed: every operation is Unavailable, none hangs.
    assert!(matches!(
        store
            .append(
                &StreamId::new("Fault", "closed"),
                ExpectedVersion::Any,
                events(0..1)
            )
            .await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.read_all(0, 1).await,
        Err(StoreError::Unavailable(_))
    ));
    stop.store(true, Ordering::SeqCst);

    let mut results = Vec::new();
    for writer in writers {
        results.push(writer.await.unwrap());
    }
    let failures: u64 = results.iter().map(|r| r.2).sum();
    assert!(failures > 0, "the faults did not hit any append");

    // A new pool, as after the database came back.
    let pool = db.pool(4).await;
    let back = PostgresEventStore::from_pool(pool.clone())
        .with_schema(store.schema())
        .unwrap();
    back.migrate().await.unwrap();
    let mut total = 0;
    for (s, ok, _) in &results {
        let stored = back.load(s, 1).await.unwrap();
        assert_eq!(stored.len() as u64 % BATCH, 0, "half a batch in {s}");
        assert!(
            stored
                .iter()
                .enumerate()
                .all(|(i, e)| e.version == i as u64 + 1)
        );
        let mut batches = Vec::new();
        for chunk in stored.chunks(BATCH as usize) {
            let batch = chunk[0].payload.to_value()["batch"].as_u64().unwrap();
            for (i, e) in chunk.iter().enumerate() {
                assert_eq!(
                    e.payload,
                    json!({ "batch": batch, "i": i }),
                    "mixed batches"
                );
            }
            batches.push(batch);
        }
        // Every acknowledged batch is there (and an unacknowledged one may be, when the
        // connection died during its commit).
        for b in ok {
            assert!(batches.contains(b), "acknowledged batch {b} of {s} lost");
        }
        total += stored.len();
    }
    let all = back.read_all(0, usize::MAX).await.unwrap();
    assert_eq!(all.len(), total);
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    let s = StreamId::new("Fault", "w0");
    let version = back.stream_version(&s).await.unwrap();
    back.append(&s, ExpectedVersion::Exact(version), events(0..1))
        .await
        .unwrap();
    pool.close().await;
    db.cleanup().await;
}

/// A server that stops answering (its host gone, a network dropping every packet) leaves
/// no error for the operating system to report for many minutes: each of the store's round
/// trips gives up after its `answer_timeout`, with `Unavailable` saying so, and the store
/// works again once the server answers. The silence is a forwarder in the test that stops
/// passing bytes on, both ways, without closing anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_fails_each_call_after_the_answer_timeout() {
    let Some(db) = db!("a_silent_server_fails_each_call_after_the_answer_timeout") else {
        return;
    };
    let rest = db.url.split_once('@').map_or("", |(_, rest)| rest);
    let (address, path) = rest.split_once('/').unwrap_or((rest, ""));
    let upstream = tokio::net::lookup_host(address)
        .await
        .unwrap()
        .next()
        .unwrap();
    let silent = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let forwarding = tokio::spawn(forward_until_silent(
        listener,
        upstream,
        Arc::clone(&silent),
    ));
    let url = db.url.replacen(address, &format!("127.0.0.1:{port}"), 1);
    assert!(url.ends_with(path));
    let within = Duration::from_secs(1);
    let store = PostgresEventStore::connect(&url)
        .await
        .unwrap()
        .with_schema(&db.schema())
        .unwrap()
        .answer_timeout(within);
    store.migrate().await.unwrap();
    let s = StreamId::new("Silent", "1");
    store
        .append(&s, ExpectedVersion::Exact(0), events(0..1))
        .await
        .unwrap();

    silent.store(true, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let error = store
        .append(&s, ExpectedVersion::Exact(1), events(1..2))
        .await
        .expect_err("no answer");
    let took = started.elapsed();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    let source = std::error::Error::source(&error).unwrap().to_string();
    assert_eq!(
        source,
        "PostgreSQL did not answer within 1s (its host gone, or the network silent); an \
         append's outcome is unknown"
    );
    assert!(
        took >= within && took < within * 3,
        "gave up after {took:?}"
    );
    let load = store.load(&s, 1).await.expect_err("no answer");
    assert!(matches!(load, StoreError::Unavailable(_)), "{load:?}");
    let read = store.read_all(0, 10).await.expect_err("no answer");
    assert!(matches!(read, StoreError::Unavailable(_)), "{read:?}");

    // The server answers again: the connections that went silent are let go, the store
    // carries on, and the append that gave up either landed or did not.
    silent.store(false, Ordering::SeqCst);
    let mut version = None;
    for _ in 0..100 {
        if let Ok(events) = store.load(&s, 1).await {
            version = Some(events.len() as u64);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let version = version.expect("the store answers again within 10 s");
    assert!((1..=2).contains(&version), "version {version}");
    store
        .append(
            &s,
            ExpectedVersion::Exact(version),
            events(version..version + 1),
        )
        .await
        .unwrap();
    forwarding.abort();
    db.cleanup().await;
}

/// Forwards each connection to `upstream`, passing nothing on (and closing nothing) while
/// `silent` is set.
async fn forward_until_silent(
    listener: tokio::net::TcpListener,
    upstream: std::net::SocketAddr,
    silent: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    async fn pass(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        silent: Arc<AtomicBool>,
    ) {
        let mut buffer = vec![0_u8; 16 * 1024];
        loop {
            let Ok(read) = from.read(&mut buffer).await else {
                return;
            };
            if read == 0 {
                return;
            }
            // Held while silent: neither delivered nor refused.
            while silent.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if to.write_all(&buffer[..read]).await.is_err() {
                return;
            }
        }
    }
    while let Ok((client, _)) = listener.accept().await {
        let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
            continue;
        };
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        tokio::spawn(pass(client_read, server_write, Arc::clone(&silent)));
        tokio::spawn(pass(server_read, client_write, Arc::clone(&silent)));
    }
}
