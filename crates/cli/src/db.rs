//! The database flags shared by `serve` and the admin commands, and opening the storage adapter they name (the
//! binary is the composition root for storage).

use anyhow::Context;
use clap::Args;
use portcullis_server::settings::{DatabaseOverrides, DatabaseSettings};
use portcullis_store::StoreOptions;
use std::path::PathBuf;
use std::sync::Arc;

/// Where the database is: shared by `serve` and the admin commands.
#[derive(Debug, Clone, Args)]
pub(crate) struct DbArgs {
    /// Database URL: sqlite://PATH (default sqlite://portcullis.db).
    #[arg(long, env = "PORTCULLIS_DATABASE")]
    pub(crate) database: Option<String>,
    /// TOML configuration file.
    #[arg(long, env = "PORTCULLIS_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// How long a request waits for a database connection (including connecting) before it is answered
    /// 503 temporarily_unavailable, in milliseconds (default 3000).
    #[arg(long, env = "PORTCULLIS_DB_ACQUIRE_TIMEOUT_MS")]
    pub(crate) db_acquire_timeout_ms: Option<u64>,
    /// PostgreSQL: the server cancels statements running longer than this, in milliseconds (default 5000;
    /// 0 keeps the server's setting).
    #[arg(long, env = "PORTCULLIS_DB_STATEMENT_TIMEOUT_MS")]
    pub(crate) db_statement_timeout_ms: Option<u64>,
}

impl DbArgs {
    /// The database flags as the top settings layer.
    pub(crate) fn overrides(&self, max_connections: Option<u32>) -> DatabaseOverrides {
        DatabaseOverrides {
            url: self.database.clone(),
            max_connections,
            acquire_timeout_ms: self.db_acquire_timeout_ms,
            statement_timeout_ms: self.db_statement_timeout_ms,
        }
    }
}

/// Opens the storage adapter `database` names (the binary is the composition root for storage); unset
/// options take the adapter's defaults.
pub(crate) async fn open_store(
    database: &DatabaseSettings,
) -> anyhow::Result<Arc<dyn portcullis_authz::Storage>> {
    let defaults = StoreOptions::default();
    let options = StoreOptions {
        max_connections: database.max_connections.unwrap_or(defaults.max_connections),
        acquire_timeout_ms: database
            .acquire_timeout_ms
            .unwrap_or(defaults.acquire_timeout_ms),
        statement_timeout_ms: database
            .statement_timeout_ms
            .unwrap_or(defaults.statement_timeout_ms),
    };
    portcullis_store::open(&database.url, &options)
        .await
        .with_context(|| format!("cannot open database {}", database.redacted_url()))
}
