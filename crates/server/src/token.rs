//! `POST /token` (RFC 6749 §3.2, §4.1.3, §6; OAuth 2.1 §3.2): form-encoded POST only, client authentication,
//! then the grant. Every response carries `Cache-Control: no-store` (RFC 6749 §5.1).

use crate::client_auth::credentials;
use crate::error::{json_error, OAuthError};
use crate::form::Form;
use crate::state::AppState;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use portcullis_authz::secret::Secret;
use portcullis_authz::token::TokenRequest;
use portcullis_authz::AuthzError;
use std::sync::Arc;

/// Issues tokens.
pub async fn token(
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
        Err(e) => {
            return OAuthError {
                error: e,
                basic: true,
            }
            .into_response()
        }
    };
    let basic = creds.used_basic();
    let client = match s.authz.authenticate_client(&creds).await {
        Ok(c) => c,
        Err(error) => return OAuthError { error, basic }.into_response(),
    };
    let req = TokenRequest {
        grant_type: form.take("grant_type"),
        code: form.take("code").map(Secret::new),
        redirect_uri: form.take("redirect_uri"),
        code_verifier: form.take("code_verifier").map(Secret::new),
        refresh_token: form.take("refresh_token").map(Secret::new),
        scope: form.take("scope"),
        resource: form.take("resource"),
    };
    match s.authz.token(&client, req).await {
        Ok(resp) => {
            let mut r = axum::Json(resp).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r.headers_mut()
                .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            r
        }
        Err(error) => {
            if matches!(error, AuthzError::InvalidGrant(_)) {
                // A replay may have revoked a grant: let this instance's MCP endpoint know at once.
                s.revocations.sync_soon();
            }
            OAuthError { error, basic }.into_response()
        }
    }
}
