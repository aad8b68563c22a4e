//! `POST /token` (RFC 6749 §3.2, §4.1.3, §6; OAuth 2.1 §3.2): form-encoded POST only, client authentication,
//! then the grant. Every response carries `Cache-Control: no-store` (RFC 6749 §5.1).

use crate::client_auth::credentials;
use crate::error::{json_error, EndpointError, OAuthError};
use crate::form::Form;
use crate::state::AppState;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use portcullis_authz::token::TokenError;
use portcullis_authz::AuthzError;
use portcullis_proto::{ErrorCode, TokenRequest};
use std::net::SocketAddr;
use std::sync::Arc;

/// Whether a failure counts against the caller's address: guesses of codes, refresh tokens and client
/// credentials (security notes, "Brute force"; issue: abuse limits on token requests).
fn counts_as_guess(e: &EndpointError) -> bool {
    matches!(e.code(), ErrorCode::InvalidGrant | ErrorCode::InvalidClient)
}

/// Issues tokens.
pub async fn token(
    State(s): State<Arc<AppState>>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let ip = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string());
    let now = s.authz.core().now();
    if let Some(wait) = s.token_failures_per_ip.blocked(&ip, now) {
        tracing::info!(%ip, "token request limit reached");
        let mut resp = json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            "too many failed token requests from this address; retry later",
        );
        if let Ok(v) = HeaderValue::from_str(&wait.max(1).to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }
    let response = issue(&s, &headers, body).await;
    if let Err(e) = &response {
        if counts_as_guess(&e.error) {
            if let Err(err) = s
                .token_failures_per_ip
                .record(s.authz.core().store().as_ref(), &ip, now)
                .await
            {
                tracing::warn!(error = %err, "could not count a failed token request");
            }
        }
    }
    response.unwrap_or_else(IntoResponse::into_response)
}

/// Reads the form, authenticates the client, parses the request and runs its grant.
async fn issue(
    s: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return Ok(json_error(
                e.status(),
                "invalid_request",
                "request body too large or unreadable",
            ))
        }
    };
    let mut form = match Form::parse(headers, &body) {
        Ok(f) => f,
        Err(e) => return Err(OAuthError::from(AuthzError::InvalidRequest(e.to_string()))),
    };
    let creds = match credentials(headers, &mut form) {
        Ok(c) => c,
        Err(e) => return Err(OAuthError::new(e, true)),
    };
    let basic = creds.used_basic();
    let client = match s.authz.registrations().authenticate_client(&creds).await {
        Ok(c) => c,
        Err(error) => return Err(OAuthError::new(error, basic)),
    };
    // Parsed after client authentication, so an unauthenticated caller learns nothing about its request.
    let issued = match TokenRequest::parse(form.pairs()) {
        Ok(req) => s.authz.tokens().token(&client, req).await,
        Err(e) => Err(TokenError::from(e)),
    };
    match issued {
        Ok(resp) => {
            let mut r = axum::Json(resp).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r.headers_mut()
                .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            Ok(r)
        }
        Err(error) => {
            if error.code() == ErrorCode::InvalidGrant {
                // A replay may have revoked a grant: let this instance's MCP endpoint know at once.
                s.revocations.sync_soon();
            }
            Err(OAuthError::new(error, basic))
        }
    }
}
