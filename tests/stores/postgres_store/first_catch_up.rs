//! The PostgreSQL store: a first catch-up over a log PostgreSQL has no statistics of yet (a
//! table filled since it was last analyzed: a new service's log, a test's, a bulk load, until
//! autovacuum comes by) reads each event once. The server then takes a range for 0.5% of
//! the table, reads every row of it and sorts them, for the first executions of each
//! connection: reads bounded at the high-water mark read the rest of the log each time, and
//! a process's first catch-up took a second longer per 100,000 events than the next one.

use super::*;

const EVENTS: u64 = 20_000;

/// Counts the events it is handed.
struct Counted(u64);

#[eventsource_runtime::async_trait]
impl Projection for Counted {
    fn name(&self) -> &str {
        "FirstCatchUp"
    }

    async fn handle(&mut self, _event: &EventEnvelope) -> Result<(), ProjectionError> {
        self.0 += 1;
        Ok(())
    }
}

/// The rows the events table's readers took from it (through an index, a bitmap or a
/// sequential scan), as the server counts them.
async fn rows_read(db: &TestDb, table: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0) \
           FROM pg_stat_user_tables WHERE relid = $1::regclass",
    )
    .bind(table)
    .fetch_one(&db.admin)
    .await
    .unwrap()
}

/// Ends every session of `db`'s pools named with `suffix` (the pool is closed, but a
/// session sqlx let go of may linger) and waits (30 s at most) until none is left: a session
/// reports what it read when it ends.
async fn end_sessions(db: &TestDb, suffix: &str) {
    let name = format!("{}_{suffix}", db.app);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
              WHERE application_name = $1",
        )
        .bind(&name)
        .fetch_one(&db.admin)
        .await
        .unwrap();
        if left == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{left} session(s) of {name} still there after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_catch_up_reads_each_event_once_from_a_table_without_statistics() {
    let Some(db) = db!("a_first_catch_up_reads_each_event_once_from_a_table_without") else {
        return;
    };
    let seeding = db.pool_named(2, "seed").await;
    let store = db.store_on(&seeding).await;
    let schema = store.schema().to_owned();
    let table = format!("\"{schema}\".events");
    // No statistics until the test is over: autovacuum must not analyze it meanwhile.
    sqlx::query(&format!(
        "ALTER TABLE {table} SET (autovacuum_enabled = false)"
    ))
    .execute(&db.admin)
    .await
    .unwrap();
    for n in 0..EVENTS / 500 {
        let stream = StreamId::new("Account", format!("a-{n}"));
        let batch = events(0..500);
        store
            .append(&stream, ExpectedVersion::NoStream, batch)
            .await
            .unwrap();
    }
    seeding.close().await;
    end_sessions(&db, "seed").await;
    let analyzed: Option<i64> = sqlx::query_scalar(
        "SELECT analyze_count + autoanalyze_count FROM pg_stat_user_tables \
          WHERE relid = $1::regclass",
    )
    .bind(&table)
    .fetch_optional(&db.admin)
    .await
    .unwrap();
    assert_eq!(analyzed, Some(0), "never analyzed");
    sqlx::query("SELECT pg_stat_reset_single_table_counters($1::regclass)")
        .bind(&table)
        .execute(&db.admin)
        .await
        .unwrap();

    // A process's first catch-up: a store of its own, as at a start.
    let pool = db.pool_named(4, "runner").await;
    let reader = PostgresEventStore::from_pool(pool.clone())
        .with_schema(&schema)
        .unwrap()
        .enable_tracing(false);
    let runner = ProjectionRunner::new(
        Arc::new(reader.clone()),
        Arc::new(reader.checkpoint_store()),
        Counted(0),
    );
    assert_eq!(runner.run_until_caught_up().await.unwrap(), EVENTS);
    assert_eq!(runner.projection().lock().await.0, EVENTS);
    pool.close().await;
    end_sessions(&db, "runner").await;

    let read = rows_read(&db, &table).await;
    let bound = i64::try_from(EVENTS + EVENTS / 10).unwrap();
    assert!(
        read >= i64::try_from(EVENTS).unwrap() && read <= bound,
        "{read} rows read from the table for {EVENTS} events (at most {bound})"
    );
    db.cleanup().await;
}
