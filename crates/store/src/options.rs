//! [`StoreOptions`]: storage tuning shared by the backends.

/// Storage tuning shared by the backends.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Reader connections (SQLite) or pool size per instance (PostgreSQL; the server's `max_connections`
    /// must cover every instance's pool).
    pub max_connections: u32,
    /// How long to wait for a connection (including connecting) or a lock before answering "unavailable",
    /// milliseconds.
    pub acquire_timeout_ms: u64,
    /// PostgreSQL only: the server cancels any statement running longer than this, milliseconds, and the
    /// caller answers "unavailable" instead of hanging on a slow database. `0` leaves the server's setting.
    pub statement_timeout_ms: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 4,
            // Short enough that a request finds out within a few seconds that the database is gone or hangs
            // and answers 503 with `Retry-After`; long enough for a TLS connect to a remote database.
            acquire_timeout_ms: 3000,
            statement_timeout_ms: 5000,
        }
    }
}
