//! Driver errors to [`StoreError`]: connection trouble, timeouts and exhausted retries are `Unavailable` (503
//! upstream), a unique violation is `Conflict`, the rest `Other` (500, details logged only).

use portcullis_authz::store::StoreError;

/// Maps a sqlx error.
pub fn map(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => StoreError::Unavailable(e.to_string()),
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::Decode(_) => StoreError::Corrupt(e.to_string()),
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                return StoreError::Conflict(db.message().to_owned());
            }
            // SQLite: SQLITE_BUSY (5) / SQLITE_LOCKED (6) / SQLITE_BUSY_RECOVERY (517) after the busy timeout.
            // PostgreSQL: 08xxx connection exceptions, 53xxx insufficient resources, 57P01..57P03 shutdown or
            // not accepting connections, 57014 statement timeout (a slow database is an unavailable one),
            // 55P03 lock timeout, 25006 read-only transaction (a standby after failover), and 40001 / 40P01
            // once the bounded retries are spent.
            let code = db.code().unwrap_or_default();
            if matches!(
                &*code,
                "5" | "6" | "517" | "57P01" | "57P02" | "57P03" | "57014" | "55P03" | "25006"
            ) || code.starts_with("08")
                || code.starts_with("53")
                || is_retryable(&e)
            {
                StoreError::Unavailable(e.to_string())
            } else {
                StoreError::Other(e.to_string())
            }
        }
        _ => StoreError::Other(e.to_string()),
    }
}

/// Whether the transaction failed only because of concurrency and may simply be run again: PostgreSQL
/// serialization failure (40001, also CockroachDB's "restart transaction") or deadlock (40P01). Nothing of
/// the failed attempt was committed.
pub fn is_retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("40001" | "40P01")),
        _ => false,
    }
}

/// Maps a rusqlite error (the SQLite backend's own connections): a unique or primary-key violation is
/// `Conflict`; `SQLITE_BUSY` / `SQLITE_LOCKED` after the busy timeout, a full disk, an I/O error or a database
/// that cannot be opened are `Unavailable`; a damaged file or values that do not read back are `Corrupt`; the rest `Other`.
pub fn map_sqlite(e: rusqlite::Error) -> StoreError {
    use rusqlite::ffi;
    use rusqlite::ErrorCode;
    match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            ErrorCode::ConstraintViolation
                if matches!(
                    f.extended_code,
                    ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
            {
                StoreError::Conflict(e.to_string())
            }
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen
            | ErrorCode::ReadOnly => StoreError::Unavailable(e.to_string()),
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
                StoreError::Corrupt(e.to_string())
            }
            _ => StoreError::Other(e.to_string()),
        },
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::InvalidColumnName(..)
        | rusqlite::Error::Utf8Error(..) => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Other(e.to_string()),
    }
}
