//! Portcullis storage backends behind the `portcullis-authz` storage traits.
//!
//! # Layout
//! - [`sqlite`]: the embedded default, on `rusqlite`. One writer thread owns the one write connection (SQLite
//!   has one writer anyway) and read-only connections serve lookups on the calling thread; WAL journal with
//!   `synchronous=FULL`: a commit is on disk before the caller answers. Concurrent writes share one
//!   transaction and one fsync (`sqlite::group_commit`).
//! - [`postgres`]: PostgreSQL, for several instances sharing one database. Conditional single-use updates,
//!   bounded retries of serialization failures and deadlocks, migrations under an advisory lock.
//! - [`error`]: mapping of driver errors to [`StoreError`].
//! - `options`: [`StoreOptions`], the tuning both backends take.
//! - [`open`]: picks the backend from the database URL.

pub mod error;
mod introspection_column;
mod options;
pub mod postgres;
pub mod sqlite;

pub use options::StoreOptions;
/// Re-exported: the storage adapter logs the redacted URL, its callers print it.
pub use portcullis_authz::database_url::redact_url;

use portcullis_authz::store::{Storage, StoreError};
use std::sync::Arc;

/// Opens the database named by `url` (`sqlite://path`, `sqlite::memory:`, `postgres://…`, `postgresql://…`),
/// applying migrations. Only the redacted URL is ever logged.
pub async fn open(url: &str, options: &StoreOptions) -> Result<Arc<dyn Storage>, StoreError> {
    let backend = Backend::of(url)?;
    tracing::info!(database = %redact_url(url), ?backend, "opening storage");
    Ok(match backend {
        Backend::Sqlite => Arc::new(sqlite::SqliteStore::open(url, options).await?),
        Backend::Postgres => Arc::new(postgres::PostgresStore::open(url, options).await?),
    })
}

/// The storage backends, as named by a database URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// `sqlite:`
    Sqlite,
    /// `postgres:` or `postgresql:`
    Postgres,
}

impl Backend {
    /// The backend a database URL names. The error never repeats the URL (it may hold a password).
    pub fn of(url: &str) -> Result<Self, StoreError> {
        let scheme = url
            .split_once(':')
            .map(|(s, _)| s.to_ascii_lowercase())
            .unwrap_or_default();
        match scheme.as_str() {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            _ => Err(StoreError::Other(
                "database URL must start with sqlite:, postgres: or postgresql:".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn backend_from_scheme() {
        use super::Backend;
        assert_eq!(Backend::of("sqlite://x.db"), Ok(Backend::Sqlite));
        assert_eq!(Backend::of("sqlite::memory:"), Ok(Backend::Sqlite));
        assert_eq!(Backend::of("postgres://u@h/db"), Ok(Backend::Postgres));
        assert_eq!(Backend::of("PostgreSQL://u@h/db"), Ok(Backend::Postgres));
        match Backend::of("mysql://u:hunter2@h/db") {
            Err(e) => assert!(!e.to_string().contains("hunter2")),
            Ok(b) => panic!("mysql is not a backend, got {b:?}"),
        }
    }
}
