//! The server's typed configuration. The binary builds it from the TOML file, `PORTCULLIS_*` environment
//! variables and flags; everything here is already checked.

use crate::connections::{ConnectionLimits, MAX_CONNECTIONS_LIMIT};
use crate::gateway::config::{check_routes, GatewayConfig, GatewayConfigError, RouteConfig};
use portcullis_authz::client_reaping::ReapPolicy;
use portcullis_authz::config::{default_scopes, ScopeInfo};
use portcullis_authz::AuthzConfig;
use portcullis_proto::{PrivateUseSchemes, Scope};
use std::time::Duration;
use url::Url;

/// Server configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The issuer URL.
    pub issuer: Url,
    /// Path of the MCP endpoint on the issuer's origin.
    pub mcp_path: String,
    /// Scope catalogue.
    pub scopes: Vec<ScopeInfo>,
    /// Granted when a request names no known scope.
    pub default_scope: Scope,
    /// Access token lifetime, seconds.
    pub access_token_ttl: i64,
    /// Refresh token idle lifetime, seconds.
    pub refresh_idle_ttl: i64,
    /// Refresh token absolute lifetime, seconds.
    pub refresh_absolute_ttl: i64,
    /// Seconds after a rotation during which the rotated refresh token, presented again by its client, gets
    /// the same successor (RFC 9700 §4.14.2 relaxed for lost responses and races; see SECURITY.md); 0: strict.
    pub refresh_grace_period: i64,
    /// Login session lifetime, seconds.
    pub session_ttl: i64,
    /// How often revocations are read from the database, milliseconds: the longest a revoked token keeps
    /// working at the MCP endpoint of another instance.
    pub revocation_sync_ms: u64,
    /// How often signing keys are re-read, seconds (rotation by the CLI or another instance).
    pub key_reload_secs: u64,
    /// How often expired rows are deleted, seconds.
    pub purge_interval_secs: u64,
    /// When dead registrations are deleted (`tokenless_client_ttl`, `idle_client_ttl`); the job runs every
    /// [`ReapPolicy::period`] of the purge interval.
    pub client_reaping: ReapPolicy,
    /// Gateway mode: forward the MCP endpoint to this upstream instead of the built-in server.
    pub upstream: Option<GatewayConfig>,
    /// `[[gateway.routes]]`: more upstreams on their own paths, each its own protected resource. They coexist
    /// with the MCP endpoint (built-in server or `upstream`).
    pub gateway_routes: Vec<RouteConfig>,
    /// Registrations accepted per client address per hour at `POST /register`; 0 = unlimited (security
    /// notes, "Registration": registrations per IP per hour).
    pub register_per_ip_per_hour: u32,
    /// Failed token requests (`invalid_grant`, `invalid_client`) accepted per client address per 5 minutes
    /// before `POST /token` answers 429; 0 = unlimited. Counted in the database, so it holds across instances.
    pub token_failures_per_ip: u32,
    /// Password checks (argon2id, 19 MiB each) run at once at most; beyond them and a short queue, a sign-in
    /// gets 503 with `Retry-After` ([`crate::password_checks`]). Default: the CPU cores, at least 2.
    pub password_hash_concurrency: u32,
    /// For tests only: `host:port` values whose Client ID Metadata Documents are fetched without the SSRF
    /// address check and may use plain http ([`crate::outbound::cimd`]). Empty by default.
    pub cimd_allow_hosts: Vec<String>,
    /// What the sign-in page offers: the password form, identity providers (docs/federation.md).
    pub sign_in: crate::pages::SignInOptions,
    /// Private-use redirect schemes clients may register besides reverse-domain ones (RFC 8252 §7.1).
    pub allowed_redirect_schemes: PrivateUseSchemes,
    /// `localhost_redirect_uris`: what registration does with `http://localhost` redirect URIs (RFC 8252 §8.3).
    pub localhost_redirect_uris: portcullis_authz::config::LocalhostRedirects,
    /// The connection cap and the header read timeout (`max_connections`, `header_read_timeout_ms`).
    pub connections: ConnectionLimits,
}

/// The longest refresh grace period accepted, seconds: the window only has to cover a retry or a race, and
/// every second of it is a second in which a stolen, already-rotated token is not detected (SECURITY.md).
pub const MAX_REFRESH_GRACE_PERIOD: i64 = 300;

/// The most concurrent password checks accepted (each holds 19 MiB while it runs).
pub const MAX_PASSWORD_HASH_CONCURRENCY: u32 = 256;

/// Why a configuration value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The issuer is not an acceptable issuer identifier.
    #[error("issuer {0:?} must be an https URL (or http on a loopback host) with no query, fragment or trailing slash")]
    Issuer(String),
    /// The MCP path is not an absolute path.
    #[error("mcp_path {0:?} must start with / and contain no query or fragment")]
    McpPath(String),
    /// A lifetime is out of range.
    #[error("{0}")]
    Lifetime(String),
    /// A limit is out of range.
    #[error("{0}")]
    Limit(String),
    /// A gateway setting (routes, per-tool scopes) is inconsistent.
    #[error(transparent)]
    Gateway(#[from] GatewayConfigError),
}

/// Parses an issuer (RFC 8414 §2: https, no query or fragment; http allowed on loopback for development).
pub fn parse_issuer(text: &str) -> Result<Url, ConfigError> {
    let err = || ConfigError::Issuer(text.to_owned());
    let url = Url::parse(text).map_err(|_| err())?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    let scheme_ok = url.scheme() == "https"
        || (url.scheme() == "http" && loopback)
        || (url.scheme() == "http" && allow_http_issuer());
    if !scheme_ok
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.host().is_none()
    {
        return Err(err());
    }
    if url.path() != "/" && url.path().ends_with('/') {
        return Err(err());
    }
    Ok(url)
}

/// `PORTCULLIS_ALLOW_HTTP_ISSUER=1` lets an http issuer on a non-loopback host through (a TLS-terminating
/// proxy that talks http to us on a private network while clients see https is the usual reason; prefer
/// setting the public https issuer instead).
fn allow_http_issuer() -> bool {
    std::env::var("PORTCULLIS_ALLOW_HTTP_ISSUER").is_ok_and(|v| v == "1")
}

impl ServerConfig {
    /// Defaults for `issuer`.
    pub fn new(issuer: Url) -> Self {
        let base = issuer.path().trim_end_matches('/').to_owned();
        Self {
            issuer,
            mcp_path: format!("{base}/mcp"),
            scopes: default_scopes(),
            default_scope: Scope::from_tokens(["mcp:tools"]).unwrap_or_default(),
            access_token_ttl: 3600,
            refresh_idle_ttl: 30 * 24 * 3600,
            refresh_absolute_ttl: 90 * 24 * 3600,
            refresh_grace_period: 30,
            session_ttl: 12 * 3600,
            revocation_sync_ms: 1000,
            key_reload_secs: 60,
            purge_interval_secs: 3600,
            client_reaping: ReapPolicy::default(),
            upstream: None,
            gateway_routes: Vec::new(),
            register_per_ip_per_hour: 100,
            token_failures_per_ip: 600,
            password_hash_concurrency: crate::password_checks::default_concurrency(),
            cimd_allow_hosts: Vec::new(),
            sign_in: crate::pages::SignInOptions::default(),
            allowed_redirect_schemes: PrivateUseSchemes::mcp_clients(),
            localhost_redirect_uris: Default::default(),
            connections: ConnectionLimits::default(),
        }
    }

    /// Checks the values that cannot be checked by their types.
    pub fn check(&self) -> Result<(), ConfigError> {
        if !self.mcp_path.starts_with('/') || self.mcp_path.contains(['?', '#']) {
            return Err(ConfigError::McpPath(self.mcp_path.clone()));
        }
        if !(10..=86_400).contains(&self.access_token_ttl) {
            return Err(ConfigError::Lifetime(
                "access_token_ttl must be 10 to 86400 seconds".into(),
            ));
        }
        if self.refresh_idle_ttl < 60 || self.refresh_absolute_ttl < self.refresh_idle_ttl {
            return Err(ConfigError::Lifetime(
                "refresh lifetimes must be at least 60 s, the absolute one at least the idle one"
                    .into(),
            ));
        }
        if self.client_reaping.tokenless_after < 0 || self.client_reaping.idle_after < 0 {
            return Err(ConfigError::Lifetime(
                "tokenless_client_ttl and idle_client_ttl must be 0 (never) or more seconds".into(),
            ));
        }
        if !(1..=MAX_PASSWORD_HASH_CONCURRENCY).contains(&self.password_hash_concurrency) {
            return Err(ConfigError::Limit(format!(
                "password_hash_concurrency must be 1 to {MAX_PASSWORD_HASH_CONCURRENCY}"
            )));
        }
        if !(0..=MAX_REFRESH_GRACE_PERIOD).contains(&self.refresh_grace_period) {
            return Err(ConfigError::Lifetime(format!(
                "refresh_grace_period must be 0 to {MAX_REFRESH_GRACE_PERIOD} seconds"
            )));
        }
        self.check_connections()?;
        let routes = crate::routes::Routes::new(&self.issuer, &self.mcp_path);
        check_routes(
            &self.gateway_routes,
            self.upstream.as_ref(),
            &self.mcp_path,
            &routes.reserved(),
            &self.scopes,
        )?;
        Ok(())
    }

    /// `max_connections` 1 to [`MAX_CONNECTIONS_LIMIT`], `header_read_timeout_ms` 100 ms to 10 minutes.
    fn check_connections(&self) -> Result<(), ConfigError> {
        let c = &self.connections;
        if !(1..=MAX_CONNECTIONS_LIMIT).contains(&c.max_connections) {
            return Err(ConfigError::Limit(format!(
                "max_connections must be 1 to {MAX_CONNECTIONS_LIMIT}"
            )));
        }
        let timeout = Duration::from_millis(100)..=Duration::from_secs(600);
        if !timeout.contains(&c.header_read_timeout) {
            return Err(ConfigError::Limit(
                "header_read_timeout_ms must be 100 to 600000 milliseconds".into(),
            ));
        }
        Ok(())
    }

    /// The authorization-server logic's configuration.
    pub fn authz_config(&self, issuer: &str, mcp_url: &str) -> AuthzConfig {
        let mut c = AuthzConfig::new(issuer, mcp_url);
        c.scopes = self.scopes.clone();
        c.default_scope = self.default_scope.clone();
        c.access_token_ttl = self.access_token_ttl;
        c.refresh_idle_ttl = self.refresh_idle_ttl;
        c.refresh_absolute_ttl = self.refresh_absolute_ttl;
        c.refresh_grace_period = self.refresh_grace_period;
        c.session_ttl = self.session_ttl;
        c.allowed_redirect_schemes
            .clone_from(&self.allowed_redirect_schemes);
        c.localhost_redirect_uris = self.localhost_redirect_uris;
        c.idp_display_names = (self.sign_in.providers.iter())
            .map(|p| (p.name.clone(), p.display_name.clone()))
            .collect();
        // Each gateway route is one more resource tokens may be issued for (RFC 8707), with its own scopes.
        let origin = self.issuer.origin().ascii_serialization();
        for route in &self.gateway_routes {
            let resource = format!("{origin}{}", route.path);
            if let Some(limits) = route.resource_scopes(&self.default_scope) {
                c.resource_scope_limits.insert(resource.clone(), limits);
            }
            c.resources.push(resource);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_grace_period_bounds() {
        let mut c = ServerConfig::new(parse_issuer("http://127.0.0.1:8080").unwrap());
        assert_eq!(c.refresh_grace_period, 30, "the default");
        assert_eq!(c.authz_config("i", "r").refresh_grace_period, 30);
        for ok in [0, 1, MAX_REFRESH_GRACE_PERIOD] {
            c.refresh_grace_period = ok;
            assert_eq!(c.check(), Ok(()), "{ok}");
            assert_eq!(c.authz_config("i", "r").refresh_grace_period, ok);
        }
        for bad in [-1, MAX_REFRESH_GRACE_PERIOD + 1] {
            c.refresh_grace_period = bad;
            assert!(
                matches!(c.check(), Err(ConfigError::Lifetime(m)) if m.contains("refresh_grace_period")),
                "{bad}"
            );
        }
    }

    #[test]
    fn connection_limits_bounds() {
        let mut c = ServerConfig::new(parse_issuer("http://127.0.0.1:8080").unwrap());
        assert_eq!(c.check(), Ok(()), "the defaults");
        c.connections.max_connections = 0;
        assert!(matches!(c.check(), Err(ConfigError::Limit(m)) if m.contains("max_connections")));
        c.connections.max_connections = 20;
        c.connections.header_read_timeout = Duration::from_millis(99);
        assert!(
            matches!(c.check(), Err(ConfigError::Limit(m)) if m.contains("header_read_timeout_ms"))
        );
        c.connections.header_read_timeout = Duration::from_secs(1);
        assert_eq!(c.check(), Ok(()));
    }

    #[test]
    fn password_hash_concurrency_bounds() {
        let mut c = ServerConfig::new(parse_issuer("http://127.0.0.1:8080").unwrap());
        assert!(
            c.password_hash_concurrency >= 2,
            "the default: the cores, at least 2"
        );
        for ok in [1, MAX_PASSWORD_HASH_CONCURRENCY] {
            c.password_hash_concurrency = ok;
            assert_eq!(c.check(), Ok(()), "{ok}");
        }
        for bad in [0, MAX_PASSWORD_HASH_CONCURRENCY + 1] {
            c.password_hash_concurrency = bad;
            assert!(
                matches!(c.check(), Err(ConfigError::Limit(m)) if m.contains("password_hash_concurrency")),
                "{bad}"
            );
        }
    }

    #[test]
    fn issuer_rules() {
        assert!(parse_issuer("http://127.0.0.1:8080").is_ok());
        assert!(parse_issuer("https://auth.example.com/tenant").is_ok());
        assert!(parse_issuer("http://auth.example.com").is_err());
        assert!(parse_issuer("https://a.com/?x=1").is_err());
        assert!(parse_issuer("https://a.com/t/").is_err());
        assert!(parse_issuer("https://a.com#f").is_err());
        assert!(parse_issuer("nonsense").is_err());
    }
}
