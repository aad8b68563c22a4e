//! Settings of `portcullis serve` and the admin commands: the TOML file, then `PORTCULLIS_*` environment
//! variables, then flags, each overriding the one before (clap reads the environment variables with the flags).

use anyhow::{bail, Context};
use serde::Deserialize;
use std::path::Path;

/// The TOML file. Unknown keys are an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSettings {
    pub(crate) listen: Option<String>,
    pub(crate) database: Option<String>,
    pub(crate) issuer: Option<String>,
    pub(crate) mcp_path: Option<String>,
    pub(crate) access_token_ttl: Option<i64>,
    pub(crate) refresh_idle_ttl: Option<i64>,
    pub(crate) refresh_absolute_ttl: Option<i64>,
    pub(crate) session_ttl: Option<i64>,
    pub(crate) revocation_sync_ms: Option<u64>,
    pub(crate) db_max_connections: Option<u32>,
    pub(crate) log_format: Option<String>,
}

impl FileSettings {
    /// Reads the file if a path is given.
    pub(crate) fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("config file {} is invalid", path.display()))
    }
}

/// The default SQLite database, next to where the server runs.
pub(crate) const DEFAULT_DATABASE: &str = "sqlite://portcullis.db";
/// The default listen address.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Picks flag/env over file over default.
pub(crate) fn pick<T>(flag: Option<T>, file: Option<T>, default: T) -> T {
    flag.or(file).unwrap_or(default)
}

/// Checks a log format name.
pub(crate) fn check_log_format(f: &str) -> anyhow::Result<()> {
    match f {
        "text" | "json" => Ok(()),
        other => bail!("log format {other:?} is not one of text, json"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<FileSettings>(
            "listen = \"127.0.0.1:1\"\nissuer = \"http://127.0.0.1:1\""
        )
        .is_ok());
        assert!(toml::from_str::<FileSettings>("lsten = \"x\"").is_err());
        assert_eq!(pick(None, Some(2), 3), 2);
        assert_eq!(pick(Some(1), Some(2), 3), 1);
    }
}
