//! The structured parts of the settings: the `[gateway]` table and its `[[gateway.routes]]` (docs/gateway.md),
//! the `[[scopes]]` catalogue, and the external resources (RFC 8707 audiences), each parsed into the server's
//! typed configuration; and the `upstream_token_*` keys of the gateway tables (docs/federation.md, "The gateway
//! and upstream tokens"), parsed into [`UpstreamTokenSettings`].

use super::error::SettingsError;
use crate::gateway::config::{
    parse_upstream, GatewayConfig, GatewayConfigError, RouteConfig, UpstreamTokenConfig,
};
use portcullis_authz::config::{ScopeInfo, OFFLINE_ACCESS};
use portcullis_proto::Scope;
use serde::Deserialize;
use std::collections::BTreeMap;

/// One `[[scopes]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeSetting {
    /// The scope token (RFC 6749 §3.3 syntax).
    pub name: String,
    /// The sentence the consent page shows.
    pub description: String,
    /// Tools of the built-in MCP server that need this scope.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Granted when a request names no known scope (at least one entry must be a default).
    #[serde(default)]
    pub default: bool,
}

/// The `[gateway]` table: gateway mode (docs/gateway.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    pub upstream: Option<String>,
    pub timeout_ms: Option<u64>,
    /// Longest silence of an event stream answering a POST (0: none; default 300000).
    pub stream_idle_timeout_ms: Option<u64>,
    pub max_response_bytes: Option<usize>,
    /// `[gateway.tool_scopes]`: tool name = "scope".
    #[serde(default)]
    pub tool_scopes: BTreeMap<String, String>,
    /// Send the upstream a signed identity assertion (`X-Portcullis-Identity`).
    pub identity_jwt: Option<bool>,
    /// Remove from `tools/list` answers the tools whose scope the token lacks.
    pub hide_unauthorized_tools: Option<bool>,
    /// `[[gateway.routes]]`: more upstreams, each on its own path and its own protected resource.
    #[serde(default)]
    pub routes: Vec<RouteSettings>,
    /// For the MCP endpoint's upstream only (routes do not inherit it): the identity provider whose token for the caller is sent upstream (docs/federation.md).
    pub upstream_token_from: Option<String>,
    /// The header carrying it, value without a scheme; absent: `Authorization: Bearer`.
    pub upstream_token_header: Option<String>,
    /// `stored` (default): the token from the vault; `exchange`: an RFC 8693 token exchange at the provider.
    pub upstream_token_mode: Option<UpstreamTokenModeSetting>,
    /// The RFC 8693 `audience` asked for in `exchange` mode.
    pub upstream_audience: Option<String>,
}

/// One `[[gateway.routes]]` entry (docs/gateway.md, "Several upstreams").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSettings {
    /// The path on the issuer's origin, e.g. `/github/mcp`.
    pub path: String,
    /// The upstream MCP endpoint.
    pub upstream: String,
    /// The scopes this resource offers (each in `[[scopes]]`); absent: the whole catalogue.
    pub scopes: Option<Vec<String>>,
    /// Granted when a request names none of `scopes`; absent: its scopes marked default, else all of them.
    pub default_scopes: Option<Vec<String>>,
    /// Default: `[gateway] timeout_ms`, else 30000.
    pub timeout_ms: Option<u64>,
    /// Default: `[gateway] stream_idle_timeout_ms`, else 300000.
    pub stream_idle_timeout_ms: Option<u64>,
    /// Default: `[gateway] max_response_bytes`, else 16 MiB.
    pub max_response_bytes: Option<usize>,
    /// Default: `[gateway] identity_jwt`.
    pub identity_jwt: Option<bool>,
    /// Default: `[gateway] hide_unauthorized_tools`.
    pub hide_unauthorized_tools: Option<bool>,
    /// `[gateway.routes.tool_scopes]`: tool name = "scope".
    #[serde(default)]
    pub tool_scopes: BTreeMap<String, String>,
    /// Not inherited from `[gateway]`: the identity provider whose token for the caller is sent upstream (docs/federation.md).
    pub upstream_token_from: Option<String>,
    /// The header carrying it, value without a scheme; absent: `Authorization: Bearer`.
    pub upstream_token_header: Option<String>,
    /// `stored` (default): the token from the vault; `exchange`: an RFC 8693 token exchange at the provider.
    pub upstream_token_mode: Option<UpstreamTokenModeSetting>,
    /// The RFC 8693 `audience` asked for in `exchange` mode.
    pub upstream_audience: Option<String>,
}

/// `upstream_token_mode` as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamTokenModeSetting {
    Stored,
    Exchange,
}

/// How a gateway sends the caller's upstream token (never the caller's Portcullis token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTokenSettings {
    /// The `[[identity_providers]]` name the token comes from.
    pub provider: String,
    pub header: UpstreamTokenHeader,
    pub mode: UpstreamTokenMode,
}

/// Where the upstream token goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamTokenHeader {
    /// `Authorization: Bearer <token>` (RFC 6750 §2.1), the default.
    AuthorizationBearer,
    /// `<name>: <token>`, no scheme.
    Named(http::HeaderName),
}

/// Which token is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamTokenMode {
    /// The user's access token at the provider, from the vault (refreshed when it expires).
    Stored,
    /// A token obtained by RFC 8693 token exchange at the provider for this `audience`.
    Exchange { audience: String },
}

/// The external resources (`--resource` flags, else `resources` of the file): each an absolute https URL, or
/// http on a loopback host, without fragment or user info (RFC 8707 §2), written as tokens' `aud` will carry it.
pub fn external_resources(
    flags: &[String],
    file: Option<&[String]>,
) -> Result<Vec<String>, SettingsError> {
    let list = if flags.is_empty() {
        file.unwrap_or_default()
    } else {
        flags
    };
    let mut out: Vec<String> = Vec::new();
    for r in list {
        let url = url::Url::parse(r).map_err(|_| SettingsError::ResourceNotUrl(r.clone()))?;
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        if !(url.scheme() == "https" || (url.scheme() == "http" && loopback)) {
            return Err(SettingsError::ResourceScheme(r.clone()));
        }
        if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
            return Err(SettingsError::ResourceParts(r.clone()));
        }
        if !out.contains(r) {
            out.push(r.clone());
        }
    }
    Ok(out)
}

/// Builds the scope catalogue and the default scope from `[[scopes]]`.
pub fn scope_catalogue(entries: &[ScopeSetting]) -> Result<(Vec<ScopeInfo>, Scope), SettingsError> {
    if entries.is_empty() {
        return Err(SettingsError::NoScopes);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for e in entries {
        if Scope::from_tokens([e.name.as_str()]).is_err() || e.name.contains(' ') {
            return Err(SettingsError::ScopeName(e.name.clone()));
        }
        if e.name == OFFLINE_ACCESS {
            return Err(SettingsError::OfflineAccess);
        }
        if !seen.insert(e.name.clone()) {
            return Err(SettingsError::DuplicateScope(e.name.clone()));
        }
        if e.description.trim().is_empty() || e.description.chars().any(char::is_control) {
            return Err(SettingsError::ScopeDescription(e.name.clone()));
        }
        out.push(ScopeInfo {
            name: e.name.clone(),
            description: e.description.clone(),
            tools: e.tools.clone(),
        });
    }
    let defaults = Scope::from_tokens(
        entries
            .iter()
            .filter(|e| e.default)
            .map(|e| e.name.as_str()),
    )
    .map_err(|_| SettingsError::DefaultScope)?;
    if defaults.is_empty() {
        return Err(SettingsError::NoDefaultScope);
    }
    Ok((out, defaults))
}

/// The `[[gateway.routes]]` of the file, parsed (the checks that need the catalogue and the server's own paths
/// run in `ServerConfig::check`).
pub fn gateway_routes(file: Option<&GatewaySettings>) -> Result<Vec<RouteConfig>, SettingsError> {
    let Some(file) = file else {
        return Ok(Vec::new());
    };
    let scope = |path: &str, list: &[String]| {
        Scope::from_tokens(list).map_err(|_| SettingsError::RouteScope(path.to_owned()))
    };
    let mut out = Vec::new();
    for r in &file.routes {
        let context = |source| SettingsError::Route {
            path: r.path.clone(),
            source,
        };
        out.push(RouteConfig {
            path: r.path.clone(),
            gateway: route_gateway(r, file).map_err(context)?,
            scopes: r.scopes.as_deref().map(|l| scope(&r.path, l)).transpose()?,
            default_scopes: r
                .default_scopes
                .as_deref()
                .map(|l| scope(&r.path, l))
                .transpose()?,
        });
    }
    Ok(out)
}

/// One route's gateway: its own values, else the `[gateway]` table's, else the defaults.
fn route_gateway(
    r: &RouteSettings,
    file: &GatewaySettings,
) -> Result<GatewayConfig, GatewayConfigError> {
    let mut gateway = GatewayConfig::new(parse_upstream(&r.upstream)?);
    if let Some(ms) = r.timeout_ms.or(file.timeout_ms) {
        gateway.set_timeout_ms(ms)?;
    }
    if let Some(ms) = r.stream_idle_timeout_ms.or(file.stream_idle_timeout_ms) {
        gateway.set_stream_idle_timeout_ms(ms)?;
    }
    if let Some(max) = r.max_response_bytes.or(file.max_response_bytes) {
        gateway.max_response = max;
    }
    gateway.identity_jwt = r.identity_jwt.or(file.identity_jwt).unwrap_or(false);
    gateway.hide_unauthorized_tools = r
        .hide_unauthorized_tools
        .or(file.hide_unauthorized_tools)
        .unwrap_or(false);
    for (name, s) in &r.tool_scopes {
        gateway.insert_tool_scope(name, s)?;
    }
    Ok(gateway)
}

/// The gateway's optional features: `[gateway]` decides for the MCP endpoint's gateway (each `[[gateway.routes]]`
/// entry decides for itself); a flag (or its environment variable) turns the feature on
/// for every gateway. Refused without gateway mode.
pub fn gateway_options(
    main: Option<&mut GatewayConfig>,
    routes: Vec<&mut GatewayConfig>,
    identity_jwt: bool,
    hide_unauthorized_tools: bool,
    file: Option<&GatewaySettings>,
) -> Result<(), SettingsError> {
    if main.is_none() && routes.is_empty() && (identity_jwt || hide_unauthorized_tools) {
        return Err(SettingsError::GatewayFeaturesWithoutUpstream);
    }
    let mut main = main;
    if let Some(g) = main.as_mut() {
        g.identity_jwt = file.and_then(|f| f.identity_jwt).unwrap_or(false);
        g.hide_unauthorized_tools = file
            .and_then(|f| f.hide_unauthorized_tools)
            .unwrap_or(false);
    }
    for g in main.into_iter().chain(routes) {
        g.identity_jwt |= identity_jwt;
        g.hide_unauthorized_tools |= hide_unauthorized_tools;
    }
    Ok(())
}

/// The gateway configuration from flags/environment over the `[gateway]` table; `None` without an upstream.
pub fn gateway_config(
    upstream: Option<String>,
    timeout_ms: Option<u64>,
    stream_idle_timeout_ms: Option<u64>,
    tool_scopes: &[String],
    file: Option<&GatewaySettings>,
) -> Result<Option<GatewayConfig>, SettingsError> {
    let Some(upstream) = upstream.or_else(|| file.and_then(|f| f.upstream.clone())) else {
        if !tool_scopes.is_empty() || timeout_ms.is_some() || stream_idle_timeout_ms.is_some() {
            return Err(SettingsError::GatewayFlagsWithoutUpstream);
        }
        return Ok(None);
    };
    let mut config = GatewayConfig::new(parse_upstream(&upstream)?);
    if let Some(ms) = timeout_ms.or_else(|| file.and_then(|f| f.timeout_ms)) {
        config.set_timeout_ms(ms)?;
    }
    if let Some(ms) = stream_idle_timeout_ms.or_else(|| file.and_then(|f| f.stream_idle_timeout_ms))
    {
        config.set_stream_idle_timeout_ms(ms)?;
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

/// Headers a gateway sets or forwards itself, which an upstream token must not replace.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "connection",
    "content-length",
    "content-type",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "accept",
    "cookie",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
    "x-portcullis-identity",
];

/// The `upstream_token_*` keys of one gateway table.
struct UpstreamTokenKeys<'a> {
    from: Option<&'a str>,
    header: Option<&'a str>,
    mode: Option<UpstreamTokenModeSetting>,
    audience: Option<&'a str>,
}

/// The upstream-token settings of the MCP endpoint's gateway (`[gateway]`, only with an upstream) and of each
/// `[[gateway.routes]]` entry (by path; routes do not inherit `[gateway]`'s, so a user's token only goes where
/// it was configured to go). `providers` are the configured `[[identity_providers]]` names.
pub fn upstream_tokens(
    file: Option<&GatewaySettings>,
    has_upstream: bool,
    providers: &[&str],
) -> Result<
    (
        Option<UpstreamTokenSettings>,
        BTreeMap<String, UpstreamTokenSettings>,
    ),
    SettingsError,
> {
    let Some(file) = file else {
        return Ok((None, BTreeMap::new()));
    };
    let main = upstream_token(
        "[gateway]",
        &UpstreamTokenKeys {
            from: file.upstream_token_from.as_deref(),
            header: file.upstream_token_header.as_deref(),
            mode: file.upstream_token_mode,
            audience: file.upstream_audience.as_deref(),
        },
        providers,
    )?;
    if main.is_some() && !has_upstream {
        return Err(SettingsError::UpstreamTokenKey {
            table: "[gateway]".into(),
            key: "upstream_token_from",
            needs: "upstream (gateway mode)",
        });
    }
    let mut routes = BTreeMap::new();
    for r in &file.routes {
        let keys = UpstreamTokenKeys {
            from: r.upstream_token_from.as_deref(),
            header: r.upstream_token_header.as_deref(),
            mode: r.upstream_token_mode,
            audience: r.upstream_audience.as_deref(),
        };
        let table = format!("[[gateway.routes]] {}", r.path);
        if let Some(t) = upstream_token(&table, &keys, providers)? {
            routes.insert(r.path.clone(), t);
        }
    }
    Ok((main, routes))
}

/// Carries the upstream-token settings into the gateways' configurations (the MCP endpoint's and each route's,
/// by path).
pub fn attach_upstream_tokens(
    main: Option<&mut GatewayConfig>,
    routes: &mut [RouteConfig],
    main_token: Option<&UpstreamTokenSettings>,
    route_tokens: &BTreeMap<String, UpstreamTokenSettings>,
) {
    let config = |t: &UpstreamTokenSettings| UpstreamTokenConfig {
        provider: t.provider.clone(),
        header: match &t.header {
            UpstreamTokenHeader::AuthorizationBearer => None,
            UpstreamTokenHeader::Named(name) => Some(name.clone()),
        },
        exchange_audience: match &t.mode {
            UpstreamTokenMode::Stored => None,
            UpstreamTokenMode::Exchange { audience } => Some(audience.clone()),
        },
    };
    if let Some(g) = main {
        g.upstream_token = main_token.map(config);
    }
    for r in routes {
        r.gateway.upstream_token = route_tokens.get(&r.path).map(config);
    }
}

/// One table's keys: `None` without `upstream_token_from` (then the other keys must be absent too).
fn upstream_token(
    table: &str,
    keys: &UpstreamTokenKeys<'_>,
    providers: &[&str],
) -> Result<Option<UpstreamTokenSettings>, SettingsError> {
    let needs = |key, needs| SettingsError::UpstreamTokenKey {
        table: table.to_owned(),
        key,
        needs,
    };
    let Some(from) = keys.from else {
        for (key, set) in [
            ("upstream_token_header", keys.header.is_some()),
            ("upstream_token_mode", keys.mode.is_some()),
            ("upstream_audience", keys.audience.is_some()),
        ] {
            if set {
                return Err(needs(key, "upstream_token_from"));
            }
        }
        return Ok(None);
    };
    if !providers.contains(&from) {
        return Err(SettingsError::UpstreamTokenProvider {
            table: table.to_owned(),
            name: from.to_owned(),
        });
    }
    let header = match keys.header {
        None => UpstreamTokenHeader::AuthorizationBearer,
        Some(h) if h.eq_ignore_ascii_case("authorization") => {
            UpstreamTokenHeader::AuthorizationBearer
        }
        Some(h) => match http::HeaderName::from_bytes(h.as_bytes()) {
            Ok(name) if !RESERVED_HEADERS.contains(&name.as_str()) => {
                UpstreamTokenHeader::Named(name)
            }
            _ => {
                return Err(SettingsError::UpstreamTokenHeader {
                    table: table.to_owned(),
                    value: h.to_owned(),
                })
            }
        },
    };
    let audience = keys.audience.map(str::trim).filter(|a| !a.is_empty());
    let mode = match (
        keys.mode.unwrap_or(UpstreamTokenModeSetting::Stored),
        audience,
    ) {
        (UpstreamTokenModeSetting::Stored, None) => UpstreamTokenMode::Stored,
        (UpstreamTokenModeSetting::Stored, Some(_)) => {
            return Err(needs(
                "upstream_audience",
                "upstream_token_mode = \"exchange\"",
            ))
        }
        (UpstreamTokenModeSetting::Exchange, Some(a)) => UpstreamTokenMode::Exchange {
            audience: a.to_owned(),
        },
        (UpstreamTokenModeSetting::Exchange, None) => {
            return Err(SettingsError::UpstreamAudienceMissing {
                table: table.to_owned(),
            })
        }
    };
    Ok(Some(UpstreamTokenSettings {
        provider: from.to_owned(),
        header,
        mode,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::FileSettings;

    #[test]
    fn scope_catalogue_from_toml() {
        let f: FileSettings = toml::from_str(
            "[[scopes]]\nname = \"files:read\"\ndescription = \"Read files\"\ntools = [\"echo\"]\ndefault = true\n\
             [[scopes]]\nname = \"files:write\"\ndescription = \"Write files\"\n",
        )
        .unwrap();
        let (cat, def) = scope_catalogue(f.scopes.as_deref().unwrap()).unwrap();
        assert_eq!(cat.len(), 2);
        assert_eq!(cat[0].tools, vec!["echo".to_owned()]);
        assert_eq!(def.to_string(), "files:read");
        let bad = |t: &str| {
            scope_catalogue(
                toml::from_str::<FileSettings>(t)
                    .unwrap()
                    .scopes
                    .as_deref()
                    .unwrap(),
            )
            .is_err()
        };
        assert!(
            bad("[[scopes]]\nname = \"a\"\ndescription = \"A\"\n"),
            "no default"
        );
        assert!(bad(
            "[[scopes]]\nname = \"offline_access\"\ndescription = \"x\"\ndefault = true\n"
        ));
        assert!(bad(
            "[[scopes]]\nname = \"a\\\"b\"\ndescription = \"x\"\ndefault = true\n"
        ));
        assert!(toml::from_str::<FileSettings>(
            "[[scopes]]\nname = \"a\"\ndescription = \"A\"\ncolour = 1\n"
        )
        .is_err());
    }

    #[test]
    fn external_resources_are_checked() {
        let f: FileSettings =
            toml::from_str("resources = [\"https://mcp.example.com/mcp\"]").unwrap();
        assert_eq!(
            external_resources(&[], f.resources.as_deref()).unwrap(),
            vec!["https://mcp.example.com/mcp".to_owned()]
        );
        let flags = vec!["http://127.0.0.1:3000/mcp".to_owned()];
        assert_eq!(
            external_resources(&flags, f.resources.as_deref()).unwrap(),
            flags,
            "flags override the file"
        );
        for bad in [
            "http://mcp.example.com/mcp",
            "https://mcp.example.com/mcp#x",
            "https://u@mcp.example.com/mcp",
            "/mcp",
            "mcp",
        ] {
            assert!(
                external_resources(&[bad.to_owned()], None).is_err(),
                "{bad}"
            );
        }
        assert!(external_resources(&[], None).unwrap().is_empty());
    }

    #[test]
    fn gateway_options_from_flags_or_file() {
        let file: FileSettings = toml::from_str(
            "[gateway]\nupstream = \"http://127.0.0.1:3000/mcp\"\nidentity_jwt = true\n",
        )
        .unwrap();
        let mut g = gateway_config(None, None, None, &[], file.gateway.as_ref())
            .unwrap()
            .unwrap();
        gateway_options(Some(&mut g), vec![], false, false, file.gateway.as_ref()).unwrap();
        assert!(g.identity_jwt && !g.hide_unauthorized_tools);
        let mut route = g.clone();
        route.identity_jwt = false;
        gateway_options(Some(&mut g), vec![&mut route], false, true, None).unwrap();
        assert!(!g.identity_jwt && g.hide_unauthorized_tools);
        assert!(
            !route.identity_jwt && route.hide_unauthorized_tools,
            "a flag turns a feature on for the routes too; the file's [gateway] does not"
        );
        assert!(gateway_options(None, vec![], true, false, None).is_err());
        assert!(gateway_options(None, vec![&mut route], true, false, None).is_ok());
        assert!(route.identity_jwt);
        assert!(gateway_options(None, vec![], false, false, None).is_ok());
    }

    #[test]
    fn gateway_routes_from_toml() {
        let file: FileSettings = toml::from_str(
            "[gateway]\ntimeout_ms = 5000\nidentity_jwt = true\nstream_idle_timeout_ms = 0\n\
             [[gateway.routes]]\npath = \"/github/mcp\"\nupstream = \"http://127.0.0.1:3001/mcp\"\n\
             scopes = [\"mcp:tools\", \"mcp:admin\"]\ntimeout_ms = 1000\nstream_idle_timeout_ms = 2000\n\
             [gateway.routes.tool_scopes]\ncreate_issue = \"mcp:admin\"\n\
             [[gateway.routes]]\npath = \"/files/mcp\"\nupstream = \"http://127.0.0.1:3002/mcp\"\n",
        )
        .unwrap();
        let routes = gateway_routes(file.gateway.as_ref()).unwrap();
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0].path, "/github/mcp");
        assert_eq!(
            routes[0].gateway.upstream.as_str(),
            "http://127.0.0.1:3001/mcp"
        );
        assert_eq!(routes[0].gateway.timeout.as_millis(), 1000);
        assert_eq!(
            routes[0].gateway.stream_idle_timeout,
            Some(std::time::Duration::from_millis(2000))
        );
        assert_eq!(
            routes[1].gateway.stream_idle_timeout, None,
            "0 inherited: no limit"
        );
        assert_eq!(
            routes[0].scopes.as_ref().unwrap().to_string(),
            "mcp:admin mcp:tools"
        );
        assert_eq!(
            routes[0].gateway.tool_scopes["create_issue"].to_string(),
            "mcp:admin"
        );
        assert_eq!(
            routes[1].gateway.timeout.as_millis(),
            5000,
            "inherits [gateway]"
        );
        assert_eq!(routes[1].scopes, None);
        assert!(
            routes[0].gateway.identity_jwt && routes[1].gateway.identity_jwt,
            "inherited"
        );
        assert!(!routes[0].gateway.hide_unauthorized_tools);
        let bad =
            |t: &str| gateway_routes(toml::from_str::<FileSettings>(t).unwrap().gateway.as_ref());
        let err =
            bad("[[gateway.routes]]\npath = \"/a\"\nupstream = \"ftp://x/mcp\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("gateway route /a"), "{err:#}");
        assert!(bad(
            "[[gateway.routes]]\npath = \"/a\"\nupstream = \"http://h/x\"\nscopes = [\"a b\"]\n"
        )
        .is_err());
        assert!(toml::from_str::<FileSettings>(
            "[[gateway.routes]]\npath = \"/a\"\nupstream = \"http://h/x\"\ncolour = 1\n"
        )
        .is_err());
    }

    #[test]
    fn gateway_flags_over_the_gateway_table() {
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
            Some(1500),
            &["other=mcp:tools".into()],
            file.gateway.as_ref(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(g.upstream.as_str(), "http://127.0.0.1:3000/mcp");
        assert_eq!(g.timeout.as_millis(), 5000);
        assert_eq!(g.tool_scopes.len(), 2);
        assert_eq!(
            g.stream_idle_timeout,
            Some(std::time::Duration::from_millis(1500))
        );
        assert!(gateway_config(None, None, None, &[], None)
            .unwrap()
            .is_none());
        assert!(gateway_config(None, None, None, &["x=y".into()], None).is_err());
        assert!(gateway_config(None, None, Some(1000), &[], None).is_err());
        assert!(toml::from_str::<FileSettings>("[gateway]\nupstrem = \"x\"").is_err());
    }
}
