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
    pub(crate) register_per_ip_per_hour: Option<u32>,
    pub(crate) db_max_connections: Option<u32>,
    pub(crate) db_acquire_timeout_ms: Option<u64>,
    pub(crate) db_statement_timeout_ms: Option<u64>,
    pub(crate) log_format: Option<String>,
    pub(crate) gateway: Option<GatewaySettings>,
}

/// The `[gateway]` table: gateway mode (docs/gateway.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GatewaySettings {
    pub(crate) upstream: Option<String>,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) max_response_bytes: Option<usize>,
    /// `[gateway.tool_scopes]`: tool name = "scope".
    #[serde(default)]
    pub(crate) tool_scopes: std::collections::BTreeMap<String, String>,
}

/// The gateway configuration from flags/environment over the `[gateway]` table; `None` without an upstream.
pub(crate) fn gateway_config(
    upstream: Option<String>,
    timeout_ms: Option<u64>,
    tool_scopes: &[String],
    file: Option<&GatewaySettings>,
) -> anyhow::Result<Option<portcullis_server::gateway::GatewayConfig>> {
    use portcullis_server::gateway::{config::parse_upstream, GatewayConfig};
    let Some(upstream) = upstream.or_else(|| file.and_then(|f| f.upstream.clone())) else {
        if !tool_scopes.is_empty() || timeout_ms.is_some() {
            bail!("--tool-scope and --upstream-timeout-ms need --upstream (gateway mode)");
        }
        return Ok(None);
    };
    let mut config = GatewayConfig::new(parse_upstream(&upstream)?);
    if let Some(ms) = timeout_ms.or_else(|| file.and_then(|f| f.timeout_ms)) {
        config.set_timeout_ms(ms)?;
    }
    if let Some(max) = file.and_then(|f| f.max_response_bytes) {
        config.max_response = max;
    }
    for (name, scope) in file.map(|f| &f.tool_scopes).into_iter().flatten() {
        config.insert_tool_scope(name, scope)?;
    }
    for t in tool_scopes {
        config.add_tool_scope(t)?;
    }
    Ok(Some(config))
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
        let file: FileSettings = toml::from_str(
            "[gateway]\nupstream = \"http://127.0.0.1:3000/mcp\"\ntimeout_ms = 5000\n\
             [gateway.tool_scopes]\nadmin_tool = \"mcp:admin\"",
        )
        .unwrap();
        let g = gateway_config(
            None,
            None,
            &["other=mcp:tools".into()],
            file.gateway.as_ref(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(g.upstream.as_str(), "http://127.0.0.1:3000/mcp");
        assert_eq!(g.timeout.as_millis(), 5000);
        assert_eq!(g.tool_scopes.len(), 2);
        assert!(gateway_config(None, None, &[], None).unwrap().is_none());
        assert!(gateway_config(None, None, &["x=y".into()], None).is_err());
        assert!(toml::from_str::<FileSettings>("[gateway]\nupstrem = \"x\"").is_err());
        assert_eq!(pick(None, Some(2), 3), 2);
        assert_eq!(pick(Some(1), Some(2), 3), 1);
    }
}
