//! `POST /register`: Dynamic Client Registration (RFC 7591 §3). JSON in, 201 with the client information
//! response out; errors as RFC 7591 §3.2.2 JSON.

use crate::error::{json_error, OAuthError};
use crate::form::content_type_is;
use crate::guesses::caller_ip;
use crate::state::AppState;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use portcullis_proto::registration::ClientMetadata;
use std::sync::Arc;

/// Largest registration request.
pub const MAX_BODY: usize = 16 * 1024;

/// Registers a client.
pub async fn register(
    State(s): State<Arc<AppState>>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // Registrations per client address per hour (security notes, "Registration"; RFC 7591 §5 leaves abuse
    // limits to the server). Only successful registrations count: they are what fills the database.
    let ip_key = caller_ip(&extensions);
    let now = s.authz.core().now();
    let limited = s.register_per_ip.enabled();
    if let Some(wait) = s.register_per_ip.blocked(&ip_key, now) {
        tracing::info!(ip = %ip_key, "registration rate limit reached");
        let mut resp = json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            "too many client registrations from this address; retry later",
        );
        if let Ok(v) = HeaderValue::from_str(&wait.max(1).to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return json_error(
                e.status(),
                "invalid_client_metadata",
                "request body too large or unreadable",
            )
        }
    };
    if !content_type_is(&headers, "application/json") {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            "Content-Type must be application/json",
        );
    }
    let meta: ClientMetadata = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            let what = if e.is_data() {
                "client metadata has a member of the wrong type"
            } else {
                "request body is not a JSON object"
            };
            return json_error(StatusCode::BAD_REQUEST, "invalid_client_metadata", what);
        }
    };
    match s.authz.registrations().register(meta).await {
        Ok(info) => {
            if limited {
                if let Err(e) = s
                    .register_per_ip
                    .record(s.authz.core().store().as_ref(), &ip_key, now)
                    .await
                {
                    tracing::warn!(error = %e, "could not count the registration against its address's limit");
                }
            }
            tracing::info!(client_id = %info.client_id, "client registered");
            let mut resp = (StatusCode::CREATED, axum::Json(info)).into_response();
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => OAuthError::from(e).into_response(),
    }
}
