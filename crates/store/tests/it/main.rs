//! The storage contract suite: the same checks against every backend. SQLite always; PostgreSQL too when
//! `TEST_POSTGRES_URL` is set (and then it must be reachable).

#![allow(clippy::unwrap_used)]

mod contract;

use portcullis_authz::store::Storage;
use portcullis_store::{open, StoreOptions};
use std::sync::Arc;

/// A fresh SQLite database in a temporary directory (kept alive by the returned guard).
pub(crate) async fn sqlite() -> (Arc<dyn Storage>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    (open(&url, &StoreOptions::default()).await.unwrap(), dir)
}

macro_rules! on_sqlite {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (store, _dir) = super::sqlite().await;
                    super::contract::$name(store).await;
                }
            )*
        }
    };
}

on_sqlite!(
    clients,
    users_and_sessions,
    consent,
    code_single_use_under_concurrency,
    refresh_rotation_under_concurrency,
    revocations,
    keys_first_start_race,
    purge
);
