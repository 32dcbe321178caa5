//! A test's PostgreSQL database: the server from `DATABASE_URL`, a fresh schema per store,
//! dropped when the test succeeds. Without `DATABASE_URL` a test prints
//! `skipped: DATABASE_URL not set` and passes, unless `EVENTSOURCE_REQUIRE_POSTGRES=1`.
#![allow(dead_code)]

use std::sync::Mutex;
use std::time::Duration;

use eventsource_runtime::postgres::PostgresEventStore;
use eventsource_runtime::sqlx::postgres::PgPoolOptions;
use eventsource_runtime::sqlx::{self, PgPool};

pub struct TestDb {
    url: String,
    admin: PgPool,
    schemas: Mutex<Vec<String>>,
}

impl TestDb {
    /// The test database, or `None` (with a visible message) when there is none and none
    /// is required.
    pub async fn open(test: &str) -> Option<Self> {
        let url = crate::servers::Server::Postgres.address(test)?;
        let admin = PgPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{test}: cannot connect to DATABASE_URL: {e}"));
        Some(Self {
            url,
            admin,
            schemas: Mutex::new(Vec::new()),
        })
    }

    /// A new schema name, dropped at the end. (Unique by a UUID, not a counter: a test
    /// binary holds a copy of this file per test module, each with its own statics.)
    pub fn schema(&self) -> String {
        let name = format!(
            "es_once_{}_{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        );
        self.schemas.lock().unwrap().push(name.clone());
        name
    }

    /// A new pool of `size` connections (one per "process" of a test).
    pub async fn pool(&self, size: u32) -> PgPool {
        PgPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&self.url)
            .await
            .unwrap()
    }

    /// A migrated event store on `pool`, in `schema`.
    pub async fn store_in(&self, pool: &PgPool, schema: &str) -> PostgresEventStore {
        let store = PostgresEventStore::from_pool(pool.clone())
            .with_schema(schema)
            .unwrap();
        store.migrate().await.unwrap();
        store
    }

    /// The admin pool, to read rows back.
    pub fn admin(&self) -> &PgPool {
        &self.admin
    }

    pub async fn cleanup(self) {
        drop_schemas(&self.admin, &self.schemas).await;
        self.admin.close().await;
    }
}

/// Drops the schemas a test made (`schemas` is left empty).
pub async fn drop_schemas(admin: &PgPool, schemas: &Mutex<Vec<String>>) {
    let schemas = std::mem::take(&mut *schemas.lock().unwrap());
    for schema in schemas {
        sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .execute(admin)
            .await
            .unwrap();
    }
}
