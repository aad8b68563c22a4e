//! Driver errors to [`StoreError`]: connection trouble is `Unavailable` (503 upstream), a unique violation is
//! `Conflict`, the rest `Other` (500, details logged only).

use portcullis_authz::store::StoreError;

/// Maps a sqlx error.
pub fn map(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                return StoreError::Conflict(db.message().to_owned());
            }
            // SQLite: SQLITE_BUSY (5) / SQLITE_LOCKED (6) after the busy timeout; PostgreSQL: 57P01 admin
            // shutdown, 08xxx connection exceptions, 53xxx insufficient resources.
            let code = db.code().unwrap_or_default();
            if code == "5"
                || code == "6"
                || code == "517"
                || code.starts_with("08")
                || code.starts_with("53")
                || code == "57P01"
            {
                StoreError::Unavailable(e.to_string())
            } else {
                StoreError::Other(e.to_string())
            }
        }
        _ => StoreError::Other(e.to_string()),
    }
}
