//! Portcullis storage backends behind the `portcullis-authz` storage traits.
//!
//! # Layout
//! - [`sqlite`]: the embedded default. One writer connection (SQLite has one writer anyway) and a pool of
//!   readers, WAL journal with `synchronous=FULL`: a commit is on disk before the caller answers.
//! - [`error`]: mapping of driver errors to [`StoreError`].
//! - [`open`]: picks the backend from the database URL.

pub mod error;
pub mod sqlite;

use portcullis_authz::store::{Storage, StoreError};
use std::sync::Arc;

/// Storage tuning shared by the backends.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Reader connections (SQLite) or pool size (PostgreSQL).
    pub max_connections: u32,
    /// How long to wait for a connection or a lock before answering "unavailable", milliseconds.
    pub acquire_timeout_ms: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 4,
            acquire_timeout_ms: 5000,
        }
    }
}

/// Opens the database named by `url` (`sqlite://path`, `sqlite::memory:`), applying migrations.
pub async fn open(url: &str, options: &StoreOptions) -> Result<Arc<dyn Storage>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url, options).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Err(StoreError::Other(
            "the PostgreSQL backend is not available in this build yet; use sqlite://".into(),
        ))
    } else {
        Err(StoreError::Other(
            "database URL must start with sqlite:".into(),
        ))
    }
}

/// The URL with any password replaced by `***`, for logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(
            super::redact_url("sqlite://portcullis.db"),
            "sqlite://portcullis.db"
        );
    }
}
