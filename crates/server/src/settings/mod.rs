//! Settings of `portcullis serve`, layered: the TOML file, then `PORTCULLIS_*` environment variables, then flags,
//! each overriding the one before. The binary's argument parser reads the environment variables together with
//! the flags into one [`Overrides`]; [`Settings::load`] merges it onto the file ([`FileSettings`]) in one place.
//! The gateway tables, the scope catalogue and the external resources are parsed in [`gateway`]; the identity
//! providers and the other federation keys in [`identity_providers`].
//!
//! Nothing here does network or storage I/O (only the file is read); [`crate::assembly`] binds, opens nothing
//! and builds the server from the result.

mod error;
pub mod gateway;
pub mod identity_providers;

use crate::config::ServerConfig;
use crate::gateway::config::{GatewayConfig, RouteConfig};
use crate::pages::{SignInOptions, SignInProvider};
use portcullis_authz::config::{default_scopes, LocalhostRedirects, ScopeInfo};
use portcullis_authz::database_url::redact_url;
use portcullis_authz::federation::ProviderSettings;
use portcullis_proto::{PrivateUseSchemes, Scope};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::SettingsError;
pub use gateway::{
    GatewaySettings, RouteSettings, ScopeSetting, UpstreamTokenHeader, UpstreamTokenMode,
    UpstreamTokenSettings,
};
pub use identity_providers::FederationSettings;

/// The default SQLite database, next to where the server runs.
pub const DEFAULT_DATABASE: &str = "sqlite://portcullis.db";
/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default bound of the graceful drain, milliseconds.
pub const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 30_000;

/// The TOML file. Unknown keys are an error.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub listen: Option<String>,
    pub database: Option<String>,
    pub issuer: Option<String>,
    pub mcp_path: Option<String>,
    pub access_token_ttl: Option<i64>,
    pub refresh_idle_ttl: Option<i64>,
    pub refresh_absolute_ttl: Option<i64>,
    /// Seconds a rotated refresh token may be presented again for the same successor; 0: strict rotation.
    pub refresh_grace_period: Option<i64>,
    pub session_ttl: Option<i64>,
    pub revocation_sync_ms: Option<u64>,
    pub register_per_ip_per_hour: Option<u32>,
    pub token_failures_per_ip: Option<u32>,
    pub password_hash_concurrency: Option<u32>,
    /// Seconds after which a client that never obtained a token is deleted (0: never).
    pub tokenless_client_ttl: Option<i64>,
    /// Seconds after which a client with no live grant, unused that long, is deleted (0: never).
    pub idle_client_ttl: Option<i64>,
    pub db_max_connections: Option<u32>,
    pub db_acquire_timeout_ms: Option<u64>,
    pub db_statement_timeout_ms: Option<u64>,
    pub log_format: Option<String>,
    pub drain_timeout_ms: Option<u64>,
    /// Most client connections open at once (default from the descriptor limit, at most 4096).
    pub max_connections: Option<u32>,
    /// Longest wait for a request's header section, and longest idle keep-alive (default 10000).
    pub header_read_timeout_ms: Option<u64>,
    /// Most gateway event streams open at once per user and client (default 8; 0: no limit).
    pub gateway_streams_per_caller: Option<u32>,
    pub gateway: Option<GatewaySettings>,
    /// `[[scopes]]`: the scope catalogue (replaces the built-in one when present).
    pub scopes: Option<Vec<ScopeSetting>>,
    /// `resources = [..]`: external protected resources that verify tokens themselves (`--resource`).
    pub resources: Option<Vec<String>>,
    /// Whether the sign-in page offers the password form (default true).
    pub password_login: Option<bool>,
    /// Link a first federated sign-in to the local user with the same verified email (default false).
    pub link_by_verified_email: Option<bool>,
    /// The upstream token vault's key file.
    pub vault_key_file: Option<PathBuf>,
    /// Private-use redirect schemes accepted besides reverse-domain ones; absent: the MCP clients' ones.
    pub allowed_redirect_schemes: Option<Vec<String>>,
    /// `http://localhost` redirect URIs: `allow`, `warn` (default) or `refuse` (RFC 8252 §8.3).
    pub localhost_redirect_uris: Option<String>,
    /// `[[identity_providers]]`: sign-in through upstream identity providers (docs/federation.md); each table
    /// as written, checked into a `ProviderConfig` at load ([`identity_providers::identity_providers`]).
    #[serde(default)]
    pub identity_providers: Vec<ProviderSettings>,
}

impl FileSettings {
    /// Reads the file if a path is given; no path: every value absent.
    pub fn load(path: Option<&Path>) -> Result<Self, SettingsError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|e| SettingsError::ReadFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| SettingsError::InvalidFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }
}

impl std::fmt::Debug for FileSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSettings")
            .field("listen", &self.listen)
            .field("database", &self.database.as_deref().map(redact_url))
            .field("issuer", &self.issuer)
            .field("gateway", &self.gateway)
            .field("identity_providers", &self.identity_providers)
            .finish_non_exhaustive()
    }
}

/// The database settings given by flags or environment variables (`--database`, `--db-*`).
#[derive(Default, Clone, PartialEq, Eq)]
pub struct DatabaseOverrides {
    pub url: Option<String>,
    pub max_connections: Option<u32>,
    pub acquire_timeout_ms: Option<u64>,
    pub statement_timeout_ms: Option<u64>,
}

/// The top layer: flags, and the `PORTCULLIS_*` environment variables the argument parser reads with them.
/// `None` (or empty, or `false`) leaves the value to the file, then to the default.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct Overrides {
    /// The TOML file (`--config`).
    pub config: Option<PathBuf>,
    pub database: DatabaseOverrides,
    pub listen: Option<String>,
    pub issuer: Option<String>,
    pub mcp_path: Option<String>,
    pub access_token_ttl: Option<i64>,
    pub refresh_idle_ttl: Option<i64>,
    pub refresh_absolute_ttl: Option<i64>,
    pub refresh_grace_period: Option<i64>,
    pub session_ttl: Option<i64>,
    pub revocation_sync_ms: Option<u64>,
    pub register_per_ip_per_hour: Option<u32>,
    pub token_failures_per_ip: Option<u32>,
    pub password_hash_concurrency: Option<u32>,
    pub tokenless_client_ttl: Option<i64>,
    pub idle_client_ttl: Option<i64>,
    pub log_format: Option<String>,
    pub drain_timeout_ms: Option<u64>,
    pub max_connections: Option<u32>,
    pub header_read_timeout_ms: Option<u64>,
    pub gateway_streams_per_caller: Option<u32>,
    pub upstream: Option<String>,
    pub upstream_timeout_ms: Option<u64>,
    pub upstream_stream_idle_timeout_ms: Option<u64>,
    /// `--tool-scope NAME=SCOPE`, added to the file's `[gateway.tool_scopes]`.
    pub tool_scopes: Vec<String>,
    /// Turns the identity assertion on for every gateway.
    pub upstream_identity_jwt: bool,
    /// Turns `tools/list` filtering on for every gateway.
    pub hide_unauthorized_tools: bool,
    /// `--resource`: replaces the file's `resources` when given.
    pub resources: Vec<String>,
    /// `--cimd-allow-host` (testing only).
    pub cimd_allow_hosts: Vec<String>,
    /// `--password-login` / `PORTCULLIS_PASSWORD_LOGIN`.
    pub password_login: Option<bool>,
    /// `--vault-key-file` / `PORTCULLIS_VAULT_KEY_FILE`.
    pub vault_key_file: Option<PathBuf>,
    /// `--allowed-redirect-schemes` / `PORTCULLIS_ALLOWED_REDIRECT_SCHEMES` (comma-separated): replaces the
    /// file's list; empty entries are dropped, so `""` allows none.
    pub allowed_redirect_schemes: Option<Vec<String>>,
    /// `--localhost-redirect-uris` / `PORTCULLIS_LOCALHOST_REDIRECT_URIS`.
    pub localhost_redirect_uris: Option<String>,
}

impl std::fmt::Debug for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overrides")
            .field("config", &self.config)
            .field("database", &self.database)
            .field("listen", &self.listen)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for DatabaseOverrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseOverrides")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

/// Where the database is and how to use it. `None`: the storage adapter's default.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// The database URL (may carry a password: [`std::fmt::Debug`] redacts it).
    pub url: String,
    pub max_connections: Option<u32>,
    pub acquire_timeout_ms: Option<u64>,
    pub statement_timeout_ms: Option<u64>,
}

impl DatabaseSettings {
    /// Flags/environment over the file over [`DEFAULT_DATABASE`]. The admin commands use this alone.
    pub fn layered(flags: &DatabaseOverrides, file: &FileSettings) -> Self {
        Self {
            url: (flags.url.clone().or_else(|| file.database.clone()))
                .unwrap_or_else(|| DEFAULT_DATABASE.to_owned()),
            max_connections: flags.max_connections.or(file.db_max_connections),
            acquire_timeout_ms: flags.acquire_timeout_ms.or(file.db_acquire_timeout_ms),
            statement_timeout_ms: flags.statement_timeout_ms.or(file.db_statement_timeout_ms),
        }
    }

    /// The URL with any password replaced, for messages and logs.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &self.redacted_url())
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout_ms", &self.acquire_timeout_ms)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .finish()
    }
}

/// The log format (`log_format`, `--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    fn parse(text: &str) -> Result<Self, SettingsError> {
        match text {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(SettingsError::LogFormat(other.to_owned())),
        }
    }
}

/// The lifetimes and limits of [`ServerConfig`] a layer may set; `None` keeps [`ServerConfig::new`]'s default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tunables {
    pub mcp_path: Option<String>,
    pub access_token_ttl: Option<i64>,
    pub refresh_idle_ttl: Option<i64>,
    pub refresh_absolute_ttl: Option<i64>,
    pub refresh_grace_period: Option<i64>,
    pub session_ttl: Option<i64>,
    pub revocation_sync_ms: Option<u64>,
    pub register_per_ip_per_hour: Option<u32>,
    pub token_failures_per_ip: Option<u32>,
    pub password_hash_concurrency: Option<u32>,
    pub tokenless_client_ttl: Option<i64>,
    pub idle_client_ttl: Option<i64>,
    pub max_connections: Option<u32>,
    pub header_read_timeout_ms: Option<u64>,
    pub gateway_streams_per_caller: Option<u32>,
}

/// Every setting of `serve`, layered and parsed. Only the issuer's default waits for the bound address.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on (port 0: any free port).
    pub listen: String,
    /// The issuer as written; `None`: `http://<bound address>`.
    pub issuer: Option<String>,
    pub database: DatabaseSettings,
    pub log_format: LogFormat,
    /// Bound of the graceful drain after a shutdown signal.
    pub drain_timeout: Duration,
    pub tunables: Tunables,
    /// Gateway mode: the MCP endpoint's upstream.
    pub upstream: Option<GatewayConfig>,
    /// `[[gateway.routes]]`.
    pub gateway_routes: Vec<RouteConfig>,
    /// `[[scopes]]`: the catalogue and the default scope; `None`: the built-in ones.
    pub scopes: Option<(Vec<ScopeInfo>, Scope)>,
    /// External protected resources (RFC 8707 audiences of servers that verify tokens themselves).
    pub external_resources: Vec<String>,
    /// Hosts whose Client ID Metadata Documents skip the SSRF guard (testing only).
    pub cimd_allow_hosts: Vec<String>,
    /// `password_login`, `link_by_verified_email`, `vault_key_file` and `[[identity_providers]]`.
    pub federation: FederationSettings,
    /// `[gateway] upstream_token_*`: the caller's upstream token for the MCP endpoint's upstream.
    pub gateway_upstream_token: Option<UpstreamTokenSettings>,
    /// `[[gateway.routes]] upstream_token_*`, by route path.
    pub route_upstream_tokens: BTreeMap<String, UpstreamTokenSettings>,
    /// `allowed_redirect_schemes`: private-use redirect schemes accepted besides reverse-domain ones.
    pub allowed_redirect_schemes: PrivateUseSchemes,
    /// `localhost_redirect_uris`: what registration does with `http://localhost` redirect URIs.
    pub localhost_redirect_uris: LocalhostRedirects,
}

impl Settings {
    /// Reads the file named by `flags.config` (if any) and lays `flags` over it.
    pub fn load(flags: Overrides) -> Result<Self, SettingsError> {
        let file = FileSettings::load(flags.config.as_deref())?;
        Self::layered(flags, file)
    }

    /// The one merge: each value from `flags`, else from `file`, else its default. Client secrets of identity
    /// providers may come from the process environment (`PORTCULLIS_IDP_<NAME>_CLIENT_SECRET`).
    pub fn layered(flags: Overrides, file: FileSettings) -> Result<Self, SettingsError> {
        Self::layered_with_env(flags, file, &|name| std::env::var(name).ok())
    }

    /// [`Settings::layered`] with `env` looking environment variables up.
    pub fn layered_with_env(
        flags: Overrides,
        mut file: FileSettings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let log_format = LogFormat::parse(
            flags
                .log_format
                .as_deref()
                .or(file.log_format.as_deref())
                .unwrap_or("text"),
        )?;
        let scopes = file
            .scopes
            .as_deref()
            .map(gateway::scope_catalogue)
            .transpose()?;
        let federation = federation(&flags, &mut file, scopes.as_ref(), env)?;
        let gw = file.gateway.as_ref();
        let mut upstream = gateway::gateway_config(
            flags.upstream,
            flags.upstream_timeout_ms,
            flags.upstream_stream_idle_timeout_ms,
            &flags.tool_scopes,
            gw,
        )?;
        if upstream.is_some() {
            // Never silently ignored: per-tool scopes at a gateway come from [gateway.tool_scopes] only.
            let with_tools = file.scopes.iter().flatten().find(|e| !e.tools.is_empty());
            if let Some(e) = with_tools {
                return Err(SettingsError::CatalogueToolsInGateway(e.name.clone()));
            }
        }
        let mut gateway_routes = gateway::gateway_routes(gw)?;
        gateway::gateway_options(
            upstream.as_mut(),
            gateway_routes.iter_mut().map(|r| &mut r.gateway).collect(),
            flags.upstream_identity_jwt,
            flags.hide_unauthorized_tools,
            gw,
        )?;
        let external_resources =
            gateway::external_resources(&flags.resources, file.resources.as_deref())?;
        let allowed_redirect_schemes = allowed_redirect_schemes(
            flags.allowed_redirect_schemes.as_deref(),
            file.allowed_redirect_schemes.as_deref(),
        )?;
        let localhost_redirect_uris = (flags.localhost_redirect_uris.as_deref())
            .or(file.localhost_redirect_uris.as_deref())
            .map_or(Ok(LocalhostRedirects::default()), str::parse)
            .map_err(SettingsError::LocalhostRedirects)?;
        let names: Vec<&str> = federation
            .providers
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        let (gateway_upstream_token, route_upstream_tokens) =
            gateway::upstream_tokens(gw, upstream.is_some(), &names)?;
        gateway::attach_upstream_tokens(
            upstream.as_mut(),
            &mut gateway_routes,
            gateway_upstream_token.as_ref(),
            &route_upstream_tokens,
        );
        Ok(Self {
            database: DatabaseSettings::layered(&flags.database, &file),
            listen: (flags.listen.or(file.listen)).unwrap_or_else(|| DEFAULT_LISTEN.to_owned()),
            issuer: flags.issuer.or(file.issuer),
            log_format,
            drain_timeout: Duration::from_millis(
                (flags.drain_timeout_ms.or(file.drain_timeout_ms))
                    .unwrap_or(DEFAULT_DRAIN_TIMEOUT_MS),
            ),
            tunables: Tunables {
                mcp_path: flags.mcp_path.or(file.mcp_path),
                access_token_ttl: flags.access_token_ttl.or(file.access_token_ttl),
                refresh_idle_ttl: flags.refresh_idle_ttl.or(file.refresh_idle_ttl),
                refresh_absolute_ttl: flags.refresh_absolute_ttl.or(file.refresh_absolute_ttl),
                refresh_grace_period: flags.refresh_grace_period.or(file.refresh_grace_period),
                session_ttl: flags.session_ttl.or(file.session_ttl),
                revocation_sync_ms: flags.revocation_sync_ms.or(file.revocation_sync_ms),
                register_per_ip_per_hour: flags
                    .register_per_ip_per_hour
                    .or(file.register_per_ip_per_hour),
                token_failures_per_ip: flags.token_failures_per_ip.or(file.token_failures_per_ip),
                password_hash_concurrency: flags
                    .password_hash_concurrency
                    .or(file.password_hash_concurrency),
                tokenless_client_ttl: flags.tokenless_client_ttl.or(file.tokenless_client_ttl),
                idle_client_ttl: flags.idle_client_ttl.or(file.idle_client_ttl),
                max_connections: flags.max_connections.or(file.max_connections),
                header_read_timeout_ms: flags
                    .header_read_timeout_ms
                    .or(file.header_read_timeout_ms),
                gateway_streams_per_caller: flags
                    .gateway_streams_per_caller
                    .or(file.gateway_streams_per_caller),
            },
            upstream,
            gateway_routes,
            scopes,
            external_resources,
            cimd_allow_hosts: flags.cimd_allow_hosts,
            federation,
            gateway_upstream_token,
            route_upstream_tokens,
            allowed_redirect_schemes,
            localhost_redirect_uris,
        })
    }

    /// The server configuration for `issuer` (unchecked: [`ServerConfig::check`] runs next).
    pub fn server_config(&self, issuer: url::Url) -> ServerConfig {
        let mut config = ServerConfig::new(issuer);
        let t = &self.tunables;
        if let Some(p) = &t.mcp_path {
            config.mcp_path.clone_from(p);
        }
        let set = |slot: &mut i64, v: Option<i64>| *slot = v.unwrap_or(*slot);
        set(&mut config.access_token_ttl, t.access_token_ttl);
        set(&mut config.refresh_idle_ttl, t.refresh_idle_ttl);
        set(&mut config.refresh_absolute_ttl, t.refresh_absolute_ttl);
        set(&mut config.refresh_grace_period, t.refresh_grace_period);
        set(&mut config.session_ttl, t.session_ttl);
        config.revocation_sync_ms = t.revocation_sync_ms.unwrap_or(config.revocation_sync_ms);
        config.register_per_ip_per_hour = t
            .register_per_ip_per_hour
            .unwrap_or(config.register_per_ip_per_hour);
        config.token_failures_per_ip = t
            .token_failures_per_ip
            .unwrap_or(config.token_failures_per_ip);
        config.password_hash_concurrency = t
            .password_hash_concurrency
            .unwrap_or(config.password_hash_concurrency);
        let reap = &mut config.client_reaping;
        set(&mut reap.tokenless_after, t.tokenless_client_ttl);
        set(&mut reap.idle_after, t.idle_client_ttl);
        if let Some(n) = t.max_connections {
            config.connections.max_connections = n;
        }
        if let Some(ms) = t.header_read_timeout_ms {
            config.connections.header_read_timeout = Duration::from_millis(ms);
        }
        config.upstream.clone_from(&self.upstream);
        config.gateway_routes.clone_from(&self.gateway_routes);
        if let Some(n) = t.gateway_streams_per_caller {
            let routes = config.gateway_routes.iter_mut().map(|r| &mut r.gateway);
            for g in config.upstream.iter_mut().chain(routes) {
                g.streams_per_caller = n;
            }
        }
        config.cimd_allow_hosts.clone_from(&self.cimd_allow_hosts);
        if let Some((catalogue, default_scope)) = &self.scopes {
            config.scopes.clone_from(catalogue);
            config.default_scope = default_scope.clone();
        }
        config.sign_in = self.sign_in();
        config
            .allowed_redirect_schemes
            .clone_from(&self.allowed_redirect_schemes);
        config.localhost_redirect_uris = self.localhost_redirect_uris;
        config
    }

    /// What the sign-in page offers: the password form or not, and one button per identity provider.
    pub fn sign_in(&self) -> SignInOptions {
        SignInOptions {
            password_login: self.federation.password_login,
            providers: (self.federation.providers.iter())
                .map(|p| SignInProvider {
                    name: p.name.to_string(),
                    display_name: p.display_name.clone(),
                    preset: p.preset,
                })
                .collect(),
        }
    }
}

/// `allowed_redirect_schemes`: flags/environment (comma-separated, entries trimmed, empty ones dropped) over the
/// file over the default ([`PrivateUseSchemes::mcp_clients`]). An invalid or web scheme is refused, naming the
/// key.
fn allowed_redirect_schemes(
    flags: Option<&[String]>,
    file: Option<&[String]>,
) -> Result<PrivateUseSchemes, SettingsError> {
    let listed: Vec<&str> = match (flags, file) {
        (Some(list), _) => list
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect(),
        (None, Some(list)) => list.iter().map(String::as_str).collect(),
        (None, None) => return Ok(PrivateUseSchemes::mcp_clients()),
    };
    PrivateUseSchemes::parse(listed).map_err(SettingsError::RedirectScheme)
}

/// The federation keys: flags/environment over the file over the defaults; `scope_from_groups` checked against
/// the catalogue (`[[scopes]]`, else the built-in one).
fn federation(
    flags: &Overrides,
    file: &mut FileSettings,
    scopes: Option<&(Vec<ScopeInfo>, Scope)>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<FederationSettings, SettingsError> {
    let catalogue: Vec<String> = match scopes {
        Some((catalogue, _)) => catalogue.iter().map(|s| s.name.clone()).collect(),
        None => default_scopes().into_iter().map(|s| s.name).collect(),
    };
    let providers = identity_providers::identity_providers(
        std::mem::take(&mut file.identity_providers),
        &catalogue,
        env,
    )?;
    identity_providers::federation(
        flags.password_login.or(file.password_login).unwrap_or(true),
        file.link_by_verified_email.unwrap_or(false),
        (flags.vault_key_file.clone()).or_else(|| file.vault_key_file.clone()),
        providers,
    )
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
        assert!(toml::from_str::<FileSettings>("[gateway]\nupstrem = \"x\"").is_err());
    }

    #[test]
    fn flags_over_file_over_defaults() {
        let file: FileSettings = toml::from_str(
            "listen = \"127.0.0.1:1\"\naccess_token_ttl = 60\nsession_ttl = 99\ndatabase = \"sqlite://f.db\"\n\
             db_max_connections = 2\nlog_format = \"json\"",
        )
        .unwrap();
        let flags = Overrides {
            access_token_ttl: Some(120),
            database: DatabaseOverrides {
                max_connections: Some(1),
                ..DatabaseOverrides::default()
            },
            ..Overrides::default()
        };
        let s = Settings::layered(flags, file).unwrap();
        assert_eq!(s.listen, "127.0.0.1:1");
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.database.url, "sqlite://f.db");
        assert_eq!(s.database.max_connections, Some(1));
        assert_eq!(
            s.drain_timeout,
            Duration::from_millis(DEFAULT_DRAIN_TIMEOUT_MS)
        );
        let c = s.server_config(url::Url::parse("http://127.0.0.1:1").unwrap());
        assert_eq!(c.access_token_ttl, 120, "the flag wins");
        assert_eq!(c.session_ttl, 99, "the file over the default");
        assert_eq!(c.refresh_idle_ttl, 30 * 24 * 3600, "the default");
        let d = Settings::layered(Overrides::default(), FileSettings::default()).unwrap();
        assert_eq!(d.listen, DEFAULT_LISTEN);
        assert_eq!(d.database.url, DEFAULT_DATABASE);
        assert_eq!(d.log_format, LogFormat::Text);
        let bad = Overrides {
            log_format: Some("xml".into()),
            ..Overrides::default()
        };
        assert_eq!(
            Settings::layered(bad, FileSettings::default()).unwrap_err(),
            SettingsError::LogFormat("xml".into())
        );
    }

    /// `[[scopes]] tools` describes the built-in MCP server: refused at start in gateway mode rather than ignored;
    /// accepted without an upstream, and a scope without tools is fine either way.
    #[test]
    fn catalogue_tools_are_refused_in_gateway_mode() {
        let scopes = "[[scopes]]\nname = \"files:read\"\ndescription = \"Read\"\ndefault = true\n\
                      [[scopes]]\nname = \"files:admin\"\ndescription = \"Admin\"\ntools = [\"drop\"]\n";
        let load = |text: &str, upstream: Option<&str>| {
            let file: FileSettings = toml::from_str(text).unwrap();
            let flags = Overrides {
                upstream: upstream.map(str::to_owned),
                ..Overrides::default()
            };
            Settings::layered(flags, file)
        };
        assert_eq!(
            load(scopes, Some("http://127.0.0.1:3000/mcp")).unwrap_err(),
            SettingsError::CatalogueToolsInGateway("files:admin".into())
        );
        let in_file = format!("{scopes}[gateway]\nupstream = \"http://127.0.0.1:3000/mcp\"\n");
        assert!(load(&in_file, None).is_err());
        assert!(load(scopes, None).is_ok(), "the built-in server uses them");
        let no_tools =
            "[[scopes]]\nname = \"files:read\"\ndescription = \"Read\"\ndefault = true\n";
        assert!(load(no_tools, Some("http://127.0.0.1:3000/mcp")).is_ok());
    }

    /// `refresh_grace_period`: TOML key, then flag / `PORTCULLIS_REFRESH_GRACE_PERIOD` (one `Overrides` field),
    /// then the default 30; 0 (strict rotation) is a value, not "unset".
    #[test]
    fn refresh_grace_period_layers() {
        let issuer = url::Url::parse("http://127.0.0.1:1").unwrap();
        let config = |flag: Option<i64>, file: &str| {
            let flags = Overrides {
                refresh_grace_period: flag,
                ..Overrides::default()
            };
            let file: FileSettings = toml::from_str(file).unwrap();
            let s = Settings::layered(flags, file).unwrap();
            s.server_config(issuer.clone()).refresh_grace_period
        };
        assert_eq!(config(None, ""), 30);
        assert_eq!(config(None, "refresh_grace_period = 5"), 5);
        assert_eq!(config(Some(0), "refresh_grace_period = 5"), 0);
        assert_eq!(config(Some(12), ""), 12);
    }

    #[test]
    fn localhost_redirect_uris_layers_and_checks() {
        let load = |flag: Option<&str>, file: &str| {
            let file: FileSettings = toml::from_str(file).unwrap();
            let flags = Overrides {
                localhost_redirect_uris: flag.map(str::to_owned),
                ..Overrides::default()
            };
            Settings::layered(flags, file).map(|s| s.localhost_redirect_uris)
        };
        assert_eq!(load(None, ""), Ok(LocalhostRedirects::Warn));
        let refuse = "localhost_redirect_uris = \"refuse\"";
        assert_eq!(load(None, refuse), Ok(LocalhostRedirects::Refuse));
        assert_eq!(load(Some("allow"), refuse), Ok(LocalhostRedirects::Allow));
        assert!(matches!(
            load(Some("deny"), ""),
            Err(SettingsError::LocalhostRedirects(m)) if m.contains("\"deny\"")
        ));
    }

    #[test]
    fn allowed_redirect_schemes_layers_and_checks() {
        let load = |flags: Option<Vec<&str>>, file: &str| {
            let file: FileSettings = toml::from_str(file).unwrap();
            let flags = Overrides {
                allowed_redirect_schemes: flags.map(|v| v.into_iter().map(str::to_owned).collect()),
                ..Overrides::default()
            };
            Settings::layered(flags, file).map(|s| s.allowed_redirect_schemes)
        };
        assert_eq!(load(None, "").unwrap(), PrivateUseSchemes::mcp_clients());
        assert_eq!(
            load(None, "allowed_redirect_schemes = []").unwrap(),
            PrivateUseSchemes::none()
        );
        let file = "allowed_redirect_schemes = [\"cursor\", \"my-app\"]";
        assert_eq!(
            load(None, file).unwrap(),
            PrivateUseSchemes::parse(["cursor", "my-app"]).unwrap()
        );
        assert_eq!(
            load(Some(vec!["zed", " other "]), file).unwrap(),
            PrivateUseSchemes::parse(["zed", "other"]).unwrap()
        );
        assert_eq!(
            load(Some(vec![""]), file).unwrap(),
            PrivateUseSchemes::none()
        );
        for (flags, file, bad) in [
            (None, "allowed_redirect_schemes = [\"https\"]", "\"https\""),
            (
                None,
                "allowed_redirect_schemes = [\"javascript\"]",
                "\"javascript\"",
            ),
            (Some(vec!["cursor", "data"]), "", "\"data\""),
            (Some(vec!["file"]), "", "\"file\""),
            (
                None,
                "allowed_redirect_schemes = [\"cursor://\"]",
                "\"cursor://\"",
            ),
            (
                None,
                "allowed_redirect_schemes = [\"Cursor\"]",
                "\"Cursor\"",
            ),
        ] {
            let e = load(flags, file).unwrap_err().to_string();
            assert!(e.starts_with("allowed_redirect_schemes: "), "{e}");
            assert!(e.contains(bad), "{e}");
        }
        assert!(toml::from_str::<FileSettings>("allowed_redirect_schemes = \"cursor\"").is_err());
    }

    #[test]
    fn client_reaping_keys_layer_and_zero_turns_a_rule_off() {
        let issuer = || url::Url::parse("http://127.0.0.1:1").unwrap();
        let d = Settings::layered(Overrides::default(), FileSettings::default()).unwrap();
        assert_eq!(
            d.server_config(issuer()).client_reaping,
            portcullis_authz::client_reaping::ReapPolicy::default()
        );
        let file: FileSettings =
            toml::from_str("tokenless_client_ttl = 0\nidle_client_ttl = 86400").unwrap();
        let flags = Overrides {
            idle_client_ttl: Some(60),
            ..Overrides::default()
        };
        let c = Settings::layered(flags, file)
            .unwrap()
            .server_config(issuer());
        assert_eq!(
            (
                c.client_reaping.tokenless_after,
                c.client_reaping.idle_after
            ),
            (0, 60),
            "the file's 0 (off), the flag over the file"
        );
        assert!(c.check().is_ok());
        let negative = Overrides {
            tokenless_client_ttl: Some(-1),
            ..Overrides::default()
        };
        let c = Settings::layered(negative, FileSettings::default())
            .unwrap()
            .server_config(issuer());
        assert!(c.check().is_err(), "a negative lifetime is refused");
    }

    /// `max_connections`, `header_read_timeout_ms`, `gateway_streams_per_caller`: flag over file over default;
    /// the stream cap reaches the MCP endpoint's gateway and every route.
    #[test]
    fn connection_and_stream_limits_layer() {
        let issuer = || url::Url::parse("http://127.0.0.1:1").unwrap();
        let d = Settings::layered(Overrides::default(), FileSettings::default())
            .unwrap()
            .server_config(issuer());
        assert_eq!(
            d.connections,
            crate::connections::ConnectionLimits::default()
        );
        let file: FileSettings = toml::from_str(
            "max_connections = 50\nheader_read_timeout_ms = 3000\ngateway_streams_per_caller = 2\n\
             [gateway]\nupstream = \"http://127.0.0.1:9/mcp\"\n\
             [[gateway.routes]]\npath = \"/r/mcp\"\nupstream = \"http://127.0.0.1:9/r\"",
        )
        .unwrap();
        let flags = Overrides {
            max_connections: Some(20),
            ..Overrides::default()
        };
        let c = Settings::layered(flags, file)
            .unwrap()
            .server_config(issuer());
        assert_eq!(c.connections.max_connections, 20, "the flag wins");
        assert_eq!(
            c.connections.header_read_timeout,
            Duration::from_millis(3000)
        );
        assert_eq!(c.upstream.as_ref().unwrap().streams_per_caller, 2);
        assert_eq!(c.gateway_routes[0].gateway.streams_per_caller, 2);
    }

    #[test]
    fn database_passwords_are_redacted_when_printed() {
        let flags = DatabaseOverrides {
            url: Some("postgres://u:hunter2@db/p?password=hunter3".into()),
            ..DatabaseOverrides::default()
        };
        let db = DatabaseSettings::layered(&flags, &FileSettings::default());
        let printed = format!("{db:?} {flags:?}");
        assert!(!printed.contains("hunter"), "{printed}");
        assert!(printed.contains("***"), "{printed}");
    }
}
