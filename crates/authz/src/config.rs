//! What the authorization-server logic needs to know about its deployment.

use portcullis_proto::Scope;

/// One entry of the scope catalogue: a scope the server knows, what the consent page says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeInfo {
    /// The scope token.
    pub name: String,
    /// One sentence shown on the consent page.
    pub description: String,
}

/// Issuer, resources, scopes and lifetimes. Built once at start-up by the server's configuration.
#[derive(Debug, Clone)]
pub struct AuthzConfig {
    /// The issuer identifier (RFC 8414 §2): an https (or loopback http) URL with no query or fragment and no
    /// trailing slash.
    pub issuer: String,
    /// The resource identifiers (RFC 8707) tokens may be issued for; the first is the default audience.
    pub resources: Vec<String>,
    /// The scope catalogue.
    pub scopes: Vec<ScopeInfo>,
    /// Granted when a client asks for no known scope (RFC 6749 §3.3 lets the server choose a default).
    pub default_scope: Scope,
    /// Authorization code lifetime, seconds (≤ 60: RFC 9700 §4.5, OAuth 2.1 §4.1.2).
    pub code_ttl: i64,
    /// Access token lifetime, seconds.
    pub access_token_ttl: i64,
    /// A refresh token unused this long expires, seconds.
    pub refresh_idle_ttl: i64,
    /// No refresh token of a grant lives past the grant's start plus this, seconds.
    pub refresh_absolute_ttl: i64,
    /// Login session lifetime, seconds.
    pub session_ttl: i64,
}

impl AuthzConfig {
    /// Defaults for `issuer`, with the MCP endpoint at `resource`.
    pub fn new(issuer: impl Into<String>, resource: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            resources: vec![resource.into()],
            scopes: default_scopes(),
            default_scope: Scope::from_tokens(["mcp:tools"]).unwrap_or_default(),
            code_ttl: 60,
            access_token_ttl: 3600,
            refresh_idle_ttl: 30 * 24 * 3600,
            refresh_absolute_ttl: 90 * 24 * 3600,
            session_ttl: 12 * 3600,
        }
    }

    /// The default audience: the first resource.
    pub fn default_resource(&self) -> &str {
        self.resources.first().map_or("", String::as_str)
    }

    /// Every scope in the catalogue.
    pub fn supported_scopes(&self) -> Scope {
        Scope::from_tokens(self.scopes.iter().map(|s| s.name.as_str())).unwrap_or_default()
    }

    /// The catalogue entry for `name`.
    pub fn scope_info(&self, name: &str) -> Option<&ScopeInfo> {
        self.scopes.iter().find(|s| s.name == name)
    }
}

/// The built-in catalogue, matching the built-in MCP server's tools.
pub fn default_scopes() -> Vec<ScopeInfo> {
    vec![
        ScopeInfo {
            name: "mcp:tools".into(),
            description: "List and call the MCP server's tools".into(),
        },
        ScopeInfo {
            name: "mcp:admin".into(),
            description: "See server statistics (administrative tools)".into(),
        },
    ]
}
