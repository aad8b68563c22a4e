//! [`GuardConfig`]: who issues the tokens, which resource this is, which scopes every request needs, where the
//! keys come from, and the timing of the key cache. Every value is checked here, once, at start-up.

use crate::error::ConfigError;
use crate::introspection::IntrospectionConfig;
use crate::urls::parse_url;
use portcullis_authz::clock::{Clock, SystemClock};
use portcullis_proto::Scope;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Where the issuer's JSON Web Key Set is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// Read `jwks_uri` from the issuer's RFC 8414 metadata (`/.well-known/oauth-authorization-server`, then
    /// the OpenID Connect form), checking that its `issuer` is the configured one (RFC 8414 §3.3).
    Discover,
    /// This URL.
    Url(Url),
}

/// The guard's settings. Build with [`GuardConfig::new`], then adjust with the `with_*`/`require_scope`
/// methods.
#[derive(Clone)]
pub struct GuardConfig {
    pub(crate) issuer: String,
    pub(crate) issuer_url: Url,
    pub(crate) resource: String,
    pub(crate) resource_url: Url,
    pub(crate) required_scope: Scope,
    pub(crate) scopes_supported: Vec<String>,
    pub(crate) resource_name: Option<String>,
    pub(crate) jwks: JwksSource,
    pub(crate) leeway: i64,
    pub(crate) unknown_kid_interval: i64,
    pub(crate) max_age: i64,
    pub(crate) http_timeout: Duration,
    pub(crate) cache_capacity: usize,
    pub(crate) introspection: Option<IntrospectionConfig>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for GuardConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardConfig")
            .field("issuer", &self.issuer)
            .field("resource", &self.resource)
            .field("required_scope", &self.required_scope.to_string())
            .field("jwks", &self.jwks)
            .field("leeway", &self.leeway)
            .field("unknown_kid_interval", &self.unknown_kid_interval)
            .field("max_age", &self.max_age)
            .field("introspection", &self.introspection)
            .finish_non_exhaustive()
    }
}

/// Default seconds between two JWKS fetches caused by unknown `kid`s.
pub const DEFAULT_UNKNOWN_KID_INTERVAL: i64 = 10;
/// Default age after which the JWKS is refetched, seconds (Portcullis serves it with `max-age=300`).
pub const DEFAULT_MAX_AGE: i64 = 300;
/// Default timeout of one metadata or JWKS request.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Default number of verified tokens kept.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

impl GuardConfig {
    /// `issuer`: the issuer identifier exactly as the tokens' `iss` carries it (for Portcullis, the `issuer`
    /// line `serve` prints, e.g. `https://auth.example.com`). `resource`: this server's resource identifier
    /// exactly as the tokens' `aud` carries it — the URL of the MCP endpoint clients connect to, e.g.
    /// `https://mcp.example.com/mcp` (RFC 8707, RFC 9728 §2 `resource`).
    pub fn new(issuer: &str, resource: &str) -> Result<Self, ConfigError> {
        let issuer_url = parse_url("issuer", issuer, false)?;
        let resource_url = parse_url("resource", resource, true)?;
        Ok(Self {
            issuer: issuer.to_owned(),
            issuer_url,
            resource: resource.to_owned(),
            resource_url,
            required_scope: Scope::default(),
            scopes_supported: Vec::new(),
            resource_name: None,
            jwks: JwksSource::Discover,
            leeway: portcullis_authz::access_token::LEEWAY,
            unknown_kid_interval: DEFAULT_UNKNOWN_KID_INTERVAL,
            max_age: DEFAULT_MAX_AGE,
            http_timeout: DEFAULT_HTTP_TIMEOUT,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            introspection: None,
            clock: Arc::new(SystemClock),
        })
    }

    /// Every request needs `scope` (space-separated tokens allowed); a token without it gets 403
    /// `insufficient_scope`. Also listed in the metadata's `scopes_supported` and the 401 challenge.
    pub fn require_scope(mut self, scope: &str) -> Result<Self, ConfigError> {
        let s = Scope::parse(scope).map_err(|_| ConfigError::Scope(scope.to_owned()))?;
        for token in s.iter() {
            if !self.scopes_supported.iter().any(|t| t == token) {
                self.scopes_supported.push(token.to_owned());
            }
        }
        self.required_scope = self.required_scope.union(&s);
        Ok(self)
    }

    /// Adds scopes to the metadata's `scopes_supported` without requiring them (e.g. scopes that some tools
    /// check themselves on [`crate::VerifiedToken::scope`]).
    pub fn with_scopes_supported<'a>(
        mut self,
        scopes: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, ConfigError> {
        for s in scopes {
            if Scope::from_tokens([s]).is_err() || s.contains(' ') {
                return Err(ConfigError::Scope(s.to_owned()));
            }
            if !self.scopes_supported.iter().any(|t| t == s) {
                self.scopes_supported.push(s.to_owned());
            }
        }
        Ok(self)
    }

    /// RFC 9728 §2 `resource_name`, shown by some clients.
    pub fn with_resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// Fetch the JWKS from `url` instead of discovering it from the issuer's metadata.
    pub fn with_jwks_url(mut self, url: &str) -> Result<Self, ConfigError> {
        self.jwks = JwksSource::Url(parse_url("jwks_uri", url, true)?);
        Ok(self)
    }

    /// Clock skew tolerated on `exp`, `nbf` and `iat`, seconds (0–300; default 5).
    pub fn with_leeway(mut self, secs: i64) -> Result<Self, ConfigError> {
        if !(0..=300).contains(&secs) {
            return Err(ConfigError::Range("leeway must be 0 to 300 seconds"));
        }
        self.leeway = secs;
        Ok(self)
    }

    /// At most one JWKS fetch per `secs` seconds because of unknown `kid`s or failed fetches (1–3600;
    /// default 10). Bounds the load a stream of forged `kid`s can put on the issuer.
    pub fn with_unknown_kid_interval(mut self, secs: i64) -> Result<Self, ConfigError> {
        if !(1..=3600).contains(&secs) {
            return Err(ConfigError::Range(
                "unknown_kid_interval must be 1 to 3600 seconds",
            ));
        }
        self.unknown_kid_interval = secs;
        Ok(self)
    }

    /// Refetch the JWKS when it is older than `secs` (10–86400; default 300), so a key the issuer removed
    /// stops verifying.
    pub fn with_max_age(mut self, secs: i64) -> Result<Self, ConfigError> {
        if !(10..=86_400).contains(&secs) {
            return Err(ConfigError::Range("max_age must be 10 to 86400 seconds"));
        }
        self.max_age = secs;
        Ok(self)
    }

    /// Timeout of one metadata or JWKS request (default 5 s; 100 ms to 60 s).
    pub fn with_http_timeout(mut self, timeout: Duration) -> Result<Self, ConfigError> {
        if timeout < Duration::from_millis(100) || timeout > Duration::from_secs(60) {
            return Err(ConfigError::Range("http_timeout must be 100 ms to 60 s"));
        }
        self.http_timeout = timeout;
        Ok(self)
    }

    /// Verified tokens kept (0 disables the cache; default 10 000).
    pub fn with_cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// Also ask the issuer's introspection endpoint (RFC 7662) whether each JWT-valid token is still active, so
    /// a revocation at the issuer is seen within the introspection cache's lifetime (default 5 s) instead of
    /// at the token's `exp` ([`crate::introspection`]). Costs one request to the issuer per token per
    /// `cache_ttl`; fails closed (503) when the issuer cannot answer.
    pub fn with_introspection(mut self, introspection: IntrospectionConfig) -> Self {
        self.introspection = Some(introspection);
        self
    }

    /// The clock (tests inject a [`crate::FixedClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The issuer identifier.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The resource identifier.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The scope every request needs.
    pub fn required_scope(&self) -> &Scope {
        &self.required_scope
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(GuardConfig::new("https://as.example", "https://rs.example/mcp").is_ok());
        assert!(GuardConfig::new("http://127.0.0.1:1", "http://localhost:2/mcp").is_ok());
        assert!(GuardConfig::new("http://as.example", "https://rs.example/mcp").is_err());
        assert!(GuardConfig::new("https://as.example", "http://rs.example/mcp").is_err());
        assert!(GuardConfig::new("https://as.example/?q", "https://rs.example/mcp").is_err());
        assert!(GuardConfig::new("https://as.example", "https://rs.example/mcp#f").is_err());
        assert!(GuardConfig::new("https://as.example", "mcp").is_err());
        assert!(GuardConfig::new("https://u:p@as.example", "https://rs.example/mcp").is_err());
        let c = GuardConfig::new("https://as.example", "https://rs.example/mcp").unwrap();
        assert!(c.clone().with_jwks_url("ftp://as.example/jwks").is_err());
        assert!(c.clone().with_leeway(301).is_err());
        assert!(c.clone().with_unknown_kid_interval(0).is_err());
        assert!(c.clone().with_max_age(5).is_err());
        assert!(c
            .clone()
            .with_http_timeout(Duration::from_millis(1))
            .is_err());
        assert_eq!(
            c.clone().require_scope("a\"b").unwrap_err(),
            ConfigError::Scope("a\"b".into())
        );
        let c = c
            .require_scope("mcp:tools")
            .unwrap()
            .require_scope("mcp:read mcp:tools")
            .unwrap();
        assert_eq!(c.required_scope().to_string(), "mcp:read mcp:tools");
        assert_eq!(c.scopes_supported, vec!["mcp:tools", "mcp:read"]);
    }
}
