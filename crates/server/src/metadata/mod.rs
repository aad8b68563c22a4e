//! Discovery: OAuth 2.0 Authorization Server Metadata (RFC 8414 §2, §3), the same document at the OpenID
//! Connect discovery URLs, Protected Resource Metadata (RFC 9728 §2, §3), and the JWKS (RFC 7517 §5).
//! The documents are serialized once at start-up; they answer with or without `MCP-Protocol-Version`.
//!
//! [`documents`] builds the documents (no state); this module answers them.

pub mod documents;

use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
use std::sync::Arc;

/// `GET /.well-known/oauth-authorization-server` and the OIDC discovery forms.
pub async fn authorization_server(State(s): State<Arc<AppState>>) -> Response {
    crate::respond::json_bytes(s.as_metadata.clone(), "public, max-age=3600")
}

/// `GET /.well-known/oauth-protected-resource[/path]`.
pub async fn protected_resource(State(s): State<Arc<AppState>>) -> Response {
    crate::respond::json_bytes(s.prm.clone(), "public, max-age=3600")
}

/// `GET /jwks.json`: public keys only. Short caching so a rotation is picked up quickly.
pub async fn jwks(State(s): State<Arc<AppState>>) -> Response {
    crate::respond::json_bytes(
        s.authz.keys().ring().jwks_json().to_owned(),
        "public, max-age=300",
    )
}
