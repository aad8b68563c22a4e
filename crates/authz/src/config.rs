//! What the authorization-server logic needs to know about its deployment.

use portcullis_proto::{PrivateUseSchemes, Scope};
use std::collections::BTreeMap;

/// The `offline_access` scope: a client asks to stay connected (refresh tokens). It is an authorization-server
/// scope, not a resource scope (MCP SEP-2207): advertised in the AS metadata, granted when asked for, never in
/// the protected resource metadata, a `WWW-Authenticate` challenge or an access token's `scope` claim. Refresh
/// tokens themselves go to clients that registered the `refresh_token` grant (SEP-2207 "advertise capability";
/// OAuth 2.1 §4.3), so clients that never ask for `offline_access` — like the seed's — still get one.
pub const OFFLINE_ACCESS: &str = "offline_access";

/// One entry of the scope catalogue: a scope the server knows, what the consent page says about it, and which
/// tools of the built-in MCP server need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeInfo {
    /// The scope token.
    pub name: String,
    /// One sentence shown on the consent page.
    pub description: String,
    /// Tools (of the built-in MCP server) that need this scope.
    pub tools: Vec<String>,
}

/// The scopes one protected resource offers (its RFC 9728 `scopes_supported`) and the ones granted there when a
/// request names none of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceScopes {
    /// What the resource offers; a subset of the catalogue.
    pub offered: Scope,
    /// Granted when the request names none of `offered`; a non-empty subset of `offered`.
    pub default: Scope,
}

/// Issuer, resources, scopes and lifetimes. Built once at start-up by the server's configuration.
#[derive(Debug, Clone)]
pub struct AuthzConfig {
    /// The issuer identifier (RFC 8414 §2): an https (or loopback http) URL with no query or fragment and no
    /// trailing slash.
    pub issuer: String,
    /// The resource identifiers (RFC 8707) tokens may be issued for; the first is the default audience.
    pub resources: Vec<String>,
    /// Resources that offer only part of the catalogue (gateway routes), by resource identifier. A resource
    /// not listed here offers the whole catalogue.
    pub resource_scope_limits: BTreeMap<String, ResourceScopes>,
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
    /// Seconds after a rotation during which the token it retired, presented again by its client, gets the
    /// same successor instead of revoking the family (a lost response, concurrent refreshes); 0: strict
    /// rotation (RFC 9700 §4.14.2, OAuth 2.1 §4.3.1). See `token::refresh`.
    pub refresh_grace_period: i64,
    /// Login session lifetime, seconds.
    pub session_ttl: i64,
    /// The `display_name` of each configured identity provider, by `name`: access tokens of users who signed in
    /// through one carry it as `idp_name` beside `idp`.
    pub idp_display_names: BTreeMap<String, String>,
    /// Private-use redirect schemes accepted at registration (and in Client ID Metadata Documents) besides
    /// reverse-domain ones (RFC 8252 §7.1); default: those of widely used MCP clients.
    pub allowed_redirect_schemes: PrivateUseSchemes,
    /// `localhost_redirect_uris`: what registration does with `http://localhost` redirect URIs.
    pub localhost_redirect_uris: LocalhostRedirects,
}

/// `localhost_redirect_uris`: what registration (and a Client ID Metadata Document) may do with redirect URIs on
/// the host name `localhost`. RFC 8252 §8.3 recommends loopback IP literals (`http://127.0.0.1:PORT/…`,
/// `http://[::1]:PORT/…`): the name may resolve to another address or family, where another program can listen.
/// Widely used MCP clients still register `localhost`, hence the default [`LocalhostRedirects::Warn`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LocalhostRedirects {
    /// Accepted silently.
    Allow,
    /// Accepted; the server logs a warning naming the client.
    #[default]
    Warn,
    /// Refused with `invalid_redirect_uri` (RFC 7591 §3.2.2).
    Refuse,
}

impl std::str::FromStr for LocalhostRedirects {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allow" => Ok(Self::Allow),
            "warn" => Ok(Self::Warn),
            "refuse" => Ok(Self::Refuse),
            other => Err(format!("{other:?} is not one of allow, warn, refuse")),
        }
    }
}

impl AuthzConfig {
    /// Defaults for `issuer`, with the MCP endpoint at `resource`.
    pub fn new(issuer: impl Into<String>, resource: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            resources: vec![resource.into()],
            resource_scope_limits: BTreeMap::new(),
            idp_display_names: BTreeMap::new(),
            scopes: default_scopes(),
            default_scope: Scope::from_tokens(["mcp:tools"]).unwrap_or_default(),
            code_ttl: 60,
            access_token_ttl: 3600,
            refresh_idle_ttl: 30 * 24 * 3600,
            refresh_absolute_ttl: 90 * 24 * 3600,
            refresh_grace_period: 30,
            session_ttl: 12 * 3600,
            allowed_redirect_schemes: PrivateUseSchemes::mcp_clients(),
            localhost_redirect_uris: LocalhostRedirects::Warn,
        }
    }

    /// The default audience: the first resource.
    pub fn default_resource(&self) -> &str {
        self.resources.first().map_or("", String::as_str)
    }

    /// Every scope a client may be granted: the catalogue and `offline_access`.
    pub fn supported_scopes(&self) -> Scope {
        Scope::from_tokens(
            self.scopes
                .iter()
                .map(|s| s.name.as_str())
                .chain([OFFLINE_ACCESS]),
        )
        .unwrap_or_default()
    }

    /// The resource's own scopes: the catalogue (what RFC 9728 `scopes_supported` lists).
    pub fn resource_scopes(&self) -> Vec<String> {
        self.scopes.iter().map(|s| s.name.clone()).collect()
    }

    /// The scope granted for `requested` at `resource`, and the requested scopes ignored there (RFC 6749 §3.3:
    /// the server may grant less than requested; RFC 8707 §2: the token is for that resource only). A resource
    /// with [`resource_scope_limits`](Self::resource_scope_limits) grants only what it offers (plus
    /// `offline_access`), and its own default when nothing requested is offered; others grant from the whole
    /// catalogue.
    pub fn grantable_scope(&self, resource: &str, requested: &Scope) -> (Scope, Scope) {
        let (offered, default) = match self.resource_scope_limits.get(resource) {
            Some(limits) => (
                limits
                    .offered
                    .union(&Scope::from_tokens([OFFLINE_ACCESS]).unwrap_or_default()),
                &limits.default,
            ),
            None => (self.supported_scopes(), &self.default_scope),
        };
        let mut granted = requested.intersection(&offered);
        let ignored = requested.difference(&offered);
        if granted.is_empty() {
            granted = default.clone();
        }
        (granted, ignored)
    }

    /// The catalogue entry for `name`.
    pub fn scope_info(&self, name: &str) -> Option<&ScopeInfo> {
        self.scopes.iter().find(|s| s.name == name)
    }

    /// What the consent page says about `name`.
    pub fn describe_scope(&self, name: &str) -> String {
        if name == OFFLINE_ACCESS {
            return "Stay connected when you are not using it (keep access until you revoke it)"
                .into();
        }
        self.scope_info(name)
            .map_or_else(|| name.to_owned(), |i| i.description.clone())
    }

    /// The scope `tool` needs, when the catalogue names one.
    pub fn scope_for_tool(&self, tool: &str) -> Option<&str> {
        self.scopes
            .iter()
            .find(|s| s.tools.iter().any(|t| t == tool))
            .map(|s| s.name.as_str())
    }
}

/// The built-in catalogue, matching the built-in MCP server's tools.
pub fn default_scopes() -> Vec<ScopeInfo> {
    vec![
        ScopeInfo {
            name: "mcp:tools".into(),
            description: "List and call the MCP server's tools".into(),
            tools: vec!["whoami".into(), "echo".into()],
        },
        ScopeInfo {
            name: "mcp:admin".into(),
            description: "See server statistics (administrative tools)".into(),
            tools: vec!["server_stats".into()],
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_access_is_grantable_but_not_a_resource_scope() {
        let c = AuthzConfig::new("https://as", "https://as/mcp");
        assert!(c.supported_scopes().contains(OFFLINE_ACCESS));
        assert!(!c.resource_scopes().iter().any(|s| s == OFFLINE_ACCESS));
        assert_eq!(c.scope_for_tool("server_stats"), Some("mcp:admin"));
        assert_eq!(c.scope_for_tool("nope"), None);
        assert!(c
            .describe_scope(OFFLINE_ACCESS)
            .starts_with("Stay connected"));
    }

    #[test]
    fn limited_resources_grant_only_their_own_scopes() {
        let mut c = AuthzConfig::new("https://as", "https://as/mcp");
        let s = |t: &str| Scope::parse(t).unwrap();
        c.resources.push("https://as/github/mcp".into());
        c.resource_scope_limits.insert(
            "https://as/github/mcp".into(),
            ResourceScopes {
                offered: s("mcp:admin"),
                default: s("mcp:admin"),
            },
        );
        let g = |r: &str, req: &str| {
            let (granted, ignored) = c.grantable_scope(r, &s(req));
            (granted.to_string(), ignored.to_string())
        };
        // The built-in resource: the whole catalogue, the global default otherwise.
        assert_eq!(
            g("https://as/mcp", "mcp:tools mcp:admin"),
            ("mcp:admin mcp:tools".into(), "".into())
        );
        assert_eq!(
            g("https://as/mcp", "nope"),
            ("mcp:tools".into(), "nope".into())
        );
        // The limited one: the intersection with what it offers, offline_access kept.
        assert_eq!(
            g(
                "https://as/github/mcp",
                "mcp:tools mcp:admin offline_access"
            ),
            ("mcp:admin offline_access".into(), "mcp:tools".into())
        );
        assert_eq!(
            g("https://as/github/mcp", "mcp:tools"),
            ("mcp:admin".into(), "mcp:tools".into())
        );
        assert_eq!(
            g("https://as/github/mcp", ""),
            ("mcp:admin".into(), "".into())
        );
    }
}
