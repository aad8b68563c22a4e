//! [`GatewayConfig`]: where the upstream MCP server is, how long to wait for it, and which scope each tool needs.
//! [`RouteConfig`]: one more upstream on its own path, a protected resource of its own (RFC 9728 §1, RFC 8707),
//! and the start-up checks of the routes ([`check_routes`]).

use portcullis_authz::config::{ResourceScopes, ScopeInfo};
use portcullis_proto::Scope;
use std::collections::BTreeMap;
use std::time::Duration;
use url::Url;

/// Default time to wait for the upstream's response head (and for a whole JSON body), milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Default longest silence of an event stream answering a `POST`, milliseconds (0: no limit).
pub const DEFAULT_STREAM_IDLE_TIMEOUT_MS: u64 = 300_000;
/// Default largest non-streaming (JSON) upstream response body, bytes.
pub const DEFAULT_MAX_RESPONSE: usize = 16 * 1024 * 1024;
/// Default most event streams one caller (user and client) holds open at once through one gateway.
pub const DEFAULT_STREAMS_PER_CALLER: u32 = 8;

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
    /// An event stream answering a `POST` that sends nothing for this long is ended (the upstream hung); `None`:
    /// never. The standalone `GET` stream is exempt: it is idle whenever the server has nothing to say.
    pub stream_idle_timeout: Option<Duration>,
    /// Tool name → scope a `tools/call` of that tool needs (all of its tokens).
    pub tool_scopes: BTreeMap<String, Scope>,
    /// Send the upstream a signed identity assertion in `X-Portcullis-Identity` ([`super::identity`]).
    pub identity_jwt: bool,
    /// Remove from `tools/list` answers the tools whose scope the token lacks ([`super::tool_filter`]).
    pub hide_unauthorized_tools: bool,
    /// Send the caller's token at an identity provider upstream (`upstream_token_from`,
    /// [`super::upstream_token`]); `None`: no upstream credential, as before.
    pub upstream_token: Option<UpstreamTokenConfig>,
    /// Most event streams one caller (the token's `sub` and `client_id`) holds open at once through this
    /// gateway, each an upstream connection ([`super::streams`]); 0: no limit.
    pub streams_per_caller: u32,
}

/// `upstream_token_from` and its companions: which of the caller's upstream tokens the gateway sends, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTokenConfig {
    /// The `[[identity_providers]]` name.
    pub provider: String,
    /// `None`: `Authorization: Bearer <token>` (RFC 6750 §2.1); else this header, the token without a scheme.
    pub header: Option<http::HeaderName>,
    /// `Some(audience)`: an RFC 8693 token exchange for that audience (`upstream_token_mode = "exchange"`);
    /// `None`: the stored access token.
    pub exchange_audience: Option<String>,
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
    /// The stream idle timeout is out of range.
    #[error("upstream stream idle timeout must be 0 (none) or 100 to 86400000 ms")]
    StreamIdleTimeout,
    /// A route path is not a plain absolute path.
    #[error("gateway route path {0:?} must start with /, have segments of letters, digits, '-', '.', '_' or '~' (no empty, '.' or '..' segment), and not be / or under /.well-known/")]
    RoutePath(String),
    /// A route path is one of the server's own endpoints.
    #[error("gateway route path {0:?} is already an endpoint of this server (authorization server, metadata, health or the MCP endpoint)")]
    RouteClash(String),
    /// Two routes share a path.
    #[error("gateway route path {0:?} is listed twice")]
    DuplicateRoute(String),
    /// A route names a scope the catalogue does not have.
    #[error("gateway route {path}: scope {scope:?} is not in the scope catalogue ([[scopes]])")]
    UnknownScope {
        /// The route.
        path: String,
        /// The scope.
        scope: String,
    },
    /// A route's scope list is empty, or its defaults are not among its scopes.
    #[error("gateway route {0}: scopes must not be empty, and default_scopes must be some of its scopes")]
    RouteScopes(String),
    /// A per-tool scope no token for that resource can carry.
    #[error("gateway route {path}: tool {tool:?} needs scope {scope:?}, which this route does not offer")]
    ToolScopeNotOffered {
        /// The route (or the MCP path).
        path: String,
        /// The tool.
        tool: String,
        /// The scope.
        scope: String,
    },
}

/// One `[[gateway.routes]]` entry: an upstream MCP server at `path` on the issuer's origin. Each route is its
/// own protected resource: identifier `origin + path`, its own RFC 9728 document at
/// `/.well-known/oauth-protected-resource<path>` (§3.1), its own challenge, tokens issued for it alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// The path clients use, e.g. `/github/mcp`.
    pub path: String,
    /// The upstream, its timeout, response limit and per-tool scopes.
    pub gateway: GatewayConfig,
    /// The scopes this resource offers (its `scopes_supported`); `None` offers the whole catalogue.
    pub scopes: Option<Scope>,
    /// Granted (and named in the challenge) when a request names none of `scopes`; `None`: its scopes that are
    /// catalogue defaults, or else all of them.
    pub default_scopes: Option<Scope>,
}

/// Checks a route path: absolute, plain segments (so it is a literal axum path and an unambiguous URL path).
pub fn check_route_path(path: &str) -> Result<(), GatewayConfigError> {
    let err = || GatewayConfigError::RoutePath(path.to_owned());
    let rest = path.strip_prefix('/').ok_or_else(err)?;
    let body = rest.strip_suffix('/').unwrap_or(rest);
    if body.is_empty() || path.starts_with("/.well-known/") {
        return Err(err());
    }
    for segment in body.split('/') {
        let plain = segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'));
        if segment.is_empty() || segment == "." || segment == ".." || !plain {
            return Err(err());
        }
    }
    Ok(())
}

impl RouteConfig {
    /// The scopes this route offers and grants by default, given the catalogue and the global default;
    /// `None` when it offers the whole catalogue (no limit, the global default applies).
    pub fn resource_scopes(&self, catalogue_defaults: &Scope) -> Option<ResourceScopes> {
        let offered = self.scopes.clone()?;
        let default = match &self.default_scopes {
            Some(d) => d.clone(),
            None => {
                let d = offered.intersection(catalogue_defaults);
                if d.is_empty() {
                    offered.clone()
                } else {
                    d
                }
            }
        };
        Some(ResourceScopes { offered, default })
    }
}

/// Start-up checks of the gateway (docs/gateway.md): route paths well-formed, distinct, and none of `reserved`
/// (the server's own paths; an entry ending in `/` reserves everything under it, like the federation routes
/// `<base>/idp/…`, whose `{name}` pattern a static route would otherwise shadow); route scopes in the catalogue; every per-tool scope offered where it is needed.
/// `main` is the MCP path's upstream, if any.
pub fn check_routes(
    routes: &[RouteConfig],
    main: Option<&GatewayConfig>,
    mcp_path: &str,
    reserved: &[&str],
    catalogue: &[ScopeInfo],
) -> Result<(), GatewayConfigError> {
    let known = Scope::from_tokens(catalogue.iter().map(|s| s.name.as_str())).unwrap_or_default();
    let tools_offered = |path: &str, g: &GatewayConfig, offered: &Scope| {
        for (tool, scope) in &g.tool_scopes {
            if !offered.includes(scope) {
                return Err(GatewayConfigError::ToolScopeNotOffered {
                    path: path.to_owned(),
                    tool: tool.clone(),
                    scope: scope.to_string(),
                });
            }
        }
        Ok(())
    };
    if let Some(g) = main {
        tools_offered(mcp_path, g, &known)?;
    }
    let mut seen = std::collections::BTreeSet::new();
    for r in routes {
        check_route_path(&r.path)?;
        let taken = |p: &&str| {
            r.path == *p
                || (p.ends_with('/') && r.path.starts_with(p))
                || format!("{}/", r.path) == *p
        };
        if reserved.iter().any(taken) {
            return Err(GatewayConfigError::RouteClash(r.path.clone()));
        }
        if !seen.insert(r.path.as_str()) {
            return Err(GatewayConfigError::DuplicateRoute(r.path.clone()));
        }
        let offered = r.scopes.clone().unwrap_or_else(|| known.clone());
        if let Some(unknown) = offered.difference(&known).iter().next() {
            return Err(GatewayConfigError::UnknownScope {
                path: r.path.clone(),
                scope: unknown.to_owned(),
            });
        }
        let defaults_ok = r
            .default_scopes
            .as_ref()
            .is_none_or(|d| !d.is_empty() && offered.includes(d));
        if offered.is_empty() || !defaults_ok {
            return Err(GatewayConfigError::RouteScopes(r.path.clone()));
        }
        tools_offered(&r.path, &r.gateway, &offered)?;
    }
    Ok(())
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
    /// Defaults for `upstream`: 30 s timeout, 16 MiB response limit, no per-tool scopes, plain identity headers
    /// only, `tools/list` unchanged.
    pub fn new(upstream: Url) -> Self {
        Self {
            upstream,
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            max_response: DEFAULT_MAX_RESPONSE,
            stream_idle_timeout: Some(Duration::from_millis(DEFAULT_STREAM_IDLE_TIMEOUT_MS)),
            tool_scopes: BTreeMap::new(),
            identity_jwt: false,
            hide_unauthorized_tools: false,
            upstream_token: None,
            streams_per_caller: DEFAULT_STREAMS_PER_CALLER,
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

    /// Sets the idle limit of `POST` event streams in milliseconds; 0 removes it.
    pub fn set_stream_idle_timeout_ms(&mut self, ms: u64) -> Result<(), GatewayConfigError> {
        if ms > 86_400_000 || (ms != 0 && ms < 100) {
            return Err(GatewayConfigError::StreamIdleTimeout);
        }
        self.stream_idle_timeout = (ms != 0).then(|| Duration::from_millis(ms));
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
        // A name a request may not carry (super::rpc) could never be called.
        if name.is_empty() || scope.is_empty() || name.chars().any(super::rpc::invisible) {
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
        assert!(c.set_stream_idle_timeout_ms(50).is_err());
        assert!(c.set_stream_idle_timeout_ms(0).is_ok() && c.stream_idle_timeout.is_none());
        assert!(c.set_stream_idle_timeout_ms(500).is_ok());
        assert_eq!(c.stream_idle_timeout, Some(Duration::from_millis(500)));
        assert!(c.set_timeout_ms(1000).is_ok());
    }

    fn route(path: &str, scopes: Option<&str>) -> RouteConfig {
        RouteConfig {
            path: path.into(),
            gateway: GatewayConfig::new(parse_upstream("http://127.0.0.1:1/mcp").unwrap()),
            scopes: scopes.map(|s| Scope::parse(s).unwrap()),
            default_scopes: None,
        }
    }

    #[test]
    fn route_paths() {
        for ok in ["/github/mcp", "/a", "/v1/mcp/", "/a.b/c-d_e~f"] {
            assert_eq!(check_route_path(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "/",
            "github",
            "//x",
            "/a//b",
            "/a/./b",
            "/a/../b",
            "/{id}",
            "/:x",
            "/*x",
            "/a?b",
            "/a#b",
            "/a b",
            "/.well-known/x",
            "/é",
        ] {
            assert!(check_route_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn route_checks() {
        let catalogue = portcullis_authz::config::default_scopes();
        let reserved = ["/mcp", "/token", "/authorize", "/idp/"];
        let check =
            |routes: &[RouteConfig]| check_routes(routes, None, "/mcp", &reserved, &catalogue);
        assert_eq!(
            check(&[route("/a/mcp", Some("mcp:admin")), route("/b/mcp", None)]),
            Ok(())
        );
        assert_eq!(
            check(&[route("/token", None)]),
            Err(GatewayConfigError::RouteClash("/token".into()))
        );
        for under_idp in ["/idp/corp/callback", "/idp/x", "/idp"] {
            assert_eq!(
                check(&[route(under_idp, None)]),
                Err(GatewayConfigError::RouteClash(under_idp.into())),
                "{under_idp}"
            );
        }
        assert_eq!(check(&[route("/idpx/mcp", None)]), Ok(()));
        assert_eq!(
            check(&[route("/mcp", None)]),
            Err(GatewayConfigError::RouteClash("/mcp".into()))
        );
        assert_eq!(
            check(&[route("/a", None), route("/a", None)]),
            Err(GatewayConfigError::DuplicateRoute("/a".into()))
        );
        assert_eq!(
            check(&[route("/a", Some("mcp:tools github:read"))]),
            Err(GatewayConfigError::UnknownScope {
                path: "/a".into(),
                scope: "github:read".into()
            })
        );
        assert!(check(&[route("/a", Some(""))]).is_err());
        let mut r = route("/a", Some("mcp:admin"));
        r.default_scopes = Some(Scope::parse("mcp:tools").unwrap());
        assert_eq!(
            check(&[r]),
            Err(GatewayConfigError::RouteScopes("/a".into()))
        );
        let mut r = route("/a", Some("mcp:admin"));
        r.gateway.add_tool_scope("t=mcp:tools").unwrap();
        assert!(matches!(
            check(&[r]),
            Err(GatewayConfigError::ToolScopeNotOffered { .. })
        ));
        let mut main = GatewayConfig::new(parse_upstream("http://127.0.0.1:1/mcp").unwrap());
        main.add_tool_scope("t=nope").unwrap();
        assert!(check_routes(&[], Some(&main), "/mcp", &reserved, &catalogue).is_err());
    }

    #[test]
    fn route_default_scopes() {
        let defaults = Scope::parse("mcp:tools").unwrap();
        assert_eq!(route("/a", None).resource_scopes(&defaults), None);
        let r = route("/a", Some("mcp:tools mcp:admin"))
            .resource_scopes(&defaults)
            .unwrap();
        assert_eq!(r.default.to_string(), "mcp:tools");
        let r = route("/a", Some("mcp:admin"))
            .resource_scopes(&defaults)
            .unwrap();
        assert_eq!(r.default.to_string(), "mcp:admin");
        let mut explicit = route("/a", Some("mcp:tools mcp:admin"));
        explicit.default_scopes = Some(Scope::parse("mcp:admin").unwrap());
        assert_eq!(
            explicit
                .resource_scopes(&defaults)
                .unwrap()
                .default
                .to_string(),
            "mcp:admin"
        );
    }
}
