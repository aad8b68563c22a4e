//! [`SettingsError`]: why the settings of `serve` were refused.

use crate::gateway::config::GatewayConfigError;

/// Why the settings were refused. The messages are the binary's error output (tests look for them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {reason}")]
    ReadFile { path: String, reason: String },
    /// The file is not valid TOML for [`super::FileSettings`] (unknown keys included).
    #[error("config file {path} is invalid: {reason}")]
    InvalidFile { path: String, reason: String },
    /// `log_format` is neither `text` nor `json`.
    #[error("log format {0:?} is not one of text, json")]
    LogFormat(String),
    /// An `allowed_redirect_schemes` entry is not a private-use scheme.
    #[error("allowed_redirect_schemes: {0}")]
    RedirectScheme(portcullis_proto::redirect_scheme::SchemeError),
    /// `localhost_redirect_uris` is not allow, warn or refuse.
    #[error("localhost_redirect_uris: {0}")]
    LocalhostRedirects(String),
    /// An external resource is not an absolute URL.
    #[error("resource {0:?} is not an absolute URL")]
    ResourceNotUrl(String),
    /// An external resource is neither https nor http on loopback.
    #[error("resource {0:?} must be an https URL (http only on a loopback host)")]
    ResourceScheme(String),
    /// An external resource has a fragment or user info (RFC 8707 §2).
    #[error("resource {0:?} must not have a fragment or user info (RFC 8707 §2)")]
    ResourceParts(String),
    /// `[[scopes]]` is present but empty.
    #[error("[[scopes]] must list at least one scope")]
    NoScopes,
    /// A scope name is not one RFC 6749 §3.3 scope token.
    #[error("scope name {0:?} is not a valid scope token")]
    ScopeName(String),
    /// `offline_access` is built in.
    #[error("offline_access is built in and cannot be configured in [[scopes]]")]
    OfflineAccess,
    /// A scope is listed twice.
    #[error("scope {0:?} is listed twice in [[scopes]]")]
    DuplicateScope(String),
    /// A scope's description is empty or not one line.
    #[error("scope {0:?} needs a one-line description")]
    ScopeDescription(String),
    /// The default scopes do not form a valid scope.
    #[error("invalid default scope")]
    DefaultScope,
    /// No `[[scopes]]` entry is a default.
    #[error("mark at least one [[scopes]] entry with default = true")]
    NoDefaultScope,
    /// A `[[gateway.routes]]` entry lists an invalid scope token.
    #[error("gateway route {0}: a scope is not a valid scope token")]
    RouteScope(String),
    /// A `[[gateway.routes]]` entry was refused.
    #[error("gateway route {path}")]
    Route {
        path: String,
        #[source]
        source: GatewayConfigError,
    },
    /// A gateway setting was refused.
    #[error(transparent)]
    Gateway(#[from] GatewayConfigError),
    /// A gateway flag was given without gateway mode.
    #[error("--tool-scope, --upstream-timeout-ms and --upstream-stream-idle-timeout-ms need --upstream (gateway mode)")]
    GatewayFlagsWithoutUpstream,
    /// `[[scopes]] tools` in gateway mode, where the built-in MCP server they describe does not run.
    #[error("[[scopes]] {0}: `tools` names tools of the built-in MCP server, which does not run in gateway mode (--upstream); give the upstream's tools their scope in [gateway.tool_scopes] (or --tool-scope NAME=SCOPE) instead")]
    CatalogueToolsInGateway(String),
    /// A gateway feature flag was given without any gateway.
    #[error(
        "--upstream-identity-jwt and --hide-unauthorized-tools need --upstream (gateway mode)"
    )]
    GatewayFeaturesWithoutUpstream,
    /// An `[[identity_providers]]` table was refused (`portcullis_authz::federation::ProviderSettings::into_config`);
    /// `key` names it, e.g. `identity_providers[corp].issuer` (`identity_providers.name` for a bad name).
    #[error("{key}: {reason}")]
    IdpConfig { key: String, reason: String },
    /// Two `[[identity_providers]]` tables have the same name.
    #[error("[[identity_providers]] name {0:?} is used twice")]
    DuplicateIdp(String),
    /// More than one source of the client secret (or one with `private_key_jwt`, which uses none).
    #[error("identity provider {provider}: {}; found {found}", if *private_key_jwt { "token_endpoint_auth_method = \"private_key_jwt\" uses no client secret".to_owned() } else { format!("give exactly one of client_secret, client_secret_file and {env}") })]
    IdpSecretSources {
        provider: String,
        found: String,
        env: String,
        private_key_jwt: bool,
    },
    /// `client_secret_file` could not be read.
    #[error("identity provider {provider}: cannot read client_secret_file {path}: {reason}")]
    IdpSecretFile {
        provider: String,
        path: String,
        reason: String,
    },
    /// `scope_from_groups` grants a scope that is not in the catalogue.
    #[error("identity provider {provider}: scope_from_groups {group:?} grants {scope:?}, which is not in the scope catalogue")]
    IdpGroupScope {
        provider: String,
        group: String,
        scope: String,
    },
    /// `password_login = false` without any identity provider.
    #[error("password_login = false and no [[identity_providers]]: nobody could sign in")]
    NobodyCanSignIn,
    /// `upstream_token_from` names no configured provider.
    #[error("{table}: upstream_token_from = {name:?} is not the name of an [[identity_providers]] entry")]
    UpstreamTokenProvider { table: String, name: String },
    /// `upstream_token_header` is not a header name Portcullis may set.
    #[error("{table}: upstream_token_header {value:?} is not a header name Portcullis may set")]
    UpstreamTokenHeader { table: String, value: String },
    /// `upstream_token_mode = "exchange"` without `upstream_audience`.
    #[error("{table}: upstream_token_mode = \"exchange\" needs upstream_audience")]
    UpstreamAudienceMissing { table: String },
    /// An `upstream_token_*` key without the keys it depends on.
    #[error("{table}: {key} needs {needs}")]
    UpstreamTokenKey {
        table: String,
        key: &'static str,
        needs: &'static str,
    },
}
