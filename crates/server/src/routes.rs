//! Route paths, computed once from the issuer and the MCP path. The metadata documents are built from the same
//! values, so a route and its advertised URL cannot drift apart.

use portcullis_proto::well_known;

/// Liveness probe.
pub const LIVEZ: &str = "/livez";
/// Readiness probe.
pub const READYZ: &str = "/readyz";

/// Every path the server answers, and the absolute URLs advertised for them.
#[derive(Debug, Clone)]
pub struct Routes {
    /// The issuer identifier (no trailing slash).
    pub issuer: String,
    /// The issuer's path ("" for an origin-only issuer); AS endpoints live below it.
    pub base: String,
    /// `…/.well-known/oauth-authorization-server[/base]` (RFC 8414 §3.1).
    pub as_metadata: String,
    /// `/.well-known/openid-configuration[/base]` (MCP 2025-11-25 path-inserted OIDC form).
    pub oidc_metadata: String,
    /// `/base/.well-known/openid-configuration` (OIDC Discovery §4.1), only when the issuer has a path.
    pub oidc_metadata_appended: Option<String>,
    /// `/.well-known/oauth-authorization-server` at the origin, for 2025-03-26 clients, when the issuer has a path.
    pub as_metadata_root: Option<String>,
    /// RFC 9728 §3.1 path-inserted protected resource metadata.
    pub prm: String,
    /// The root form clients try second.
    pub prm_root: String,
    /// The JWKS.
    pub jwks: String,
    /// RFC 7591 registration endpoint.
    pub register: String,
    /// Authorization endpoint.
    pub authorize: String,
    /// Login form target.
    pub login: String,
    /// Consent form target.
    pub consent: String,
    /// Sign-out page and form target.
    pub logout: String,
    /// Token endpoint.
    pub token: String,
    /// RFC 7009 revocation endpoint.
    pub revoke: String,
    /// RFC 7662 introspection endpoint.
    pub introspect: String,
    /// The MCP endpoint.
    pub mcp: String,
    /// The stylesheet of the pages.
    pub stylesheet: String,
    /// Prefix of the federation routes, `<base>/idp` (docs/federation.md).
    pub idp: String,
    /// `<base>/idp/`: every path under it is the federation routes' (reserved: no gateway route there).
    pub idp_prefix: String,
    /// The route pattern of [`Routes::idp_start`]: `<base>/idp/{name}/start`.
    pub idp_start_route: String,
    /// The route pattern of [`Routes::idp_callback`]: `<base>/idp/{name}/callback`.
    pub idp_callback_route: String,
    /// The MCP endpoint's URL: the resource identifier (RFC 8707, RFC 9728 `resource`).
    pub mcp_url: String,
    /// The origin (`scheme://host[:port]`).
    pub origin: String,
}

impl Routes {
    /// Builds the routes for `issuer` (already validated: http(s), no query, fragment or trailing slash) and an
    /// MCP endpoint at `mcp_path` on the same origin.
    pub fn new(issuer: &url::Url, mcp_path: &str) -> Self {
        let origin = issuer.origin().ascii_serialization();
        let base = issuer.path().trim_end_matches('/').to_owned();
        let issuer_text = format!("{origin}{base}");
        let at = |p: &str| format!("{base}{p}");
        let mcp_url = format!("{origin}{mcp_path}");
        let prm = match url::Url::parse(&mcp_url) {
            Ok(u) => well_known::protected_resource_metadata_url(&u)[origin.len()..].to_owned(),
            Err(_) => format!("{}{mcp_path}", well_known::PROTECTED_RESOURCE),
        };
        Self {
            as_metadata: format!("{}{base}", well_known::AUTHORIZATION_SERVER),
            oidc_metadata: format!("{}{base}", well_known::OPENID_CONFIGURATION),
            oidc_metadata_appended: (!base.is_empty())
                .then(|| format!("{base}{}", well_known::OPENID_CONFIGURATION)),
            as_metadata_root: (!base.is_empty())
                .then(|| well_known::AUTHORIZATION_SERVER.to_owned()),
            prm_root: if prm == well_known::PROTECTED_RESOURCE {
                format!("{}/", well_known::PROTECTED_RESOURCE)
            } else {
                well_known::PROTECTED_RESOURCE.to_owned()
            },
            prm,
            jwks: at("/jwks.json"),
            register: at("/register"),
            authorize: at("/authorize"),
            login: at("/login"),
            consent: at("/consent"),
            logout: at("/logout"),
            token: at("/token"),
            revoke: at("/revoke"),
            introspect: at("/introspect"),
            stylesheet: at("/assets/portcullis.css"),
            idp: at("/idp"),
            idp_prefix: at("/idp/"),
            idp_start_route: at("/idp/{name}/start"),
            idp_callback_route: at("/idp/{name}/callback"),
            mcp: mcp_path.to_owned(),
            mcp_url,
            issuer: issuer_text,
            base,
            origin,
        }
    }

    /// The absolute URL of a path on this origin.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// `<base>/idp/<name>/start`: the sign-in page's button for provider `name` links here, followed by `?` and
    /// the original authorization request's query; it redirects the browser to the provider.
    pub fn idp_start(&self, name: &str) -> String {
        format!("{}/{name}/start", self.idp)
    }

    /// `<base>/idp/<name>/callback`: where provider `name` sends the browser back (its redirect URI).
    pub fn idp_callback(&self, name: &str) -> String {
        format!("{}/{name}/callback", self.idp)
    }

    /// The redirect URI to register at provider `name`: `<issuer>/idp/<name>/callback`.
    pub fn idp_callback_url(&self, name: &str) -> String {
        self.url(&self.idp_callback(name))
    }

    /// The path of the RFC 9728 §3.1 document of the resource at `path` on this origin (the well-known name
    /// inserted before the path): `/.well-known/oauth-protected-resource<path>`.
    pub fn prm_for(&self, path: &str) -> String {
        format!("{}{path}", well_known::PROTECTED_RESOURCE)
    }

    /// Every path the server answers before any gateway route (routes must not take one of them).
    pub fn reserved(&self) -> Vec<&str> {
        let mut out = vec![
            self.as_metadata.as_str(),
            &self.oidc_metadata,
            &self.prm,
            &self.prm_root,
            &self.jwks,
            &self.register,
            &self.authorize,
            &self.login,
            &self.consent,
            &self.logout,
            &self.token,
            &self.revoke,
            &self.introspect,
            &self.mcp,
            &self.stylesheet,
            LIVEZ,
            READYZ,
            &self.idp_prefix,
        ];
        out.extend(self.oidc_metadata_appended.as_deref());
        out.extend(self.as_metadata_root.as_deref());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_issuer() {
        let r = Routes::new(&url::Url::parse("http://127.0.0.1:8080").unwrap(), "/mcp");
        assert_eq!(r.issuer, "http://127.0.0.1:8080");
        assert_eq!(r.as_metadata, "/.well-known/oauth-authorization-server");
        assert_eq!(r.prm, "/.well-known/oauth-protected-resource/mcp");
        assert_eq!(r.prm_root, "/.well-known/oauth-protected-resource");
        assert_eq!(r.mcp_url, "http://127.0.0.1:8080/mcp");
        assert_eq!(r.token, "/token");
        assert!(r.oidc_metadata_appended.is_none());
        assert_eq!(
            r.prm_for("/github/mcp"),
            "/.well-known/oauth-protected-resource/github/mcp"
        );
        assert!(r.reserved().contains(&"/token") && r.reserved().contains(&"/mcp"));
        assert_eq!(r.idp_start("corp"), "/idp/corp/start");
        assert_eq!(r.idp_start_route, "/idp/{name}/start");
        assert_eq!(
            r.idp_callback_url("corp"),
            "http://127.0.0.1:8080/idp/corp/callback"
        );
    }

    #[test]
    fn issuer_with_path_and_seed_mcp_path() {
        let r = Routes::new(
            &url::Url::parse("https://auth.example.com/tenant1").unwrap(),
            "/v1/mcp/",
        );
        assert_eq!(r.issuer, "https://auth.example.com/tenant1");
        assert_eq!(
            r.as_metadata,
            "/.well-known/oauth-authorization-server/tenant1"
        );
        assert_eq!(r.oidc_metadata, "/.well-known/openid-configuration/tenant1");
        assert_eq!(
            r.oidc_metadata_appended.as_deref(),
            Some("/tenant1/.well-known/openid-configuration")
        );
        assert_eq!(r.token, "/tenant1/token");
        assert_eq!(r.introspect, "/tenant1/introspect");
        assert_eq!(r.prm, "/.well-known/oauth-protected-resource/v1/mcp/");
        assert_eq!(r.mcp_url, "https://auth.example.com/v1/mcp/");
        assert_eq!(r.idp_start("corp"), "/tenant1/idp/corp/start");
        assert_eq!(r.idp_callback_route, "/tenant1/idp/{name}/callback");
        assert_eq!(
            r.idp_callback_url("corp"),
            "https://auth.example.com/tenant1/idp/corp/callback"
        );
    }
}
