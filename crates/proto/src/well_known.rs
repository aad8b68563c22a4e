//! Where the well-known metadata documents live.
//!
//! - RFC 9728 §3.1: insert `/.well-known/oauth-protected-resource` between the host and the path of the resource.
//! - RFC 8414 §3.1: insert `/.well-known/oauth-authorization-server` between the host and the path of the issuer.
//! - OpenID Connect Discovery 1.0 §4.1 appends `/.well-known/openid-configuration` to the issuer; the MCP
//!   authorization spec (2025-11-25 onwards) also tries the path-inserted form.

use url::Url;

/// RFC 9728 well-known suffix.
pub const PROTECTED_RESOURCE: &str = "/.well-known/oauth-protected-resource";
/// RFC 8414 well-known suffix.
pub const AUTHORIZATION_SERVER: &str = "/.well-known/oauth-authorization-server";
/// OpenID Connect Discovery well-known suffix.
pub const OPENID_CONFIGURATION: &str = "/.well-known/openid-configuration";

fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// The path of `url` without a lone trailing `/` (so `https://a.com/` has the empty path).
fn trimmed_path(url: &Url) -> &str {
    let p = url.path();
    if p == "/" {
        ""
    } else {
        p
    }
}

/// RFC 9728 §3.1: the protected resource metadata URL for `resource` (path-inserted form). A query component
/// of the resource is kept (§3.1).
pub fn protected_resource_metadata_url(resource: &Url) -> String {
    let mut s = format!(
        "{}{}{}",
        origin(resource),
        PROTECTED_RESOURCE,
        trimmed_path(resource)
    );
    if let Some(q) = resource.query() {
        s.push('?');
        s.push_str(q);
    }
    s
}

/// The root form `https://host/.well-known/oauth-protected-resource` that clients try second.
pub fn protected_resource_metadata_root_url(resource: &Url) -> String {
    format!("{}{}", origin(resource), PROTECTED_RESOURCE)
}

/// The URLs a client tries, in order, to find the metadata of `issuer` (MCP authorization, 2025-11-25
/// "Authorization Server Metadata Discovery"): for an issuer with a path, RFC 8414 path-inserted, OIDC
/// path-inserted, OIDC path-appended; without a path, RFC 8414 then OIDC.
pub fn authorization_server_metadata_urls(issuer: &Url) -> Vec<String> {
    let o = origin(issuer);
    let path = trimmed_path(issuer);
    if path.is_empty() {
        vec![
            format!("{o}{AUTHORIZATION_SERVER}"),
            format!("{o}{OPENID_CONFIGURATION}"),
        ]
    } else {
        let path = path.trim_end_matches('/');
        vec![
            format!("{o}{AUTHORIZATION_SERVER}{path}"),
            format!("{o}{OPENID_CONFIGURATION}{path}"),
            format!("{o}{path}{OPENID_CONFIGURATION}"),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn rfc9728_path_insertion() {
        assert_eq!(
            protected_resource_metadata_url(&u("https://ex.com/public/mcp")),
            "https://ex.com/.well-known/oauth-protected-resource/public/mcp"
        );
        assert_eq!(
            protected_resource_metadata_url(&u("https://ex.com/v1/mcp/")),
            "https://ex.com/.well-known/oauth-protected-resource/v1/mcp/"
        );
        assert_eq!(
            protected_resource_metadata_url(&u("https://ex.com")),
            "https://ex.com/.well-known/oauth-protected-resource"
        );
        assert_eq!(
            protected_resource_metadata_root_url(&u("http://127.0.0.1:8080/mcp")),
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource"
        );
    }

    #[test]
    fn issuer_discovery_order() {
        assert_eq!(
            authorization_server_metadata_urls(&u("https://a.com/tenant1")),
            vec![
                "https://a.com/.well-known/oauth-authorization-server/tenant1",
                "https://a.com/.well-known/openid-configuration/tenant1",
                "https://a.com/tenant1/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            authorization_server_metadata_urls(&u("https://a.com")),
            vec![
                "https://a.com/.well-known/oauth-authorization-server",
                "https://a.com/.well-known/openid-configuration"
            ]
        );
    }
}
