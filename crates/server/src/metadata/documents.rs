//! The discovery documents, built once at start-up from the routes and the configuration: RFC 8414 §2
//! authorization server metadata and RFC 9728 §2 protected resource metadata.

use crate::routes::Routes;
use bytes::Bytes;
use portcullis_authz::AuthzConfig;
use portcullis_proto::metadata::{AuthorizationServerMetadata, ProtectedResourceMetadata};

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
        // Confidential clients only (RFC 7662 §2.1): no `none`.
        introspection_endpoint: Some(r.url(&r.introspect)),
        introspection_endpoint_auth_methods_supported: strings(&[
            "client_secret_basic",
            "client_secret_post",
        ]),
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
