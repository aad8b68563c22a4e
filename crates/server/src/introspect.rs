//! `POST <issuer>/introspect` (RFC 7662 §2): for resource servers that cannot verify JWTs, or must see a
//! revocation at once. Form-encoded POST (§2.1) with `token` and an optional `token_type_hint`; the caller
//! authenticates as a confidential client (HTTP Basic or form parameters, RFC 6749 §2.3.1), else 401
//! `invalid_client` (§2.3). Who may see which token is `portcullis_authz::introspection`'s rule; anything else is
//! `{"active": false}` (§2.2). Every answer is `Cache-Control: no-store`.
//!
//! Failed client authentication counts toward the same per-address limit as `/token` (an introspection
//! endpoint is a place to guess client secrets, RFC 7662 §4). Server-to-server only: no CORS.

use crate::client_auth::{authenticated, ClientRequest};
use crate::error::OAuthError;
use crate::guesses::limited;
use crate::state::AppState;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, Extensions, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use portcullis_authz::introspection::check_caller;
use portcullis_authz::AuthzError;
use portcullis_proto::ErrorCode;
use std::sync::Arc;

/// Introspects a token. Only a failed client authentication counts as a guess.
pub async fn introspect(
    State(s): State<Arc<AppState>>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let is_guess = |e: &OAuthError| e.error.code() == ErrorCode::InvalidClient;
    limited(
        &s,
        &extensions,
        "introspect",
        is_guess,
        answer(&s, &headers, body),
    )
    .await
}

/// Reads the form, authenticates the caller, then introspects.
async fn answer(
    s: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    // Every 401 here carries the Basic challenge (RFC 7662 §2.3, RFC 6749 §5.2): a resource server is told how
    // to authenticate, however it tried; a public client's `client_id` alone is not authentication.
    let ClientRequest {
        mut form, client, ..
    } = match authenticated(s, headers, body, true).await {
        Ok(r) => r,
        Err(early) => return early,
    };
    check_caller(&client).map_err(|e| OAuthError::new(e, true))?;
    // §2.1: `token` is REQUIRED; the hint is optional and not needed (the token's form tells its type).
    let token = form
        .take("token")
        .ok_or_else(|| OAuthError::from(AuthzError::InvalidRequest("token is required".into())))?;
    // A revocation committed on any instance before this request is seen: read the log first.
    let store = s.authz.core().store();
    s.revocations
        .sync(store.as_ref(), s.authz.core().now())
        .await
        .map_err(|e| OAuthError::from(AuthzError::from(e)))?;
    // Signed by a key another instance has just created: reload the ring first (rate-limited, the same reload
    // the MCP endpoint's check uses), so such a token is not answered inactive.
    if let Some(kid) = portcullis_authz::access_token::kid_of(&token) {
        let _ = s.bearer.keys().key(&kid).await;
    }
    let revoked = |jti: &str| s.revocations.is_revoked(jti, None);
    let r = s
        .authz
        .introspector()
        .introspect(&client, &token, &revoked)
        .await
        .map_err(OAuthError::from)?;
    let mut resp = axum::Json(r).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(resp)
}
