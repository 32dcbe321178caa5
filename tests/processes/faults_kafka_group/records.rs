//! What the test stored and what the consumers left: their printed lines, the stored events,
//! the rows of `event_history`.

use super::*;

/// A line of a consumer: `history seen|recorded {aggregate} v{version} [message {id}]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `history-seen` ran (every delivery).
    Seen,
    /// `record-history` ran, before its transaction committed.
    Recorded,
}

#[derive(Debug, Clone)]
pub(super) struct Line {
    pub(super) kind: Kind,
    pub(super) aggregate: String,
    pub(super) version: u64,
    pub(super) id: Uuid,
}

impl Line {
    pub(super) fn parse(line: &str) -> Option<Self> {
        let (kind, rest) = if let Some(rest) = line.strip_prefix("history seen ") {
            (Kind::Seen, rest)
        } else {
            (Kind::Recorded, line.strip_prefix("history recorded ")?)
        };
        let (aggregate, rest) = rest.split_once(" v")?;
        let (version, rest) = rest.split_once(" [message ")?;
        Some(Self {
            kind,
            aggregate: aggregate.to_owned(),
            version: version.parse().ok()?,
            id: Uuid::parse_str(rest.strip_suffix(']')?).ok()?,
        })
    }
}

/// The events the test stored: id -> (aggregate, version).
pub(super) struct Stored {
    pub(super) events: BTreeMap<Uuid, (String, u64)>,
}

impl Stored {
    /// Appends the events to the SQLite store `url`, version by version.
    pub(super) fn write(url: &str) -> Self {
        runtime().block_on(async {
            let store = SqliteEventStore::connect(url).await.expect("the store");
            store.migrate().await.expect("migrated");
            let mut events = BTreeMap::new();
            for version in 1..=VERSIONS {
                for n in 1..=AGGREGATES {
                    let aggregate = format!("acct-{n}");
                    let payload = serde_json::json!({ "amount": version * 100 });
                    let event = NewEvent::new("Deposited", 1, payload);
                    events.insert(event.event_id, (aggregate.clone(), version));
                    store
                        .append(
                            &StreamId::new(AGGREGATE_TYPE, aggregate),
                            ExpectedVersion::Exact(version - 1),
                            vec![event],
                        )
                        .await
                        .expect("appended");
                }
            }
            Self { events }
        })
    }

    pub(super) fn len(&self) -> usize {
        self.events.len()
    }

    fn ids(&self) -> Vec<Uuid> {
        self.events.keys().copied().collect()
    }
}

/// A row of `event_history`.
#[derive(Debug)]
pub(super) struct Row {
    pub(super) aggregate: String,
    pub(super) version: u64,
    pub(super) id: Uuid,
    pub(super) pid: u32,
}

/// The history table, read through a pool of the test's own (on a runtime of its own: a
/// pool lives on the runtime that made it).
pub(super) struct History {
    pub(super) runtime: tokio::runtime::Runtime,
    pool: PgPool,
    ids: Vec<Uuid>,
}

impl History {
    pub(super) fn new(url: &str, stored: &Stored) -> Self {
        let runtime = runtime();
        let pool = runtime.block_on(async {
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
                .expect("DATABASE_URL answers")
        });
        Self {
            runtime,
            pool,
            ids: stored.ids(),
        }
    }

    /// This test's rows (by event id), in the order they were written.
    pub(super) fn rows(&self) -> Vec<Row> {
        self.runtime.block_on(async {
            let exists: bool =
                sqlx::query_scalar("SELECT to_regclass('event_history') IS NOT NULL")
                    .fetch_one(&self.pool)
                    .await
                    .expect("the catalog");
            if !exists {
                return Vec::new();
            }
            sqlx::query(
                "SELECT aggregate_id, version, event_id, pid FROM event_history \
                 WHERE event_id = ANY($1) ORDER BY seq",
            )
            .bind(&self.ids)
            .fetch_all(&self.pool)
            .await
            .expect("the history")
            .into_iter()
            .map(|row| Row {
                aggregate: row.get(0),
                version: u64::try_from(row.get::<i64, _>(1)).expect("a version"),
                id: row.get(2),
                pid: u32::try_from(row.get::<i32, _>(3)).expect("a pid"),
            })
            .collect()
        })
    }

    /// Deletes this test's rows.
    pub(super) fn clean(&self) {
        self.runtime.block_on(async {
            sqlx::query("DELETE FROM event_history WHERE event_id = ANY($1)")
                .bind(&self.ids)
                .execute(&self.pool)
                .await
                .expect("deleted");
        });
    }
}
