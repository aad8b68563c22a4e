//! `POST /revoke` (RFC 7009 §2): client authentication, then revocation; 200 with an empty body whether or
//! not the token was known (§2.2).
//!
//! Failed client authentication counts toward the same per-address guess limit as `/token` and `/introspect`
//! ([`crate::guesses`]; RFC 7009 §5: revocation requests are a place to guess credentials). A wrong or unknown
//! token is no error here (§2.2: 200), so only `invalid_client` counts.

use crate::client_auth::{authenticated, ClientRequest};
use crate::error::OAuthError;
use crate::guesses::limited;
use crate::state::AppState;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use portcullis_authz::AuthzError;
use portcullis_proto::token::TokenTypeHint;
use portcullis_proto::ErrorCode;
use std::sync::Arc;

/// Revokes a token. Only a failed client authentication counts as a guess.
pub async fn revoke(
    State(s): State<Arc<AppState>>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let is_guess = |e: &OAuthError| e.error.code() == ErrorCode::InvalidClient;
    limited(
        &s,
        &extensions,
        "revoke",
        is_guess,
        answer(&s, &headers, body),
    )
    .await
}

/// Reads the form, authenticates the client, then revokes.
async fn answer(
    s: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    let ClientRequest {
        mut form,
        client,
        basic,
    } = match authenticated(s, headers, body, false).await {
        Ok(r) => r,
        Err(early) => return early,
    };
    let token = form
        .take("token")
        .ok_or_else(|| OAuthError::from(AuthzError::InvalidRequest("token is required".into())))?;
    let hint = form.get("token_type_hint").and_then(TokenTypeHint::parse);
    s.authz
        .revoker()
        .revoke(&client, &token, hint)
        .await
        .map_err(|e| OAuthError::new(e, basic))?;
    // Make this instance's MCP endpoint refuse the token before answering.
    if let Err(e) = s
        .revocations
        .sync(s.authz.core().store().as_ref(), s.authz.core().now())
        .await
    {
        tracing::warn!(error = %e, "revocation sync failed");
    }
    let mut r = StatusCode::OK.into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}
