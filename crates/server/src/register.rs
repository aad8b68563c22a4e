//! `POST /register`: Dynamic Client Registration (RFC 7591 §3). JSON in, 201 with the client information
//! response out; errors as RFC 7591 §3.2.2 JSON.

use crate::error::{json_error, OAuthError};
use crate::form::content_type_is;
use crate::guesses::caller_ip;
use crate::limits::Admission;
use crate::state::AppState;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use portcullis_authz::config::LocalhostRedirects;
use portcullis_authz::AuthzError;
use portcullis_proto::registration::ClientMetadata;
use std::sync::Arc;

/// `localhost_redirect_uris = "warn"`: a registration with an `http://localhost` redirect URI is logged (RFC 8252
/// §8.3 recommends loopback IP literals; `refuse` makes it a 400).
fn warn_of_localhost(s: &AppState, client_id: &str, redirect_uris: &[String]) {
    if s.authz.core().config().localhost_redirect_uris != LocalhostRedirects::Warn {
        return;
    }
    let named = redirect_uris
        .iter()
        .filter_map(|u| portcullis_proto::RedirectUri::parse_registered(u).ok())
        .find(|u| u.names_localhost());
    if let Some(uri) = named {
        tracing::warn!(%client_id, redirect_uri = %uri,
            "client registered a localhost redirect URI; RFC 8252 §8.3 recommends http://127.0.0.1 or http://[::1] \
             (set localhost_redirect_uris = \"refuse\" to refuse them, \"allow\" to silence this)");
    }
}

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
    // limits to the server). A known-blocked address is refused before anything is read.
    let ip_key = caller_ip(&extensions);
    let now = s.authz.core().now();
    if let Some(wait) = s.register_per_ip.blocked(&ip_key, now) {
        return too_many_registrations(&ip_key, wait);
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
    // A place under the limit is taken before the registration (one conditional upsert), so parallel
    // requests cannot overshoot it; only successful registrations keep theirs: they are what fills the database.
    let store = s.authz.core().store();
    let reservation = match s
        .register_per_ip
        .reserve(store.as_ref(), &ip_key, now)
        .await
    {
        Ok(Admission::Admitted(r)) => r,
        Ok(Admission::Refused(wait)) => return too_many_registrations(&ip_key, wait),
        Err(e) => return OAuthError::from(AuthzError::from(e)).into_response(),
    };
    match s.authz.registrations().register(meta).await {
        Ok(info) => {
            tracing::info!(client_id = %info.client_id, "client registered");
            warn_of_localhost(&s, &info.client_id, &info.metadata.redirect_uris);
            let mut resp = (StatusCode::CREATED, axum::Json(info)).into_response();
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => {
            if let Err(err) = s.register_per_ip.release(store.as_ref(), reservation).await {
                tracing::warn!(error = %err, "could not release a refused registration's place under the limit");
            }
            OAuthError::from(e).into_response()
        }
    }
}

/// 429 with `Retry-After`: the address registered its limit in this window.
fn too_many_registrations(ip: &str, wait: i64) -> Response {
    tracing::info!(%ip, "registration rate limit reached");
    let mut resp = json_error(
        StatusCode::TOO_MANY_REQUESTS,
        "temporarily_unavailable",
        "too many client registrations from this address; retry later",
    );
    if let Ok(v) = HeaderValue::from_str(&wait.max(1).to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}
