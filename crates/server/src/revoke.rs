//! `POST /revoke` (RFC 7009 §2): client authentication, then revocation; 200 with an empty body whether or
//! not the token was known (§2.2).

use crate::client_auth::credentials;
use crate::error::{json_error, OAuthError};
use crate::form::Form;
use crate::state::AppState;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use portcullis_authz::AuthzError;
use portcullis_proto::token::TokenTypeHint;
use std::sync::Arc;

/// Revokes a token.
pub async fn revoke(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return json_error(
                e.status(),
                "invalid_request",
                "request body too large or unreadable",
            )
        }
    };
    let mut form = match Form::parse(&headers, &body) {
        Ok(f) => f,
        Err(e) => {
            return OAuthError::from(AuthzError::InvalidRequest(e.to_string())).into_response()
        }
    };
    let creds = match credentials(&headers, &mut form) {
        Ok(c) => c,
        Err(e) => return OAuthError::new(e, true).into_response(),
    };
    let basic = creds.used_basic();
    let client = match s.authz.registrations().authenticate_client(&creds).await {
        Ok(c) => c,
        Err(error) => return OAuthError::new(error, basic).into_response(),
    };
    let Some(token) = form.take("token") else {
        return OAuthError::from(AuthzError::InvalidRequest("token is required".into()))
            .into_response();
    };
    let hint = form.get("token_type_hint").and_then(TokenTypeHint::parse);
    match s.authz.revoker().revoke(&client, &token, hint).await {
        Ok(()) => {
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
            r
        }
        Err(error) => OAuthError::new(error, basic).into_response(),
    }
}
