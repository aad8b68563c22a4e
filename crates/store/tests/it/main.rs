//! The storage contract suite: the same checks against every backend. SQLite always; PostgreSQL too when
//! `TEST_POSTGRES_URL` is set (and then it must be reachable).

#![allow(clippy::unwrap_used)]

/// Each named check of the calling module on SQLite, and on PostgreSQL when `TEST_POSTGRES_URL` is set: the
/// tests `<module>::sqlite_backend::<check>` and `<module>::postgres_backend::<check>`.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (store, _dir) = crate::sqlite().await;
                    super::$name(store).await;
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(base) = crate::postgres_url() else {
                        eprintln!(
                            "note: TEST_POSTGRES_URL is not set; {} not run on PostgreSQL",
                            stringify!($name)
                        );
                        return;
                    };
                    let (store, schema) = crate::postgres(&base).await;
                    super::$name(store).await;
                    drop(schema);
                }
            )*
        }
    };
}

mod contract;
mod federation;
mod migrations;
mod notify;
mod postgres_only;
mod reaping;
mod refresh_grace;

use portcullis_authz::store::Storage;
use portcullis_store::{open, StoreOptions};
use sqlx::{Connection, PgConnection};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A fresh SQLite database in a temporary directory (kept alive by the returned guard).
pub(crate) async fn sqlite() -> (Arc<dyn Storage>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    (open(&url, &StoreOptions::default()).await.unwrap(), dir)
}

/// On SQLite a rotation, and a reuse with the revocation it causes, are each one writer operation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rotation_and_reuse_are_one_writer_operation() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let store = Arc::new(
        portcullis_store::sqlite::SqliteStore::open(&url, &StoreOptions::default())
            .await
            .unwrap(),
    );
    let counted = store.clone();
    contract::rotation_is_one_operation(store, move || counted.writer_operations()).await;
}

/// The URL of the PostgreSQL server to test against, if `TEST_POSTGRES_URL` is set.
pub(crate) fn postgres_url() -> Option<String> {
    std::env::var("TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A schema of its own for one test, dropped when the guard is (even after a panic), so tests running in
/// parallel, and runs after a crash, never see each other's rows.
pub(crate) struct PgSchema {
    base: String,
    name: String,
}

impl PgSchema {
    /// Creates a uniquely named schema on the server at `base`; panics (fails the test) if it is unreachable.
    pub(crate) async fn create(base: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!(
            "portcullis_test_{}_{nanos}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = PgConnection::connect(base).await.unwrap_or_else(|e| {
            panic!("TEST_POSTGRES_URL is set but the server is unreachable: {e}")
        });
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.ok();
        Self {
            base: base.to_owned(),
            name,
        }
    }

    /// The schema's name (also usable as an `application_name`).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// A database URL whose connections use this schema (`search_path` set at connection start-up).
    pub(crate) fn url(&self) -> String {
        let mut url = url::Url::parse(&self.base).unwrap();
        url.query_pairs_mut()
            .append_pair("options", &format!("-c search_path={}", self.name));
        url.to_string()
    }

    /// Like [`Self::url`], with an `application_name` so a test can find its own sessions.
    pub(crate) fn url_named(&self) -> String {
        let mut url = url::Url::parse(&self.url()).unwrap();
        url.query_pairs_mut()
            .append_pair("application_name", &self.name);
        url.to_string()
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        // A fresh runtime on its own thread: Drop cannot await, and may run inside the test's runtime.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&base).await.ok()?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .execute(&mut conn)
                    .await
                    .ok()?;
                conn.close().await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("note: could not drop test schema {}", self.name);
        }
    }
}

/// Options for PostgreSQL tests: a pool of several connections, so concurrent calls really race in the server.
pub(crate) fn pg_options() -> StoreOptions {
    StoreOptions {
        max_connections: 8,
        ..StoreOptions::default()
    }
}

/// A fresh PostgreSQL store in its own schema (kept alive, then dropped, by the returned guard).
pub(crate) async fn postgres(base: &str) -> (Arc<dyn Storage>, PgSchema) {
    let schema = PgSchema::create(base).await;
    let store = open(&schema.url(), &pg_options()).await.unwrap();
    (store, schema)
}
