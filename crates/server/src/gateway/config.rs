//! [`GatewayConfig`]: where the upstream MCP server is, how long to wait for it, and which scope each tool needs.

use portcullis_proto::Scope;
use std::collections::BTreeMap;
use std::time::Duration;
use url::Url;

/// Default time to wait for the upstream's response head (and for a whole JSON body), milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Default largest non-streaming (JSON) upstream response body, bytes.
pub const DEFAULT_MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// Gateway configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// The upstream MCP endpoint (Streamable HTTP), e.g. `http://127.0.0.1:3000/mcp`.
    pub upstream: Url,
    /// How long to wait for the upstream's response head, and for a whole non-streaming body. Event streams may
    /// stay open longer.
    pub timeout: Duration,
    /// Largest non-streaming upstream response body; larger answers 502.
    pub max_response: usize,
    /// Tool name → scope a `tools/call` of that tool needs (all of its tokens).
    pub tool_scopes: BTreeMap<String, Scope>,
}

/// Why a gateway setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayConfigError {
    /// The upstream is not an absolute http(s) URL without credentials or fragment.
    #[error("upstream {0:?} must be an http or https URL with no user name, password or fragment")]
    Upstream(String),
    /// A `--tool-scope` value is not `NAME=SCOPE`.
    #[error("tool scope {0:?} must look like NAME=SCOPE (for example admin_tool=mcp:admin)")]
    ToolScope(String),
    /// The timeout is out of range.
    #[error("upstream timeout must be 100 to 3600000 ms")]
    Timeout,
}

/// Parses the upstream URL.
pub fn parse_upstream(text: &str) -> Result<Url, GatewayConfigError> {
    let err = || GatewayConfigError::Upstream(text.to_owned());
    let url = Url::parse(text.trim()).map_err(|_| err())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.fragment().is_some()
    {
        return Err(err());
    }
    Ok(url)
}

impl GatewayConfig {
    /// Defaults for `upstream`: 30 s timeout, 16 MiB response limit, no per-tool scopes.
    pub fn new(upstream: Url) -> Self {
        Self {
            upstream,
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            max_response: DEFAULT_MAX_RESPONSE,
            tool_scopes: BTreeMap::new(),
        }
    }

    /// Sets the timeout in milliseconds.
    pub fn set_timeout_ms(&mut self, ms: u64) -> Result<(), GatewayConfigError> {
        if !(100..=3_600_000).contains(&ms) {
            return Err(GatewayConfigError::Timeout);
        }
        self.timeout = Duration::from_millis(ms);
        Ok(())
    }

    /// Adds a `NAME=SCOPE` mapping (a `--tool-scope` flag).
    pub fn add_tool_scope(&mut self, text: &str) -> Result<(), GatewayConfigError> {
        let (name, scope) = text
            .split_once('=')
            .ok_or_else(|| GatewayConfigError::ToolScope(text.to_owned()))?;
        self.insert_tool_scope(name, scope)
            .map_err(|_| GatewayConfigError::ToolScope(text.to_owned()))
    }

    /// Adds a mapping from tool `name` to `scope` (the `[gateway.tool_scopes]` table).
    pub fn insert_tool_scope(&mut self, name: &str, scope: &str) -> Result<(), GatewayConfigError> {
        let err = || GatewayConfigError::ToolScope(format!("{name}={scope}"));
        let name = name.trim();
        let scope = Scope::parse(scope.trim()).map_err(|_| err())?;
        if name.is_empty() || scope.is_empty() {
            return Err(err());
        }
        self.tool_scopes.insert(name.to_owned(), scope);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_and_tool_scope_parsing() {
        assert!(parse_upstream("http://127.0.0.1:3000/mcp").is_ok());
        assert!(parse_upstream("https://mcp.internal/x").is_ok());
        assert!(parse_upstream("ftp://h/x").is_err());
        assert!(parse_upstream("http://u:p@h/x").is_err());
        assert!(parse_upstream("http://h/x#f").is_err());
        assert!(parse_upstream("/mcp").is_err());
        let mut c = GatewayConfig::new(parse_upstream("http://127.0.0.1:1/mcp").expect("url"));
        c.add_tool_scope("admin_tool=mcp:admin").expect("ok");
        assert_eq!(c.tool_scopes["admin_tool"].to_string(), "mcp:admin");
        assert!(c.add_tool_scope("nothing").is_err());
        assert!(c.add_tool_scope("=mcp:admin").is_err());
        assert!(c.add_tool_scope("x=").is_err());
        assert!(c.set_timeout_ms(5).is_err());
        assert!(c.set_timeout_ms(1000).is_ok());
    }
}
