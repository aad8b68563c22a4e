//! Finding the authorization server of an MCP server (MCP authorization, "Authorization Server Discovery").
//!
//! 1. Protected resource metadata (RFC 9728): the `resource_metadata` URL of the 401's `WWW-Authenticate`
//!    (§5.1), else the path-inserted well-known URL (§3.1), else the root form. Its `resource` must identify the
//!    server we talk to (§3.3).
//! 2. Authorization server metadata (RFC 8414 §3, OIDC Discovery §4) for the first of `authorization_servers`, in
//!    the MCP order; its `issuer` must be identical to the issuer used (RFC 8414 §3.3).
//! 3. MCP 2025-03-26 servers publish no resource metadata: RFC 8414 metadata at the MCP server's origin, else
//!    the default endpoints `/authorize`, `/token`, `/register` at that origin.
//!
//! A well-known URL answering an error status (400, 401, 403, 404, …) or something that is not the expected
//! JSON is skipped in favour of the next candidate rather than ending discovery.

use crate::url_check::{safe_url, server_url};
use crate::{error::snippet, Error, Result};
use portcullis_proto::metadata::{AuthorizationServerMetadata, ProtectedResourceMetadata};
use portcullis_proto::well_known;
use portcullis_proto::www_authenticate::BearerChallenge;
use serde::de::DeserializeOwned;
use url::Url;

/// The MCP protocol revision this client speaks, sent as `MCP-Protocol-Version` on discovery requests.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

/// The validated endpoints of an authorization server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// RFC 6749 §3.1.
    pub authorization: Url,
    /// RFC 6749 §3.2.
    pub token: Url,
    /// RFC 7591 §3.
    pub registration: Option<Url>,
    /// RFC 7009 §2.
    pub revocation: Option<Url>,
}

/// What discovery found.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovered {
    /// The `resource` to send in authorization and token requests (RFC 8707); `None` for a 2025-03-26 server
    /// that published no resource metadata.
    pub resource: Option<String>,
    /// The protected resource metadata, when published.
    pub resource_metadata: Option<ProtectedResourceMetadata>,
    /// The authorization server's issuer identifier; client credentials are bound to it.
    pub issuer: String,
    /// The authorization server metadata (synthesised for the 2025-03-26 default-endpoint fallback).
    pub metadata: AuthorizationServerMetadata,
    /// The endpoints, each checked by [`safe_url`].
    pub endpoints: Endpoints,
}

/// Runs discovery for `server`, starting from the challenge of its 401 when there was one.
pub async fn discover(
    http: &reqwest::Client,
    server: &Url,
    challenge: Option<&BearerChallenge>,
) -> Result<Discovered> {
    let mut candidates = Vec::new();
    if let Some(rm) = challenge.and_then(|c| c.resource_metadata.as_deref()) {
        match safe_url("resource_metadata URL", rm) {
            Ok(u) => candidates.push(u.to_string()),
            Err(e) => eprintln!("warning: ignoring the challenge's resource_metadata: {e}"),
        }
    }
    for u in [
        well_known::protected_resource_metadata_url(server),
        well_known::protected_resource_metadata_root_url(server),
    ] {
        if !candidates.contains(&u) {
            candidates.push(u);
        }
    }
    let mut prm = None;
    for url in &candidates {
        if let Some(doc) = fetch_json::<ProtectedResourceMetadata>(http, url).await? {
            prm = Some(doc);
            break;
        }
    }
    match prm {
        Some(prm) => from_resource_metadata(http, server, prm).await,
        None => legacy(http, server).await,
    }
}

/// RFC 9728 §3.3 and MCP "Canonical Server URI": the metadata's `resource` must be the server URL itself, or
/// (for the root-form document) a prefix of it on the same origin ending at a path-segment boundary.
pub fn resource_matches(server: &Url, resource: &str) -> bool {
    let Ok(r) = Url::parse(resource) else {
        return false;
    };
    if r.origin() != server.origin() || r.query().is_some() || r.fragment().is_some() {
        return false;
    }
    let (rp, sp) = (
        r.path().trim_end_matches('/'),
        server.path().trim_end_matches('/'),
    );
    sp == rp
        || sp
            .strip_prefix(rp)
            .is_some_and(|rest| rest.starts_with('/'))
}

async fn from_resource_metadata(
    http: &reqwest::Client,
    server: &Url,
    prm: ProtectedResourceMetadata,
) -> Result<Discovered> {
    if !resource_matches(server, &prm.resource) {
        return Err(Error::ResourceMismatch {
            expected: server.to_string(),
            found: prm.resource.clone(),
        });
    }
    let issuer = prm
        .authorization_servers
        .as_ref()
        .and_then(|a| a.first())
        .cloned()
        .ok_or_else(|| Error::NoAuthorizationServer {
            url: server.to_string(),
            reason: "the protected resource metadata lists no authorization_servers".into(),
        })?;
    let issuer_url = safe_url("authorization server", &issuer)?;
    let urls = well_known::authorization_server_metadata_urls(&issuer_url);
    for url in &urls {
        if let Some(meta) = fetch_json::<AuthorizationServerMetadata>(http, url).await? {
            if meta.issuer != issuer {
                return Err(Error::IssuerMismatch {
                    expected: issuer,
                    found: meta.issuer,
                });
            }
            let endpoints = endpoints(&meta, url)?;
            let resource = Some(prm.resource.clone());
            return Ok(Discovered {
                resource,
                resource_metadata: Some(prm),
                issuer,
                metadata: meta,
                endpoints,
            });
        }
    }
    Err(Error::NoAuthorizationServer {
        url: server.to_string(),
        reason: format!("tried {}", urls.join(", ")),
    })
}

/// MCP 2025-03-26 "Server Metadata Discovery": the authorization base URL is the MCP URL without its path.
async fn legacy(http: &reqwest::Client, server: &Url) -> Result<Discovered> {
    let origin = server.origin().ascii_serialization();
    let url = format!("{origin}{}", well_known::AUTHORIZATION_SERVER);
    if let Some(meta) = fetch_json::<AuthorizationServerMetadata>(http, &url).await? {
        if meta.issuer != origin && meta.issuer.trim_end_matches('/') != origin {
            // The document comes from the MCP server's own origin, which is the trust anchor of the 2025-03-26
            // flow; real deployments (the seed's) name another host as issuer. Credentials are bound to the
            // document's issuer below, so they are never shared with a different one.
            eprintln!(
                "warning: the authorization metadata at {url} names another issuer, {:?}; using it, and keeping \
                 the credentials for that issuer only.",
                meta.issuer
            );
        }
        let endpoints = endpoints(&meta, &url)?;
        let issuer = meta.issuer.clone();
        return Ok(Discovered {
            resource: None,
            resource_metadata: None,
            issuer,
            metadata: meta,
            endpoints,
        });
    }
    // No metadata at all: the 2025-03-26 default endpoints. S256 is still what we send.
    let meta = AuthorizationServerMetadata {
        issuer: origin.clone(),
        authorization_endpoint: Some(format!("{origin}/authorize")),
        token_endpoint: Some(format!("{origin}/token")),
        registration_endpoint: Some(format!("{origin}/register")),
        response_types_supported: vec!["code".into()],
        code_challenge_methods_supported: Some(vec!["S256".into()]),
        ..Default::default()
    };
    let endpoints = endpoints(&meta, &url)?;
    tracing::info!("no authorization server metadata; using the default endpoints of {origin}");
    Ok(Discovered {
        resource: None,
        resource_metadata: None,
        issuer: origin,
        metadata: meta,
        endpoints,
    })
}

/// Checks the metadata the flow depends on: S256 (MCP: clients MUST refuse otherwise), `code` response type and
/// safe endpoint URLs.
fn endpoints(meta: &AuthorizationServerMetadata, from: &str) -> Result<Endpoints> {
    if !meta.supports_s256() {
        return Err(Error::NoS256 {
            issuer: meta.issuer.clone(),
        });
    }
    let missing = |what: &str| Error::InvalidDocument {
        what: "authorization server metadata".into(),
        url: from.to_owned(),
        reason: format!("it has no {what}"),
    };
    let authorization = safe_url(
        "authorization_endpoint",
        meta.authorization_endpoint
            .as_deref()
            .ok_or_else(|| missing("authorization_endpoint"))?,
    )?;
    let token = safe_url(
        "token_endpoint",
        meta.token_endpoint
            .as_deref()
            .ok_or_else(|| missing("token_endpoint"))?,
    )?;
    let registration = meta
        .registration_endpoint
        .as_deref()
        .map(|u| safe_url("registration_endpoint", u))
        .transpose()?;
    let revocation = meta
        .revocation_endpoint
        .as_deref()
        .map(|u| safe_url("revocation_endpoint", u))
        .transpose()?;
    Ok(Endpoints {
        authorization,
        token,
        registration,
        revocation,
    })
}

/// GETs a JSON document. `Ok(None)` when the URL answers an error status or something that is not the expected
/// document (the caller then tries its next candidate); `Err` only when the server cannot be reached.
async fn fetch_json<T: DeserializeOwned>(http: &reqwest::Client, url: &str) -> Result<Option<T>> {
    let resp = http
        .get(url)
        .header("accept", "application/json")
        .header("mcp-protocol-version", PROTOCOL_VERSION)
        .send()
        .await
        .map_err(|e| Error::http(url, &e))?;
    let status = resp.status();
    if !status.is_success() {
        tracing::debug!(%url, %status, "no metadata here; trying the next location");
        return Ok(None);
    }
    let body = resp.text().await.map_err(|e| Error::http(url, &e))?;
    match serde_json::from_str(&body) {
        Ok(doc) => Ok(Some(doc)),
        Err(e) => {
            tracing::debug!(%url, error = %e, body = %snippet(&body), "not a metadata document; trying the next location");
            Ok(None)
        }
    }
}

/// Parses a user-given server URL; re-exported for the CLI.
pub fn parse_server_url(text: &str) -> Result<Url> {
    server_url(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::mock::{MockServer, Resp};
    use serde_json::json;

    fn as_doc(base: &str, issuer: &str) -> serde_json::Value {
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"),
            "registration_endpoint": format!("{base}/register"),
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
        })
    }

    #[test]
    fn resource_matching() {
        let s = Url::parse("https://ex.com/public/mcp").unwrap();
        assert!(resource_matches(&s, "https://ex.com/public/mcp"));
        assert!(resource_matches(&s, "https://ex.com/public/mcp/"));
        assert!(resource_matches(&s, "https://ex.com"));
        assert!(resource_matches(&s, "https://ex.com/public"));
        assert!(!resource_matches(&s, "https://ex.com/pub"));
        assert!(!resource_matches(&s, "https://evil.example.com/public/mcp"));
        assert!(!resource_matches(&s, "http://ex.com/public/mcp"));
        assert!(!resource_matches(&s, "https://ex.com/public/mcp/other"));
    }

    /// Resource metadata only at the root form, 403 at the path form; AS with a path, metadata only at the
    /// OIDC path-appended form after 400/401 elsewhere: every step falls back.
    #[tokio::test]
    async fn falls_back_in_spec_order() {
        let srv = MockServer::start(|req, base| match req.path.as_str() {
            "/.well-known/oauth-protected-resource/mcp" => Resp::status(403),
            "/.well-known/oauth-protected-resource" => Resp::json(
                200,
                json!({"resource": base, "authorization_servers": [format!("{base}/tenant1")]}),
            ),
            "/.well-known/oauth-authorization-server/tenant1" => Resp::status(400),
            "/.well-known/openid-configuration/tenant1" => Resp::status(401),
            "/tenant1/.well-known/openid-configuration" => {
                Resp::json(200, as_doc(base, &format!("{base}/tenant1")))
            }
            _ => Resp::status(404),
        })
        .await;
        let server = Url::parse(&format!("{}/mcp", srv.base)).unwrap();
        let d = discover(&crate::http_client().unwrap(), &server, None)
            .await
            .unwrap();
        assert_eq!(d.issuer, format!("{}/tenant1", srv.base));
        assert_eq!(d.resource.as_deref(), Some(srv.base.as_str()));
        assert_eq!(
            srv.paths(),
            vec![
                "GET /.well-known/oauth-protected-resource/mcp",
                "GET /.well-known/oauth-protected-resource",
                "GET /.well-known/oauth-authorization-server/tenant1",
                "GET /.well-known/openid-configuration/tenant1",
                "GET /tenant1/.well-known/openid-configuration",
            ]
        );
    }

    #[tokio::test]
    async fn challenge_url_comes_first() {
        let srv = MockServer::start(|req, base| match req.path.as_str() {
            "/custom/prm.json" => Resp::json(
                200,
                json!({"resource": format!("{base}/mcp"), "authorization_servers": [base]}),
            ),
            "/.well-known/oauth-authorization-server" => Resp::json(200, as_doc(base, base)),
            _ => Resp::status(404),
        })
        .await;
        let server = Url::parse(&format!("{}/mcp", srv.base)).unwrap();
        let ch = BearerChallenge {
            resource_metadata: Some(format!("{}/custom/prm.json", srv.base)),
            ..Default::default()
        };
        let d = discover(&crate::http_client().unwrap(), &server, Some(&ch))
            .await
            .unwrap();
        assert_eq!(d.resource.as_deref(), Some(server.as_str()));
        assert_eq!(
            srv.paths(),
            vec![
                "GET /custom/prm.json",
                "GET /.well-known/oauth-authorization-server"
            ]
        );
        assert!(srv.requests()[0].header("mcp-protocol-version").is_some());
    }

    async fn discover_with(
        prm_resource: Option<&'static str>,
        doc: impl Fn(&str) -> serde_json::Value + Send + Sync + 'static,
    ) -> Result<Discovered> {
        let srv = MockServer::start(move |req, base| match req.path.as_str() {
            "/.well-known/oauth-protected-resource/mcp" => Resp::json(
                200,
                json!({"resource": prm_resource.map(str::to_owned).unwrap_or(format!("{base}/mcp")), "authorization_servers": [base]}),
            ),
            "/.well-known/oauth-authorization-server" => Resp::json(200, doc(base)),
            _ => Resp::status(404),
        })
        .await;
        let server = Url::parse(&format!("{}/mcp", srv.base)).unwrap();
        discover(&crate::http_client().unwrap(), &server, None).await
    }

    #[tokio::test]
    async fn refuses_resource_mismatch() {
        let e = discover_with(Some("https://evil.example.com/mcp"), |b| as_doc(b, b))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::ResourceMismatch { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn refuses_issuer_mismatch() {
        let e = discover_with(None, |b| as_doc(b, "https://other.example.com"))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::IssuerMismatch { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn refuses_missing_s256() {
        let e = discover_with(None, |b| {
            let mut d = as_doc(b, b);
            d["code_challenge_methods_supported"] = json!(["plain"]);
            d
        })
        .await
        .unwrap_err();
        assert!(matches!(e, Error::NoS256 { .. }), "{e:?}");
        let e = discover_with(None, |b| {
            let mut d = as_doc(b, b);
            d.as_object_mut()
                .unwrap()
                .remove("code_challenge_methods_supported");
            d
        })
        .await
        .unwrap_err();
        assert!(matches!(e, Error::NoS256 { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn refuses_hostile_authorization_endpoints() {
        for bad in [
            "javascript:alert(1)",
            "file:///etc/passwd",
            "https://a.example/$(touch /tmp/x)",
            "http://evil.example/authorize",
        ] {
            let e = discover_with(None, move |b| {
                let mut d = as_doc(b, b);
                d["authorization_endpoint"] = json!(bad);
                d
            })
            .await
            .unwrap_err();
            assert!(matches!(e, Error::UnsafeUrl { .. }), "{bad}: {e:?}");
        }
    }

    #[tokio::test]
    async fn legacy_metadata_then_default_endpoints() {
        let srv = MockServer::start(|req, base| match req.path.as_str() {
            "/.well-known/oauth-authorization-server" => Resp::json(200, as_doc(base, base)),
            _ => Resp::status(404),
        })
        .await;
        let server = Url::parse(&format!("{}/v1/mcp", srv.base)).unwrap();
        let d = discover(&crate::http_client().unwrap(), &server, None)
            .await
            .unwrap();
        assert_eq!(d.resource, None);
        assert_eq!(d.issuer, srv.base);

        let srv = MockServer::start(|_, _| Resp::status(404)).await;
        let server = Url::parse(&format!("{}/v1/mcp", srv.base)).unwrap();
        let d = discover(&crate::http_client().unwrap(), &server, None)
            .await
            .unwrap();
        assert_eq!(
            d.endpoints.authorization.as_str(),
            format!("{}/authorize", srv.base)
        );
        assert_eq!(d.endpoints.token.as_str(), format!("{}/token", srv.base));
        assert_eq!(
            d.endpoints.registration.unwrap().as_str(),
            format!("{}/register", srv.base)
        );
    }
}
