//! Discovery: OAuth 2.0 Authorization Server Metadata (RFC 8414 §2, §3), the same document at the OpenID
//! Connect discovery URLs, Protected Resource Metadata (RFC 9728 §2, §3), and the JWKS (RFC 7517 §5).
//! The documents are serialized once at start-up; they answer with or without `MCP-Protocol-Version`.

use crate::routes::Routes;
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use portcullis_authz::AuthzConfig;
use portcullis_proto::metadata::{AuthorizationServerMetadata, ProtectedResourceMetadata};
use std::sync::Arc;

fn strings(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|s| (*s).to_owned()).collect())
}

/// The RFC 8414 document. `cimd`: whether Client ID Metadata Documents are resolved (MCP 2025-11-25:
/// `client_id_metadata_document_supported`).
pub fn authorization_server_document(r: &Routes, c: &AuthzConfig, cimd: bool) -> Bytes {
    let auth_methods = strings(&["none", "client_secret_basic", "client_secret_post"]);
    let doc = AuthorizationServerMetadata {
        issuer: r.issuer.clone(),
        authorization_endpoint: Some(r.url(&r.authorize)),
        token_endpoint: Some(r.url(&r.token)),
        jwks_uri: Some(r.url(&r.jwks)),
        registration_endpoint: Some(r.url(&r.register)),
        scopes_supported: Some(c.supported_scopes().iter().map(str::to_owned).collect()),
        response_types_supported: vec!["code".into()],
        response_modes_supported: strings(&["query"]),
        grant_types_supported: strings(&["authorization_code", "refresh_token"]),
        token_endpoint_auth_methods_supported: auth_methods.clone(),
        revocation_endpoint: Some(r.url(&r.revoke)),
        revocation_endpoint_auth_methods_supported: auth_methods,
        code_challenge_methods_supported: strings(&["S256"]),
        authorization_response_iss_parameter_supported: Some(true),
        client_id_metadata_document_supported: cimd.then_some(true),
        extra: Default::default(),
    };
    // A struct of strings and vectors always serializes.
    Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
}

/// The RFC 9728 document for the MCP endpoint.
pub fn protected_resource_document(r: &Routes, c: &AuthzConfig) -> Bytes {
    protected_resource_document_for(r, &r.mcp_url, c.resource_scopes(), "Portcullis MCP server")
}

/// The RFC 9728 §2 document of protected resource `resource` on this origin (the MCP endpoint, or a gateway
/// route with its own scopes), naming this server as its authorization server.
pub fn protected_resource_document_for(
    r: &Routes,
    resource: &str,
    scopes: Vec<String>,
    name: &str,
) -> Bytes {
    let doc = ProtectedResourceMetadata {
        resource: resource.to_owned(),
        authorization_servers: Some(vec![r.issuer.clone()]),
        jwks_uri: Some(r.url(&r.jwks)),
        scopes_supported: Some(scopes),
        bearer_methods_supported: strings(&["header"]),
        resource_name: Some(name.to_owned()),
        resource_documentation: None,
        extra: Default::default(),
    };
    Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
}

/// `GET /.well-known/oauth-authorization-server` and the OIDC discovery forms.
pub async fn authorization_server(State(s): State<Arc<AppState>>) -> Response {
    crate::json_bytes(s.as_metadata.clone(), "public, max-age=3600")
}

/// `GET /.well-known/oauth-protected-resource[/path]`.
pub async fn protected_resource(State(s): State<Arc<AppState>>) -> Response {
    crate::json_bytes(s.prm.clone(), "public, max-age=3600")
}

/// `GET /jwks.json`: public keys only. Short caching so a rotation is picked up quickly.
pub async fn jwks(State(s): State<Arc<AppState>>) -> Response {
    crate::json_bytes(
        s.authz.keys().ring().jwks_json().to_owned(),
        "public, max-age=300",
    )
}
